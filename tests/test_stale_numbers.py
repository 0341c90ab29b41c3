"""Stale numbers: a record measured on a checkpoint that the run's pointer no longer names is marked in
results.md (rewritten when training moves the pointer), in ``freqtail compare`` and in the report, with
the command that measures it again; that command clears the mark."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

import freqtail.workflows.training as training
from freqtail.cli import main
from freqtail.evaluate.compare import RunResults, compare_markdown, compare_runs
from freqtail.evaluate.tables import results_markdown
from freqtail.train.checkpoint import POINTER_FORMAT
from freqtail.train.staleness import stale_checkpoints, stale_ids, with_staleness

TINY = ["--model", "small-cnn", "--set", "model_options={width: 4}", "--batch-size", "32", "--no-progress"]
TINY += ["--set", "train_subset=64", "--set", "test_subset=32"]


def _pointer(run, which, folder, epoch):
    checkpoints = run / "checkpoints"
    (checkpoints / folder).mkdir(parents=True, exist_ok=True)
    pointer = {"format": POINTER_FORMAT, "checkpoint": folder, "epoch": epoch, "global_step": epoch * 3}
    (checkpoints / f"{which}.json").write_text(json.dumps(pointer))


def _record(run, which, folder, epoch, metric="clean", suite="clean", n=8, home=None):
    path = ((home or run) / "checkpoints" / folder).resolve()
    return {
        "id": f"{which}|standard|{metric}|",
        "metric": metric,
        "threat_model": "standard",
        "suite": suite,
        "accuracy": 0.5,
        "correct": 4,
        "total": 8,
        "data": {"n": n, "dataset": "embedded"},
        "checkpoint": {"path": str(path), "which": which, "epoch": epoch},
    }


def test_a_record_is_stale_exactly_when_its_checkpoint_folder_is_not_the_pointers(tmp_path):
    run = tmp_path / "run"
    _pointer(run, "best", "step-000009", 3)
    _pointer(run, "last", "step-000015", 5)
    fresh = _record(run, "best", "step-000009", 3)
    old = _record(run, "last", "step-000006", 2, metric="pgd-20-ce", suite="pgd20")
    assert stale_checkpoints(run, [fresh]) == []
    (entry,) = stale_checkpoints(run, [fresh, old])
    assert (entry.which, entry.measured_epochs, entry.current, entry.current_epoch) == (
        "last",
        (2,),
        "step-000015",
        5,
    )
    assert entry.record_ids == ("last|standard|pgd-20-ce|",) and stale_ids([entry]) == {old["id"]}
    assert shlex.split(entry.refresh_command(run)) == [
        "freqtail", "evaluate", str(run), "--which", "last", "--suite", "pgd20", "--n", "8"
    ]  # fmt: skip
    assert entry.sentence(run) == (
        "Stale: 1 number of `last` was measured on the checkpoint of epoch 2, but the run's last "
        f"checkpoint is now epoch 5; measure it again with `{entry.refresh_command(run)}`."
    )
    # not judged: a checkpoint folder of another run (evaluate FILE --out), and a named checkpoint file
    elsewhere = _record(run, "last", "step-000006", 2, home=tmp_path / "other")
    named = {**_record(run, "last", "step-000006", 2), "id": "model|standard|clean|"}
    named["checkpoint"]["which"] = None
    assert stale_checkpoints(run, [elsewhere, named]) == []
    # the pointer gone (a folder whose checkpoints were deleted) leaves its records stale too
    (run / "checkpoints" / "best.json").unlink()
    (gone,) = stale_checkpoints(run, [fresh])
    assert gone.current is None and "the run has no best checkpoint any more" in gone.sentence(run)
    assert stale_checkpoints(tmp_path / "no-checkpoints", [fresh]) == []


def test_results_md_and_compare_mark_stale_rows_apart_from_fresh_ones(tmp_path):
    run = tmp_path / "run"
    _pointer(run, "best", "step-000015", 5)
    stale = _record(run, "best", "step-000006", 2, metric="pgd-20-ce", suite="pgd20")
    stale["id"] = "best|standard|pgd-20-ce|eps=8/255"
    fresh = _record(run, "best", "step-000015", 5)
    (entry,) = stale_checkpoints(run, [stale, fresh])
    text = results_markdown(
        {"results": [stale, fresh]}, stale_notes=[entry.sentence(run)], stale_ids=stale_ids([entry])
    )
    assert f"## Stale numbers\n\n- ⚠ {entry.sentence(run)}" in text
    rows = [line for line in text.splitlines() if line.startswith("| best")]
    assert [row.split("|")[1].strip() for row in rows] == ["best", "best (stale)"]
    assert "| best (stale) | standard | – | 50.00 |" in text  # the stale row holds only the stale number

    other = tmp_path / "other"
    _pointer(other, "best", "step-000003", 1)
    runs = [
        with_staleness(RunResults("run", str(run), [stale, fresh])),
        with_staleness(RunResults("other", str(other), [_record(other, "best", "step-000003", 1)])),
    ]
    comparison = compare_runs(runs)
    assert [r["stale"] for r in comparison["runs"]] == [[entry.sentence(run)], []]
    markdown = compare_markdown(comparison)
    assert f"- ⚠ run: {entry.sentence(run)}" in markdown
    assert "| run (stale) | standard |" in markdown and "| other | standard |" in markdown


@pytest.mark.slow
def test_training_on_marks_the_evaluated_last_stale_until_the_refresh_command_runs(
    tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    train = ["train", *TINY, "--epochs", "2", "--out", str(run)]
    original = training.train_run

    class StopAfterTheFirstEpoch:  # as a Ctrl-C in epoch 1 would
        def on_epoch_end(self, run, record):
            run.stop.request()

    with monkeypatch.context() as patch:
        patch.setattr(
            training,
            "train_run",
            lambda request: original(dataclasses.replace(request, callbacks=[StopAfterTheFirstEpoch()])),
        )
        assert main(train) == 130
    assert (
        main(["evaluate", str(run), "--which", "last", "--suite", "clean", "--n", "8", "--no-progress"]) == 0
    )
    assert "Stale" not in (run / "results.md").read_text()
    # training goes on: the last pointer moves to epoch 2 and training rewrites results.md
    assert main([*train, "--resume"]) == 0
    markdown = (run / "results.md").read_text()
    command = f"freqtail evaluate {run} --which last --suite clean --n 8"
    assert (
        "- ⚠ Stale: 1 number of `last` was measured on the checkpoint of epoch 1, but the run's last "
        f"checkpoint is now epoch 2; measure it again with `{command}`."
    ) in markdown
    assert "| last (stale) | standard |" in markdown
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    report = (run / "report.md").read_text()
    assert "Stale: 1 number of `last`" in report and "last (stale)" in report
    # the command the note gives measures the number again on epoch 2: nothing is stale any more
    assert main([*shlex.split(command)[1:], "--no-progress"]) == 0
    refreshed = (run / "results.md").read_text()
    assert "Stale" not in refreshed and "(stale)" not in refreshed
    (record,) = json.loads((run / "results.json").read_text())["results"]
    assert record["checkpoint"]["epoch"] == 2
