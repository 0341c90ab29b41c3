"""torchrun (2 gloo processes on CPU) against one process, and Ctrl-C on a real training process."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from freqtail.train import load_checkpoint
from freqtail.train.trainer import TIMING_KEYS
from test_train_support import tiny_root, worker_script  # noqa: F401

pytestmark = pytest.mark.slow

ARGS = [
    "train",
    "--model",
    "test-mlp",
    "--objective",
    "pgd-at",
    "--set",
    "attack_steps=2",
    "--set",
    "robust_eval_examples=24",
    "--set",
    "robust_eval_steps=2",
    "--set",
    "eval_batch_size=8",
    "--batch-size",
    "16",
    "--epochs",
    "2",
    "--lr",
    "0.05",
    "--no-progress",
    "--json",
]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _records(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def test_two_gloo_processes_match_one_process(tmp_path, tiny_root, worker_script):
    common = [*ARGS, "--data-root", str(tiny_root)]
    single = subprocess.run(
        [sys.executable, str(worker_script), *common, "--out", str(tmp_path / "one")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode == 0, single.stderr
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
    ]
    double = subprocess.run(
        [*launcher, str(worker_script), *common, "--out", str(tmp_path / "two")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert json.loads(double.stdout)["status"] == "complete"  # only rank 0 prints

    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        # exact integer counts; losses equal up to float summation order (DDP averages gradients
        # of two half-batches where one process averages one batch)
        assert (a["train_images"], a["test_images"], a["robust_examples"]) == (96, 48, 24)
        assert (a["train_images"], a["test_images"], a["robust_examples"]) == (
            b["train_images"],
            b["test_images"],
            b["robust_examples"],
        )
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        for key in ("train_acc", "test_acc", "test_robust_acc"):
            assert b[key] == pytest.approx(a[key], abs=1.5 / 24), key  # at most one borderline image flips
    weights_one = load_checkpoint(tmp_path / "one", "last").model_state
    weights_two = load_checkpoint(tmp_path / "two", "last").model_state
    for key, value in weights_one.items():
        torch.testing.assert_close(weights_two[key], value, rtol=1e-4, atol=1e-5)


def test_ctrl_c_leaves_a_resumable_checkpoint_and_resume_matches(tmp_path, tiny_root, worker_script):
    common = [*ARGS, "--data-root", str(tiny_root), "--epochs", "40", "--objective", "erm"]
    reference = subprocess.run(
        [sys.executable, str(worker_script), *common, "--out", str(tmp_path / "reference")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert reference.returncode == 0, reference.stderr

    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, str(worker_script), *common, "--out", str(run)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert json.loads(out)["status"] == "interrupted"
    assert "Ctrl-C: stopping after this step" in err and "Traceback" not in err
    stopped_at = load_checkpoint(run, "last").info
    assert not stopped_at["complete"] and stopped_at["global_step"] < 40 * 6

    resumed = subprocess.run(
        [sys.executable, str(worker_script), *common, "--out", str(run), "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr
    assert _records(run) == _records(tmp_path / "reference")
    final, expected = (
        load_checkpoint(run, "last").model_state,
        load_checkpoint(tmp_path / "reference", "last").model_state,
    )
    for key, value in expected.items():
        assert torch.equal(final[key], value), key
