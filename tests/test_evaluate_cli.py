"""``freqtail evaluate`` and ``freqtail compare`` on tiny run folders written with the checkpoint API."""
# ruff: noqa: F811  (pytest fixtures imported from test_evaluate_support are parameters here)

from __future__ import annotations

import json
import shutil

import pytest
import torch

from freqtail.cli import main
from test_evaluate_support import eval_cache, make_run, shared_cache, tiny_runs  # noqa: F401

FAST = ["--n", "24", "--batch-size", "12", "--masking-n", "8", "--masking-queries", "20", "--no-progress"]


def _copy(run, tmp_path, name):
    return shutil.copytree(run, tmp_path / name)


def _error(capsys, argv) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"freqtail {argv[0]}: error: ")
    return lines[0]


def test_evaluate_writes_and_merges_results(tiny_runs, shared_cache, tmp_path, capsys):
    run = _copy(tiny_runs["bass"], tmp_path, "bass-run")
    assert main(["evaluate", str(run), "--suite", "clean,pgd20", *FAST]) == 0
    out = capsys.readouterr().out
    assert "domain" in out and "end-to-end" in out and "results.json" in out
    data = json.loads((run / "results.json").read_text(encoding="utf-8"))
    ids = {r["id"] for r in data["results"]}
    assert {"best|domain|clean|", "best|end-to-end|pgd-20-ce|eps=8/255"} <= ids
    for record in data["results"]:
        assert record["threat_model"] in ("domain", "end-to-end")
        assert record["data"]["n"] in (8, 24) and record["data"]["dataset"] == "embedded"
        assert record["checkpoint"]["which"] == "best" and record["checkpoint"]["bass"] == "dataset"
        assert len(record["checkpoint"]["digest"]) == 64 and record["checkpoint"]["model"] == "small-cnn"
        assert "selected_on" in record["checkpoint"]  # None: this hand-made checkpoint predates it
    pgd = next(r for r in data["results"] if r["id"] == "best|domain|pgd-20-ce|eps=8/255")
    assert pgd["settings"]["eps"] == pytest.approx(8 / 255) and pgd["settings"]["steps"] == 20
    # A second evaluation adds its numbers and keeps the earlier ones.
    assert main(["evaluate", str(run), "--suite", "cw", "--threat-model", "domain", *FAST]) == 0
    merged = json.loads((run / "results.json").read_text(encoding="utf-8"))
    merged_ids = {r["id"] for r in merged["results"]}
    assert ids <= merged_ids and "best|domain|pgd-20-cw|eps=8/255" in merged_ids
    assert "best|end-to-end|pgd-20-cw|eps=8/255" not in merged_ids
    markdown = (run / "results.md").read_text(encoding="utf-8")
    assert "| checkpoint | threat model | Clean | PGD-20 | CW-20 |" in markdown
    domain_row = next(line for line in markdown.splitlines() if line.startswith("| best | domain |"))
    clean = next(r for r in merged["results"] if r["id"] == "best|domain|clean|")
    assert f"{100 * clean['accuracy']:.2f}" in domain_row
    assert "Checkpoint `best`: " in markdown and "chosen as best on test images" in markdown
    # 8 masking images hold fewer than 50 correctly classified ones: no verdict, said so.
    assert "Gradient-masking check (`best`, domain; PGD-20, checked " in markdown
    assert "Too few images to judge" in markdown and "‡" in domain_row
    assert "POSSIBLE GRADIENT MASKING" not in out and "too few images to judge" in out
    for record in merged["results"]:
        if record["metric"] != "gradient-masking":
            assert len(record["data"]["indices"]) == record["data"]["n"] == 24
    # --resume skips what is already there with the same settings.
    assert main(["evaluate", str(run), "--suite", "clean", *FAST, "--resume"]) == 0
    assert "already there" in capsys.readouterr().out
    # Replacing numbers with ones on fewer images is allowed, and said.
    fewer = ["--suite", "clean", "--threat-model", "domain", "--n", "12", "--batch-size", "12"]
    assert main(["evaluate", str(run), *fewer, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning: Replaced best|domain|clean| measured on 24 images with one measured on 12" in err
    markdown = (run / "results.md").read_text(encoding="utf-8")
    domain_row = next(line for line in markdown.splitlines() if line.startswith("| best | domain |"))
    assert "(n=12)" in domain_row and "(n=24)" in domain_row


def test_a_run_trained_with_bass_strength_zero_is_evaluated_at_strength_zero(shared_cache, tmp_path, capsys):
    run = make_run(tmp_path / "strength-0", "dataset", steps=5, bass_strength=0.0)
    argv = ["evaluate", str(run), "--suite", "clean", "--n", "16", "--no-progress", "--json"]
    assert main(argv) == 0
    records = {r["threat_model"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["domain"]["data"]["bass_strength"] == 0.0  # the BaSS test set of strength 0
    assert records["end-to-end"]["threat_model_setup"]["front"]["strength"] == 0.0


def test_evaluate_json_and_corruptions_for_a_standard_run(tiny_runs, shared_cache, tmp_path, capsys):
    run = _copy(tiny_runs["standard"], tmp_path, "erm-run")
    argv = ["evaluate", str(run), "--suite", "clean,corruptions", "--generate-c", "--json", *FAST]
    argv += ["--corruptions", "noise", "--severities", "1,5", "--which", "last"]
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    clean, corruption = records
    assert clean["threat_model"] == corruption["threat_model"] == "standard"
    assert corruption["order"] == "none" and corruption["cells"] == 8
    noise = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}
    assert set(corruption["per_corruption"]) == noise and corruption["categories"]["blur"] is None
    assert corruption["id"].startswith("last|standard|corruptions")
    assert (run / "eval-cache" / "corrupted").is_dir()
    assert "| last | standard | none |" in (run / "results.md").read_text(encoding="utf-8")


def test_evaluate_band_suites_at_a_given_boundary(tiny_runs, shared_cache, tmp_path, capsys):
    run = _copy(tiny_runs["standard"], tmp_path, "erm-run")
    argv = ["evaluate", str(run), "--suite", "clean,pgd-20-lfc,PGD20_HFC", "--band-boundary", "4", *FAST]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "pgd-20-ce-lfc eps=8/255,band<4" in out and "pgd-20-ce-hfc eps=8/255,band>=4" in out
    records = {r["metric"]: r for r in json.loads((run / "results.json").read_text())["results"]}
    for metric, band in (("pgd-20-ce-lfc", "lfc"), ("pgd-20-ce-hfc", "hfc")):
        settings = records[metric]["settings"]
        assert (settings["band"], settings["boundary_band"]) == (band, 4)
        assert "given" in settings["boundary_source"] and records[metric]["gradient_masking"]["checked"]
    markdown = (run / "results.md").read_text(encoding="utf-8")
    clean = 100 * records["clean"]["accuracy"]
    lfc, hfc = 100 * records["pgd-20-ce-lfc"]["accuracy"], 100 * records["pgd-20-ce-hfc"]["accuracy"]
    assert "## Robust accuracy by band (%)" in markdown
    assert f"| best | standard | 4 | {clean:.2f} | – | {lfc:.2f} ‡ | {hfc:.2f} ‡ | 24 |" in markdown


def test_compare_shows_the_deltas_of_the_results(tiny_runs, shared_cache, tmp_path, capsys):
    runs = [_copy(tiny_runs["standard"], tmp_path, "erm"), _copy(tiny_runs["bass"], tmp_path, "erm-bass")]
    for run in runs:
        assert main(["evaluate", str(run), "--suite", "clean", *FAST]) == 0
    capsys.readouterr()
    out_file = tmp_path / "table.md"
    assert main(["compare", *map(str, runs), "--labels", "ERM,ERM+BaSS", "--out", str(out_file)]) == 0
    text = capsys.readouterr().out
    assert text == out_file.read_text(encoding="utf-8")
    accuracy = {}
    for run in runs:
        for record in json.loads((run / "results.json").read_text(encoding="utf-8"))["results"]:
            accuracy[(run.name, record["threat_model"])] = record["accuracy"]
    for threat in ("domain", "end-to-end"):
        delta = 100 * (accuracy[("erm-bass", threat)] - accuracy[("erm", "standard")])
        assert f"| Δ vs ERM | {threat} − standard | {delta:+.2f} |" in text
    assert main(["compare", *map(str, runs), "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in comparison["runs"]] == ["erm", "erm-bass"]
    assert comparison["runs"][1]["baseline"] == "erm" and comparison["runs"][1]["bass"] is True


def test_bad_input_is_one_sentence(tiny_runs, shared_cache, tmp_path, capsys):
    std, bass = str(tiny_runs["standard"]), str(tiny_runs["bass"])
    out = ["--out", str(tmp_path / "out")]
    assert "0..255 scale; use 8/255" in _error(capsys, ["evaluate", std, "--eps", "8", *out])
    message = _error(capsys, ["evaluate", std, "--suite", "clean,pgd30", *out])
    assert (
        "Unknown suite 'pgd30'; valid suites are: clean, pgd20, pgd20-lfc, pgd20-hfc, cw, aa, aa-fast, "
        "corruptions, all" in message
    )
    assert "applies only to the band suites pgd20-lfc and pgd20-hfc" in _error(
        capsys, ["evaluate", std, "--band-boundary", "7", *out]
    )
    assert (
        "band boundary (--band-boundary) for 32x32 images must be an integer from 0 to 23, not 24"
        in _error(capsys, ["evaluate", std, "--suite", "pgd20-lfc", "--band-boundary", "24", *out])
    )
    assert "pgd20 (PGD-20, cross-entropy)" in _error(capsys, ["evaluate", std, "--suite", "pgd", *out])
    assert "--masking-min must be a positive integer" in _error(
        capsys, ["evaluate", std, "--masking-min", "0", *out]
    )
    assert "its only threat model is standard" in _error(
        capsys, ["evaluate", std, "--threat-model", "end-to-end", *out]
    )
    assert "16 classes, but cifar10 has 32x32 images and 10 classes" in _error(
        capsys, ["evaluate", std, "--dataset", "cifar10", *out]
    )
    assert "--generate-c" in _error(capsys, ["evaluate", std, "--suite", "corruptions", *out])
    assert "--bc-root" in _error(
        capsys, ["evaluate", bass, "--suite", "corruptions", "--c-root", str(tmp_path), *out]
    )
    assert "No -C folder at" in _error(
        capsys, ["evaluate", std, "--suite", "corruptions", "--c-root", str(tmp_path / "none"), *out]
    )
    assert "no run folder or checkpoint" in _error(capsys, ["evaluate", str(tmp_path / "nothing")])
    foreign = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    assert "--model NAME --dataset NAME" in _error(capsys, ["evaluate", str(foreign)])
    assert "do not match the architecture" in _error(
        capsys, ["evaluate", str(foreign), "--model", "small-cnn", "--dataset", "embedded"]
    )
    assert "--n must be a positive integer" in _error(capsys, ["evaluate", std, "--n", "0", *out])
    assert not (tmp_path / "out" / "results.json").exists()  # nothing half-written
    assert "run `freqtail evaluate` on that run first" in _error(capsys, ["compare", std, bass])
    assert "at least two runs" in _error(capsys, ["compare", std])


def test_values_beyond_their_range_are_refused_at_the_door(tiny_runs, shared_cache, tmp_path, capsys):
    std = str(tiny_runs["standard"])
    out = ["--suite", "clean", "--out", str(tmp_path / "out"), "--no-progress"]
    assert (
        "--n 1601 is more than the 1600 images of the embedded test set; give --n 1600 or less, or leave "
        "--n out to use them all." in _error(capsys, ["evaluate", std, "--n", "1601", *out])
    )
    too_big = str(2**63)
    assert f"The seed --seed must be an integer from 0 to {2**63 - 1}, not {too_big}." in _error(
        capsys, ["evaluate", std, "--seed", too_big, *out]
    )
    assert "--subset-seed must be an integer from 0 to" in _error(
        capsys, ["evaluate", std, "--subset-seed", str(2**64), *out]
    )
    assert "with ASCII digits" in _error(capsys, ["evaluate", std, "--eps", "\uff18/255", *out])
    assert "must be >= 0, not '-0'" in _error(capsys, ["evaluate", std, "--eps", "-0", *out])
    assert not (tmp_path / "out" / "results.json").exists()


def test_the_help_states_the_request_defaults(capsys):
    """Options left out take EvaluationRequest's defaults (their one home); the help names the same values."""
    import re

    from freqtail.evaluate import EvaluationRequest

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)[1]
    default = EvaluationRequest()
    stated = {
        "--batch-size": default.batch_size,
        "--seed": default.seed,
        "--masking-n": default.masking.images,
        "--masking-queries": default.masking.queries,
        "--masking-min": default.masking.min_judged,
        "--num-workers": default.num_workers,
    }
    for option, value in stated.items():
        help_text = text.split(f"{option} ", 1)[1].split(" --", 1)[0]
        assert re.search(rf"\b{value}\b", help_text), (option, help_text)
