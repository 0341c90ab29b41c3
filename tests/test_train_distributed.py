"""Two gloo processes on the CPU (ranks forked from the test process) against one process, Ctrl-C on a
real training process and on a real torchrun, and the run-folder lock under torchrun."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from forked import forked_cli_ranks
from freqtail.cli import main
from freqtail.runs.layout import TRAIN_LOCK
from freqtail.train import load_checkpoint
from freqtail.train.records import TIMING_KEYS
from test_train_support import tiny_root, worker_script  # noqa: F401

pytestmark = pytest.mark.slow

#: A BatchNorm-free model (GroupNorm): an image's output does not depend on its batch neighbours.
ARGS = [
    "train",
    "--model",
    "small-cnn",
    "--set",
    "model_options={width:4,norm:group}",
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
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2"]
#: freqtail's launcher: torchrun's arguments, freqtail's exit codes (freqtail.train.torchrun).
LAUNCHER = ["-m", "freqtail.train.torchrun", *TORCHRUN[2:]]
#: Rank 0's line when torchrun forwards Ctrl-C (SIGINT; SIGTERM when torch's agent hits its timer
#: race, see freqtail.train.torchrun).
STOPPING = re.compile(r"(Ctrl-C|SIGTERM): stopping after this step and writing a checkpoint")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _wait_for_file(path, process, limit=300):
    """Block until ``path`` exists (a marker the trainer or the test gate writes)."""
    deadline = time.monotonic() + limit  # a bound for a broken build, not a race with training
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def _train_here(argv, capsys):
    """``freqtail`` run in this process (no torch start-up): ``(exit code, stdout, stderr)``."""
    capsys.readouterr()
    code = main(argv)
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def _records(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


@pytest.mark.parametrize(
    "execution", [[], ["--channels-last", "--compile"]], ids=["eager", "channels-last-compiled"]
)
def test_two_gloo_processes_match_one_process(tmp_path, tiny_root, execution, capsys):
    # With execution options, the two processes run channels-last and compiled (torch.compile of the
    # DDP-wrapped model, as PyTorch recommends) against one eager process: the same promise holds.
    # The tolerances below hold for this setting's random draws (float rounding differences can grow
    # through max-pool near-ties and attack-gradient signs, see README); the loader pipeline's draws
    # are the ones they were measured on. The device pipeline's per-rank batches are checked exactly
    # in test_train_device_data.
    common = [*ARGS, "--data-root", str(tiny_root), "--set", "data_pipeline=loader"]
    code, _, err = _train_here([*common, "--out", str(tmp_path / "one")], capsys)  # the one process
    assert code == 0, err
    # The two ranks are forked from this process (tests/forked.py): a torchrun start costs seconds of
    # CPU; torchrun itself is tested below.
    ranks = forked_cli_ranks(
        [*common, *execution, "--set", "log=tensorboard", "--out", str(tmp_path / "two")], 2
    )
    printed = [rank.communicate(timeout=300) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], [err[-3000:] for _, err in printed]
    assert json.loads(printed[0][0])["status"] == "complete" and printed[1][0] == ""  # only rank 0 prints

    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        # What README "Many GPUs and machines" promises for a BatchNorm-free model: identical image
        # counts and accuracies; the loss equal up to float32 summation order (each process
        # averages its half batch, DDP averages the two gradients), hence weights equal to 1e-5.
        assert (a["train_images"], a["test_images"], a["robust_examples"]) == (96, 48, 24)
        for key in ("train_images", "test_images", "robust_examples", "train_acc", "test_acc"):
            assert b[key] == a[key], key
        assert b["test_robust_acc"] == a["test_robust_acc"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
    # log: tensorboard under torchrun: rank 0 alone writes (one event file), the numbers of metrics.jsonl
    events = tmp_path / "two" / "tensorboard"
    assert len(list(events.iterdir())) == 1
    reader = EventAccumulator(str(events))
    reader.Reload()
    assert [(e.step, np.float32(e.value)) for e in reader.Scalars("train/loss")] == [
        (r["epoch"], np.float32(r["train_loss"])) for r in two
    ]
    weights_one = load_checkpoint(tmp_path / "one", "last").model_state
    weights_two = load_checkpoint(tmp_path / "two", "last").model_state
    for key, value in weights_one.items():
        torch.testing.assert_close(weights_two[key], value, rtol=0, atol=1e-5)


def test_ctrl_c_leaves_a_resumable_checkpoint_and_resume_matches(tmp_path, tiny_root, worker_script, capsys):
    """A real SIGINT to a training process; the reference and the resumed run train in this process."""
    common = [*ARGS, "--data-root", str(tiny_root), "--epochs", "3", "--objective", "erm"]
    code, _, err = _train_here([*common, "--out", str(tmp_path / "reference")], capsys)
    assert code == 0, err

    run, gate = tmp_path / "run", tmp_path / "gate"
    gate.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(worker_script), *common, "--out", str(run)],
        env=dict(_env(), TEST_GATE=str(gate), TEST_GATE_EPOCH="2", TEST_GATE_STEP="3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_file(gate / "holding", process)  # paused after step 3 of epoch 2
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert json.loads(out)["status"] == "interrupted"
    assert "Ctrl-C: stopping after this step" in err and "Traceback" not in err
    stopped_at = load_checkpoint(run, "last").info
    assert not stopped_at["complete"] and stopped_at["global_step"] == 6 + 3
    assert stopped_at["progress"]["step_in_epoch"] == 3  # in the middle of epoch 2

    code, _, err = _train_here([*common, "--out", str(run), "--resume"], capsys)
    assert code == 0, err
    assert f"Resuming {run} at epoch 2, step 3 (global step 9)." in err
    assert _records(run) == _records(tmp_path / "reference")
    final, expected = (
        load_checkpoint(run, "last").model_state,
        load_checkpoint(tmp_path / "reference", "last").model_state,
    )
    for key, value in expected.items():
        assert torch.equal(final[key], value), key


def _rank_logs(log_dir):
    """``{rank: (stdout, stderr)}`` of a torchrun started with ``--log-dir log_dir --redirects 3``."""
    logs = {}
    for rank in (0, 1):
        (folder,) = log_dir.glob(f"*/attempt_0/{rank}")
        logs[rank] = ((folder / "stdout.log").read_text(), (folder / "stderr.log").read_text())
    return logs


def _torchrun_ctrl_c(command, gate):
    """Start ``command`` in its own process group with the test gate (test_train_support) at the end
    of epoch 1, wait until rank 0 is there, send SIGINT to the group (what a terminal's Ctrl-C does)
    and return the finished process's ``(rc, stdout, stderr)``."""
    gate.mkdir()
    env = dict(_env(), TEST_GATE=str(gate))
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _wait_for_file(gate / "holding", process)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, out, err


def test_ctrl_c_under_torchrun_stops_every_rank_cleanly(tmp_path, tiny_root, worker_script):
    app = [str(worker_script), *ARGS, "--data-root", str(tiny_root), "--epochs", "3", "--objective", "erm"]

    # Plain torchrun: the workers stop cleanly (no traceback, rank 0 explains); torchrun itself then
    # prints its SignalException traceback and exits 1 (documented in README).
    run, logs = tmp_path / "plain", tmp_path / "logs"
    code, _, err = _torchrun_ctrl_c(
        [sys.executable, *TORCHRUN, "--log-dir", str(logs), "--redirects", "3", *app, "--out", str(run)],
        tmp_path / "gate-plain",
    )
    assert code == 1 and "SignalException: Process" in err and "got signal: 2" in err, err[-2000:]
    # torch's agent logs this, unless the signal hits its timer race (freqtail.train.torchrun docstring)
    assert "Received 2 death signal, shutting down workers" in err or "UnboundLocalError" in err
    ranks = _rank_logs(logs)
    for rank, (out, rank_err) in ranks.items():
        assert "Traceback" not in rank_err and "Traceback" not in out, (rank, rank_err)
    assert json.loads(ranks[0][0])["status"] == "interrupted" and ranks[1][0] == ""
    assert STOPPING.search(ranks[0][1]), ranks[0][1]
    assert "Stopped after epoch 1; continue with --resume." in ranks[0][1]

    # freqtail's launcher: the same, and it exits 130 with no traceback anywhere.
    run = tmp_path / "launcher"
    code, out, err = _torchrun_ctrl_c([sys.executable, *LAUNCHER, *app, "--out", str(run)], tmp_path / "gate")
    assert code == 130, err[-2000:]
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    assert json.loads(out)["status"] == "interrupted" and json.loads(out)["epochs_completed"] == 1
    assert STOPPING.search(err), err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last == "freqtail torchrun: stopped by Ctrl-C (SIGINT); the workers were told to stop."
    assert load_checkpoint(run, "last").info["epoch"] == 1

    # The resume by two ranks forked from this process (tests/forked.py): torchrun was tested above.
    ranks = forked_cli_ranks([*app[1:], "--out", str(run), "--resume"], 2)
    (out, err), _ = [rank.communicate(timeout=600) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], err[-2000:]
    assert f"Resuming {run} at epoch 2 (global step 6)." in err
    assert json.loads(out)["epochs_completed"] == 3
    assert len(_records(run)) == 3


def test_a_locked_run_folder_is_refused_on_every_rank_without_a_hang(tmp_path, tiny_root, worker_script):
    from freqtail.locks import try_lock

    run = tmp_path / "run"
    with try_lock(run / TRAIN_LOCK, purpose="training") as lock:
        refused = subprocess.run(
            [
                sys.executable,
                *LAUNCHER,
                str(worker_script),
                *ARGS,
                "--data-root",
                str(tiny_root),
                "--out",
                str(run),
            ],
            env=dict(_env(), TEST_IGNORE_SIGTERM="1"),  # each rank gets to say why it stops
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert refused.returncode == 2, refused.stderr[-2000:]
        sentence = (
            f"freqtail train: error: The run folder {run} is being trained by {lock.holder.describe()}; "
            "wait for it or choose another --out."
        )
        # rank 0 decides before any training collective and broadcasts the refusal: rank 1 states it
        # too instead of waiting for a rank 0 that has stopped (the two ranks share one stderr, so
        # their lines may interleave: count the sentences)
        assert refused.stderr.count(sentence) == 2, refused.stderr
        assert "Traceback" not in refused.stderr
    assert sorted(p.name for p in run.iterdir()) == [TRAIN_LOCK]  # nothing written
