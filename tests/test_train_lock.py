"""One trainer per run folder: a second ``freqtail train`` is refused naming the holder and touches
nothing; the lock of a SIGKILLed trainer is taken over. Real processes, synchronised on files."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from freqtail.cli import main
from freqtail.errors import LockedError
from freqtail.locks import read_holder, try_lock
from freqtail.runs.layout import TRAIN_LOCK
from freqtail.train import load_config
from test_train_support import tiny_root, train, worker_script  # noqa: F401

TINY = ["--model", "small-cnn", "--set", "model_options={width: 4}", "--batch-size", "16", "--no-progress"]
LOCK_FILES = (TRAIN_LOCK, TRAIN_LOCK + ".json")


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _snapshot(folder):
    """Every file under ``folder`` except the lock files, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in LOCK_FILES
    }


def _start_gated(worker_script, argv, gate):
    """Start a training process that pauses, holding its run folder, at the end of epoch 1."""
    gate.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(worker_script), *argv],
        env=_env(TEST_GATE=str(gate)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300  # a bound for a broken build, not a race with training
    while not (gate / "holding").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    return process


def _run(worker_script, argv):
    return subprocess.run(
        [sys.executable, str(worker_script), *argv], env=_env(), capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_second_trainer_is_refused_naming_the_holder_and_touches_nothing(
    tmp_path, tiny_root, worker_script, capsys
):
    run = tmp_path / "run"
    argv = ["train", "--data-root", str(tiny_root), "--epochs", "2", *TINY, "--out", str(run)]
    first = _start_gated(worker_script, argv, tmp_path / "gate")
    try:
        before = _snapshot(run)
        assert {"config.yaml", "metrics.jsonl"} <= set(before)
        holder = read_holder(run / TRAIN_LOCK)
        assert holder.pid == first.pid and holder.purpose == "training"
        # the reported symptom: another seed into the same folder; also --resume and --force. The
        # second trainers run in this process (the first is a real other process holding the lock).
        for extra in (["--seed", "1"], ["--resume"], ["--force"], ["--seed", "1", "--force"]):
            capsys.readouterr()
            assert main([*argv, *extra]) == 2, extra
            printed = capsys.readouterr()
            assert printed.err.splitlines() == [
                f"freqtail train: error: The run folder {run} is being trained by {holder.describe()}; "
                "wait for it or choose another --out."
            ]
            assert printed.out == ""
            assert _snapshot(run) == before, extra
        assert re.fullmatch(
            rf"process {first.pid} on host \S+ since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
            r"\(train_worker.py train .*\)",
            holder.describe(),
        )
    finally:
        (tmp_path / "gate" / "release").touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "Run complete (2 epochs)" in out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert "seed: 0\n" in (run / "config.yaml").read_text()
    assert not (run / (TRAIN_LOCK + ".json")).exists()  # released cleanly: no holder record left


@pytest.mark.slow
def test_the_lock_of_a_killed_trainer_is_taken_over_and_the_run_resumes(tmp_path, tiny_root, worker_script):
    run = tmp_path / "run"
    argv = ["train", "--data-root", str(tiny_root), "--epochs", "2", *TINY, "--out", str(run)]
    first = _start_gated(worker_script, argv, tmp_path / "gate")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=120)
    dead = read_holder(run / TRAIN_LOCK)
    assert dead.pid == first.pid  # the killed trainer's record stays behind

    resumed = _run(worker_script, [*argv, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stderr.splitlines()
    assert lines[0] == (
        f"Took over the lock {run / TRAIN_LOCK} from {dead.describe()}, "
        "which no longer holds it (it ended without releasing it)."
    )
    assert f"Resuming {run} at epoch 2 (global step 6)." in lines
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert read_holder(run / TRAIN_LOCK) is None


def test_a_lock_held_elsewhere_refuses_train_and_the_command_line(tmp_path, tiny_root, capsys):
    run = tmp_path / "run"
    config = load_config(
        overrides={"data_root": str(tiny_root), "model_options": {"width": 4}, "batch_size": 16, "epochs": 1}
    )
    with try_lock(run / TRAIN_LOCK, purpose="training") as lock:
        with pytest.raises(LockedError, match=re.escape(f"being trained by {lock.holder.describe()}")):
            train(config, run, log=lambda message: None)
        code = main(["train", "--data-root", str(tiny_root), "--epochs", "1", *TINY, "--out", str(run)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert err.startswith(
            f"freqtail train: error: The run folder {run} is being trained by process {os.getpid()}"
        )
    assert sorted(p.name for p in run.iterdir()) == [TRAIN_LOCK]
    # the lock files alone do not make the folder "not empty"
    assert train(config, run, log=lambda message: None).status == "complete"
