"""``freqtail.runs``: one owner of a run folder — its names, its settings, its results under a lock.

Concurrency is tested with real processes, forked from this one (tests/forked.py): merges that each
process does hundreds of times, and four ``freqtail evaluate`` processes on one run folder at once.
"""
# ruff: noqa: F811  (pytest fixtures imported from test_evaluate_support are parameters here)

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from forked import forked_cli
from freqtail.errors import ConfigError, OutputError
from freqtail.evaluate.threat_model_names import DOMAIN, END_TO_END, STANDARD, ThreatModel
from freqtail.runs import RunLayout
from freqtail.workflows import RunFolder, RunSettings
from test_evaluate_support import eval_cache, make_run, shared_cache, tiny_runs  # noqa: F401

# ------------------------------------------------------------------------------------ settings


def _info(**data) -> dict:
    spec = {"name": "small-cnn", "num_classes": 16, "image_size": 32}
    if data.pop("front", False):
        spec["bass_front"] = {"strength": 0.5}
    config = {"dataset": "embedded", **data}
    return {"path": "x", "data": data, "config": config, "model_spec": spec, "objective": "erm"}


def test_settings_are_resolved_once_with_zero_kept_as_a_strength():
    settings = RunSettings.resolve(_info(dataset="embedded", bass="dataset", bass_strength=0.0))
    assert settings.bass_strength == 0.0  # "... or 1.0" would have made it 1
    assert settings.threat_models == (DOMAIN, END_TO_END)
    assert settings.explanation_threat_model == DOMAIN
    # No strength recorded: the front's, else the published 1.
    assert RunSettings.resolve(_info(dataset="embedded", bass="dataset", front=True)).bass_strength == 0.5
    plain = RunSettings.resolve(_info(dataset="embedded", bass=None))
    assert plain.bass_strength == 1.0 and plain.threat_models == (STANDARD,)


def test_data_root_follows_the_dataset():
    info = _info(dataset="embedded", data_root="/data/emb")
    assert RunSettings.resolve(info).data_root == "/data/emb"
    other = RunSettings.resolve(info, dataset="cifar10")
    assert other.data_root is None and other.dataset == "cifar10" and not other.same_dataset
    assert RunSettings.resolve(info, dataset="cifar10", data_root="/d").data_root == "/d"
    with pytest.raises(ConfigError, match="does not say which dataset"):
        RunSettings.resolve({"path": "weights.pt", "data": {}})


def test_threat_models_are_an_enum_parsed_once():
    assert ThreatModel.parse("End_To_End") is END_TO_END and ThreatModel.parse("e2e") is END_TO_END
    assert f"{DOMAIN:<8}|" == "domain  |" and json.dumps({"t": DOMAIN}) == '{"t": "domain"}'
    assert {DOMAIN: 1}["domain"] == 1
    with pytest.raises(ConfigError, match="choose one of standard, domain, end-to-end"):
        ThreatModel.parse("robust")


def test_layout_names_every_file_once(tmp_path):
    layout = RunLayout.of(tmp_path)
    names = [
        layout.config,
        layout.metrics,
        layout.checkpoints,
        layout.train_lock,
        layout.results,
        layout.results_md,
        layout.results_lock,
        layout.eval_cache,
        layout.figures,
        layout.report_html,
        layout.report_md,
        layout.landscape_partial,
        *(layout.json(kind) for kind in ("sensitivity", "landscape", "heatmap", "spectrum", "bass")),
        *(layout.arrays(kind) for kind in ("sensitivity", "landscape", "heatmap")),
    ]
    assert len({path.name for path in names}) == len(names) and all(p.parent == tmp_path for p in names)
    with pytest.raises(ValueError):
        layout.json("results")


# ------------------------------------------------------------------------------------ opening a run


def test_open_resolves_model_data_and_threat_models(tiny_runs, shared_cache):
    run = RunFolder.open(tiny_runs["bass"])
    assert run.layout.folder == tiny_runs["bass"] and run.name == "erm-bass"
    assert run.threat_models() == [DOMAIN, END_TO_END]
    assert run.test_data(DOMAIN).name == "embedded" and len(run.test_data("domain")) == 1600
    assert run.test_data(DOMAIN) is not run.test_data(END_TO_END)  # BaSS-converted vs raw
    assert getattr(run.model_for(END_TO_END), "front", None) is not None
    assert getattr(run.model_for(DOMAIN), "front", None) is None
    facts = run.checkpoint_facts()
    assert facts["which"] == "best" and len(facts["digest"]) == 64 and run.checkpoint_tag == "best"
    with pytest.raises(ConfigError, match="only threat model is standard"):
        RunFolder.open(tiny_runs["standard"]).threat_models("end-to-end")


def test_an_unwritable_output_is_refused_before_any_work(tiny_runs, shared_cache, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"is a file, not a folder"):
        RunFolder.open(tiny_runs["standard"], out=blocker)
    with pytest.raises(OutputError, match=r"cannot be written"):
        RunFolder.open(tiny_runs["standard"], out=blocker / "below")


# ------------------------------------------------------------------------------------ concurrency


def _merge_many(folder: str, worker: int, count: int) -> None:
    """One process: ``count`` merges of one new record each (what an evaluation does per number)."""
    from freqtail.runs.layout import RunLayout as Layout
    from freqtail.workflows.results_store import ResultsStore

    store = ResultsStore(Layout.of(folder))
    for i in range(count):
        record = {
            "id": f"w{worker}|standard|clean|{i}",
            "threat_model": "standard",
            "metric": "clean",
            "accuracy": 0.5,
            "correct": 1,
            "total": 2,
            "data": {"n": 2},
            "settings": {},
        }
        store.merge([record])


def test_concurrent_merges_keep_every_record(tmp_path):
    # The reported bug: two processes merging 200 times each kept 345 of 400 records.
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_merge_many, args=(str(tmp_path), w, 200)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=600)
        assert process.exitcode == 0
    records = json.loads((tmp_path / "results.json").read_text())["results"]
    assert len(records) == 400 and len({r["id"] for r in records}) == 400
    assert (tmp_path / "results.md").is_file()


def test_four_evaluations_of_one_run_at_once_lose_nothing(tiny_runs, eval_cache, tmp_path):
    run = shutil.copytree(tiny_runs["standard"], tmp_path / "run")
    common = ["--n", "16", "--batch-size", "8", "--masking-n", "0", "--no-progress"]
    requests = [
        ["--suite", "clean"],
        ["--suite", "pgd20"],
        ["--suite", "cw"],
        ["--suite", "clean", "--which", "last"],
    ]
    processes = [
        forked_cli(["evaluate", str(run), *request, *common], env={"FREQTAIL_CACHE": str(eval_cache)})
        for request in requests
    ]
    for process in processes:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err
    ids = {r["id"] for r in json.loads(Path(run, "results.json").read_text())["results"]}
    assert {
        "best|standard|clean|",
        "best|standard|pgd-20-ce|eps=8/255",
        "best|standard|pgd-20-cw|eps=8/255",
        "last|standard|clean|",
    } <= ids
