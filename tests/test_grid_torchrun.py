"""``--nproc-per-cell 2``: grid cells trained by 2 gloo processes under torchrun on the CPU, for real.

A cell trains in a child torchrun process group into its run folder (the checkpoint records world
size 2), then is evaluated by the launcher; a failure on the ranks fails the cell with the ranks' own
sentence; Ctrl-C of the launcher stops the child process group and puts the cell back to pending.
One grid run shows all three (each torchrun start costs seconds of a loaded CPU).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freqtail.locks import try_lock
from freqtail.runs.layout import TRAIN_LOCK
from freqtail.train import load_checkpoint
from freqtail.workflows.run_folder import RunFolder
from freqtail.workflows.torchrun_training import ERROR_PREFIX, _failure

pytestmark = pytest.mark.slow

GRID = """\
set:
  dataset: embedded
  model: small-cnn
  model_options: {width: 4}
  epochs: 1
  train_subset: 128
  test_subset: 32
  batch_size: 64
  device: cpu
  progress: false
axes: {seed: [0]}
cells:
  - {name: odd-batch, batch_size: 63}  # 63 images do not divide among 2 processes: every rank refuses
  - {name: long, seed: 1, epochs: 100000}  # runs until Ctrl-C
suites: [clean]
evaluation: {n: 32}
"""


def _cells(folder: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads((folder / "grid.json").read_text())["cells"]}


def _wait_for(path: Path, process: subprocess.Popen, limit: float = 300.0) -> None:
    """Block until ``path`` exists (a deadline only against a hang, not a race)."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_cells_train_with_two_processes_fail_with_the_ranks_sentence_and_stop_on_ctrl_c(tmp_path):
    # One launcher, the cells in order: base-seed=0 is trained by 2 processes and evaluated,
    # odd-batch fails on every rank, long trains until the launcher gets Ctrl-C.
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    out = tmp_path / "grid"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "freqtail.cli", "grid", "run", str(spec), "--out", str(out)]
        + ["--nproc-per-cell", "2", "--retries", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    long_run = out / "long"
    _wait_for(long_run / "metrics.jsonl", process)  # its children trained an epoch and go on
    process.send_signal(signal.SIGINT)  # the launcher only: the children run in their own session
    printed, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "freqtail grid: interrupted." and "Traceback" not in err
    assert "Devices: each cell trains with 2 processes under torchrun" in printed
    cells = _cells(out)

    # done: trained by the 2 processes (the checkpoint says so), evaluated by the launcher
    assert cells["base-seed=0"]["state"] == "done"
    run = out / "base-seed=0"
    assert load_checkpoint(run, "last").info["world_size"] == 2
    records = RunFolder.open(run).results()
    assert [(r["suite"], r["total"], r["world_size"]) for r in records] == [("clean", 32, 1)]

    # failed: both ranks refused the odd batch; the cell's why is their one sentence
    assert cells["odd-batch"]["state"] == "failed"
    assert cells["odd-batch"]["why"] == (
        "The global batch_size 63 must be divisible by the 2 processes (each process takes batch_size / 2)."
    )
    assert not (out / "odd-batch" / "metrics.jsonl").exists()

    # stopped: pending again, the children are gone (nobody holds the run folder's training lock)
    # and what they left resumes: a checkpoint of the 2 processes after at least one epoch
    assert "long: interrupted; it is pending again" in printed
    assert (cells["long"]["state"], cells["long"]["attempts"]) == ("pending", 0)
    try_lock(long_run / TRAIN_LOCK, purpose="checking that the lock is free").release()
    info = load_checkpoint(long_run, "last").info
    assert info["world_size"] == 2 and info["global_step"] >= 2 and not info["complete"]


def test_the_sentence_survives_two_processes_lines_running_together():
    """Both ranks refuse on one shared pipe; a line where one rank's output ran into the other's
    (seen on a loaded CI machine) still gives the sentence once, not twice glued together."""
    sentence = "The global batch_size 63 must be divisible by the 2 processes."
    glued = collections.deque(["[W] a warning", f"{ERROR_PREFIX}{sentence}{ERROR_PREFIX}{sentence}", ""])
    assert str(_failure(2, glued, 2)) == sentence
    no_sentence = collections.deque(["starting", "Segmentation fault", ""])
    assert str(_failure(139, no_sentence, 2)) == (
        "Training with 2 processes under torchrun failed (exit status 139); its last line: Segmentation fault"
    )
