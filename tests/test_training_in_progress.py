"""Evaluating a run that is being trained is refused unless asked for, naming the checkpoint."""

from __future__ import annotations

import json
import os
import socket

from freqtail.cli import main
from freqtail.locks import Holder, holder_path, live_holder, try_lock
from freqtail.runs.layout import TRAIN_LOCK


def _trained(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--set", "model_options={width: 4}", "--set", "steps=1"]
    argv += ["--set", "batch_size=8", "--set", "train_subset=16", "--set", "test_subset=16"]
    assert main([*argv, "--set", "progress=false"]) == 0
    return run


def test_evaluate_refuses_a_run_in_training_and_goes_on_when_allowed(tmp_path, capsys):
    run = _trained(tmp_path)
    evaluate = ["evaluate", str(run), "--suite", "clean", "--n", "8", "--no-progress"]
    with try_lock(run / TRAIN_LOCK, purpose="training"):  # what `freqtail train` holds while it runs
        capsys.readouterr()
        assert main(evaluate) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"process {os.getpid()} on host {socket.gethostname()}" in err
        assert "its best checkpoint (epoch 1) will be replaced" in err and "--allow-training" in err
        assert not (run / "results.json").exists()
        assert main([*evaluate, "--allow-training"]) == 0
    assert json.loads((run / "results.json").read_text())["results"]
    assert main([*evaluate, "--resume"]) == 0  # the lock released: no refusal


def test_a_holder_record_of_a_process_that_ended_is_not_a_trainer(tmp_path):
    lock = tmp_path / TRAIN_LOCK
    assert live_holder(lock) is None
    dead = Holder(2**22 + 12345, socket.gethostname(), "2026-01-01T00:00:00Z", "freqtail train", "training")
    holder_path(lock).write_text(json.dumps(dead.to_json()))
    assert live_holder(lock) is None  # no such process: a training that was killed
    elsewhere = Holder(1, "another-host", "2026-01-01T00:00:00Z", "freqtail train", "training")
    holder_path(lock).write_text(json.dumps(elsewhere.to_json()))
    assert live_holder(lock) == elsewhere  # cannot be probed from here: counts as live
