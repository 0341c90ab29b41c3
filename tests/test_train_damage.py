"""A damaged run folder never silently restarts: a missing or broken ``last.json`` resumes from the
newest complete checkpoint and says so, or refuses; metrics.jsonl and checkpoints are kept."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json
import shutil

import pytest
import torch

from freqtail.cli import main
from freqtail.errors import CheckpointError
from freqtail.runs.layout import TRAIN_LOCK
from freqtail.train import load_checkpoint, load_config
from freqtail.train.records import TIMING_KEYS
from test_train_support import tiny_root, train  # noqa: F401

EPOCH_1, EPOCH_2 = "step-00000006", "step-00000012"  # 6 steps per epoch (96 images, batch 16)


def _config(root):
    return load_config(
        overrides={
            "data_root": str(root),
            "model_options": {"width": 4},
            "batch_size": 16,
            "epochs": 3,
            "lr": 0.05,
            "progress": False,
        }
    )


class StopAfter:
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            trainer.request_stop()


class Log(list):
    def __call__(self, message):
        self.append(message)


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _snapshot(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(TRAIN_LOCK)
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_root):
    """The same run trained in one go (3 epochs)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    train(_config(tiny_root), run, log=Log())
    return run


@pytest.fixture()
def two_epochs(tmp_path, tiny_root):
    """A run stopped after epoch 2, with epoch 1's checkpoint kept as an extra complete checkpoint."""
    run = tmp_path / "run"
    train(_config(tiny_root), run, log=Log(), callbacks=[StopAfter(1)])
    saved = tmp_path / EPOCH_1
    shutil.copytree(run / "checkpoints" / EPOCH_1, saved)
    train(_config(tiny_root), run, resume=True, log=Log(), callbacks=[StopAfter(2)])
    if not (run / "checkpoints" / EPOCH_1).exists():  # rotated away unless it is still "best"
        shutil.copytree(saved, run / "checkpoints" / EPOCH_1)
    assert json.loads((run / "checkpoints" / "last.json").read_text())["checkpoint"] == EPOCH_2
    return run


def _resume_and_compare(run, tiny_root, reference, expected_note, restart_at, kept_lines):
    """Resume ``run``; check the note, where it restarts, that metrics.jsonl never shrinks, and that
    the result equals the uninterrupted run bit for bit."""
    before = (run / "metrics.jsonl").read_text().splitlines()
    assert len(before) == kept_lines

    class NeverShrinks:
        def on_epoch_end(self, trainer, record):
            assert len((run / "metrics.jsonl").read_text().splitlines()) >= len(before)

    log = Log()
    result = train(_config(tiny_root), run, resume=True, log=log, callbacks=[NeverShrinks()])
    assert log[0] == expected_note
    assert f"Resuming {run} at epoch {restart_at} (global step {6 * (restart_at - 1)})." in log
    assert result.status == "complete" and result.epochs_completed == 3
    assert _without_timing(_metrics(run)) == _without_timing(_metrics(reference))
    assert (run / "metrics.jsonl").read_text().splitlines()[: restart_at - 1] == before[: restart_at - 1]
    final, expected = load_checkpoint(run, "last"), load_checkpoint(reference, "last")
    for key, value in expected.model_state.items():
        assert torch.equal(final.model_state[key], value), key
    return log


def test_deleted_last_json_resumes_from_the_newest_complete_checkpoint(two_epochs, tiny_root, reference):
    (two_epochs / "checkpoints" / "last.json").unlink()
    _resume_and_compare(
        two_epochs,
        tiny_root,
        reference,
        f"In {two_epochs}, checkpoints/last.json is missing; resuming from the newest complete checkpoint "
        f"{EPOCH_2} (epoch 2, global step 12).",
        restart_at=3,
        kept_lines=2,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "is empty"),
        ('{"format": "freqtail-checkpoint-poin', "is not valid JSON"),
        ("[1, 2]", "is not a checkpoint pointer"),
    ],
    ids=["empty", "truncated-json", "not-a-pointer"],
)
def test_broken_last_json_resumes_from_the_newest_complete_checkpoint(
    two_epochs, tiny_root, reference, content, problem
):
    (two_epochs / "checkpoints" / "last.json").write_text(content)
    _resume_and_compare(
        two_epochs,
        tiny_root,
        reference,
        f"In {two_epochs}, checkpoints/last.json {problem}; resuming from the newest complete checkpoint "
        f"{EPOCH_2} (epoch 2, global step 12).",
        restart_at=3,
        kept_lines=2,
    )
    pointer = json.loads((two_epochs / "checkpoints" / "last.json").read_text())
    assert pointer["format"] == "freqtail-checkpoint-pointer"  # repaired, then moved on as usual


def test_last_json_naming_a_deleted_checkpoint_resumes_from_an_older_one_keeping_metrics(
    two_epochs, tiny_root, reference
):
    shutil.rmtree(two_epochs / "checkpoints" / EPOCH_2)
    log = _resume_and_compare(
        two_epochs,
        tiny_root,
        reference,
        f"In {two_epochs}, checkpoints/last.json names {EPOCH_2}, which does not exist; resuming from the "
        f"newest complete checkpoint {EPOCH_1} (epoch 1, global step 6).",
        restart_at=2,
        kept_lines=2,
    )
    assert (
        f"{two_epochs / 'metrics.jsonl'} holds 2 epoch records, the checkpoint 1; the later records stay "
        "until their epochs are trained again." in log
    )


def test_half_written_checkpoints_are_skipped_and_left_in_place(two_epochs, tiny_root, reference):
    checkpoints = two_epochs / "checkpoints"
    weights = checkpoints / EPOCH_2 / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])  # a half-written weights file
    named_by_best = json.loads((checkpoints / "best.json").read_text())["checkpoint"] == EPOCH_2
    (checkpoints / "step-00000099").mkdir()  # a newer folder whose copy stopped early
    (checkpoints / "step-00000099" / "model.safetensors").write_bytes(b"\0" * 100)
    _resume_and_compare(
        two_epochs,
        tiny_root,
        reference,
        f"In {two_epochs}, checkpoints/last.json names {EPOCH_2}, which is incomplete (model.safetensors "
        f"has {size // 2} bytes, {size} expected); resuming from the newest complete checkpoint {EPOCH_1} "
        "(epoch 1, global step 6).",
        restart_at=2,
        kept_lines=2,
    )
    # A damaged folder no pointer names is never deleted (without --force); one that "best" named is
    # rotated away like any checkpoint once "best" moves on to the recomputed epoch.
    assert (checkpoints / "step-00000099" / "model.safetensors").stat().st_size == 100
    assert weights.exists() != named_by_best
    if not named_by_best:
        assert weights.stat().st_size == size // 2


def test_no_complete_checkpoint_with_a_previous_run_refuses_and_changes_nothing(
    two_epochs, tiny_root, capsys
):
    checkpoints = two_epochs / "checkpoints"
    for name in (EPOCH_1, EPOCH_2):
        (checkpoints / name / "optimizer.safetensors").unlink()
    (checkpoints / "last.json").unlink()
    before = _snapshot(two_epochs)
    expected = (
        f"The run in {two_epochs} cannot be resumed: checkpoints/last.json is missing and no complete "
        "checkpoint is left, although the folder holds a previous run (metrics.jsonl has 2 epoch "
        "records, checkpoints/ has 2 damaged checkpoint folders); nothing was changed — pass --force to "
        "start it over (this deletes its metrics.jsonl and checkpoints/)."
    )
    with pytest.raises(CheckpointError) as info:
        train(_config(tiny_root), two_epochs, resume=True, log=Log())
    assert str(info.value) == expected
    argv = [
        "train",
        "--data-root",
        str(tiny_root),
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--batch-size",
        "16",
        "--set",
        "model_options={width:4}",
        "--no-progress",
        "--out",
        str(two_epochs),
        "--resume",
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"freqtail train: error: {expected}\n"
    assert _snapshot(two_epochs) == before
    assert main([*argv, "--force"]) == 0  # the explicit way to start over
    assert "Run complete (3 epochs)" in capsys.readouterr().out
    assert len(_metrics(two_epochs)) == 3


def test_a_run_killed_before_its_first_checkpoint_starts_over_and_says_so(tmp_path, tiny_root, reference):
    run = tmp_path / "run"

    class Crash:
        def on_step(self, trainer):
            raise KeyboardInterrupt  # a second Ctrl-C in the first epoch: no checkpoint yet

    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny_root), run, log=Log(), callbacks=[Crash()])
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(TRAIN_LOCK)) == [
        "config.yaml",
        "metrics.jsonl",
    ]
    log = Log()
    assert train(_config(tiny_root), run, resume=True, log=log).status == "complete"
    assert log[0] == f"The run in {run} stopped before its first checkpoint; starting it from the beginning."
    assert _without_timing(_metrics(run)) == _without_timing(_metrics(reference))


def test_resume_note_goes_to_stderr_on_the_command_line(two_epochs, tiny_root, capsys):
    (two_epochs / "checkpoints" / "last.json").unlink()
    argv = ["train", "--data-root", str(tiny_root), "--epochs", "3", "--lr", "0.05", "--batch-size", "16"]
    argv += ["--set", "model_options={width:4}", "--no-progress", "--out", str(two_epochs), "--resume"]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"In {two_epochs}, checkpoints/last.json is missing; resuming from the newest complete checkpoint "
        f"{EPOCH_2} (epoch 2, global step 12)."
    )
    assert err[1] == f"Resuming {two_epochs} at epoch 3 (global step 12)."
