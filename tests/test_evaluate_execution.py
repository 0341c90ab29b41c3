"""``freqtail evaluate --channels-last / --compile``: each threat model's view is prepared once, every
record states the options, and the numbers agree with eager evaluation within the stated tolerances."""
# ruff: noqa: F811  (pytest fixtures imported from test_evaluate_support are parameters here)

from __future__ import annotations

import json
import shutil

import pytest

import freqtail.evaluate.runner as runner
import freqtail.evaluate.session as session
from freqtail.cli import main
from test_evaluate_support import eval_cache, shared_cache, tiny_runs  # noqa: F401

FAST = ["--n", "24", "--batch-size", "12", "--masking-n", "8", "--masking-queries", "20", "--no-progress"]
EAGER = {"channels_last": False, "compile": False}


def _records(run):
    return {r["id"]: r for r in json.loads((run / "results.json").read_text(encoding="utf-8"))["results"]}


def _evaluate(source, folder, *options):
    run = shutil.copytree(source, folder)
    assert main(["evaluate", str(run), "--suite", "clean,pgd20", *FAST, *options]) == 0
    return run, _records(run)


def _assert_same_numbers(fast, eager):
    """Clean counts equal; robust counts within one image (sign steps, see freqtail.models.execution)."""
    assert fast.keys() == eager.keys()
    for rid, record in eager.items():
        if record["metric"] == "gradient-masking":
            assert fast[rid]["report"]["considered"] == record["report"]["considered"]
            continue
        assert fast[rid]["total"] == record["total"] and fast[rid]["data"] == record["data"]
        assert fast[rid]["clean_correct"] == record["clean_correct"]
        assert abs(fast[rid]["correct"] - record["correct"]) <= 1


def test_channels_last_evaluation_states_it_and_agrees_with_eager(
    tiny_runs, shared_cache, tmp_path, monkeypatch, capsys
):
    prepared = []
    real = runner.prepare_model

    def counting(model, options=None, **kwargs):
        prepared.append(options)
        return real(model, options, **kwargs)

    monkeypatch.setattr(runner, "prepare_model", counting)
    _, eager = _evaluate(tiny_runs["bass"], tmp_path / "eager")
    assert len(prepared) == 2  # domain and end-to-end, once each
    prepared.clear()
    fast_run, fast = _evaluate(tiny_runs["bass"], tmp_path / "fast", "--channels-last")
    assert [options.channels_last for options in prepared] == [True, True]
    _assert_same_numbers(fast, eager)
    for rid, record in fast.items():
        assert record["settings"]["execution"] == {"channels_last": True, "compile": False}
        assert eager[rid]["settings"]["execution"] == EAGER
        assert record["fingerprint"] != eager[rid]["fingerprint"]
        assert record["checkpoint"]["digest"] == eager[rid]["checkpoint"]["digest"]  # same weights
    # --resume keeps what was measured with the same options and measures again what was not.
    capsys.readouterr()
    assert main(["evaluate", str(fast_run), "--suite", "clean", *FAST, "--resume", "--channels-last"]) == 0
    assert "already there" in capsys.readouterr().out
    assert main(["evaluate", str(fast_run), "--suite", "clean", *FAST, "--resume"]) == 0
    assert "already there" not in capsys.readouterr().out
    assert _records(fast_run)["best|domain|clean|"]["settings"]["execution"] == EAGER


def test_eager_records_keep_the_fingerprints_of_records_written_before_execution_options(
    tiny_runs, shared_cache, tmp_path
):
    # Earlier versions fingerprinted the settings without an "execution" key; eager records still do,
    # so --resume after an upgrade skips their numbers.
    _, eager = _evaluate(tiny_runs["standard"], tmp_path / "eager")
    for record in eager.values():
        settings = {k: v for k, v in record["settings"].items() if k != "execution"}
        earlier = session._fingerprint(
            {
                "checkpoint": record["checkpoint"]["digest"],
                "data": record["data"],
                "settings": settings,
                "threat_model": record["threat_model_setup"],
            }
        )
        assert record["fingerprint"] == earlier


@pytest.mark.slow
def test_compiled_evaluation_agrees_with_eager(tiny_runs, shared_cache, tmp_path):
    # Both views of a BaSS run: domain (the bare model) and end-to-end (the BaSS front compiled too).
    _, eager = _evaluate(tiny_runs["bass"], tmp_path / "eager")
    _, fast = _evaluate(tiny_runs["bass"], tmp_path / "fast", "--compile", "--channels-last")
    _assert_same_numbers(fast, eager)
    for record in fast.values():
        assert record["settings"]["execution"] == {"channels_last": True, "compile": True}
