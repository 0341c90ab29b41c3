"""Shared helpers of the training tests (no tests here): a tiny dataset folder and a worker script.

The tiny dataset is a 4-class set of natural 32x32 photo crops (96 train, 48 test) in the embedded
layout, read through ``--data-root`` like any embedded-format folder, so training tests need no cache.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqtail.workflows.training import TrainRequest, train_run

CLASSES = ("astronaut", "coffee", "brick", "moon")

#: A script that runs the freqtail command line with its arguments. With ``TEST_GATE=DIR`` in the
#: environment, rank 0 pauses at the end of epoch ``TEST_GATE_EPOCH`` (default 1) — after that
#: epoch's checkpoint and metrics are written, while the run folder's lock is held — or, with
#: ``TEST_GATE_STEP=S``, after step S of that epoch; it writes ``DIR/holding`` (its pid) and waits
#: until ``DIR/release`` exists or a stop was requested (Ctrl-C): a deterministic way for a test to
#: act while a real training process is at a known point.
#: With ``TEST_IGNORE_SIGTERM=1`` the process ignores SIGTERM until training installs its own handler,
#: so torchrun cannot stop a worker (after another one failed) before it has said why it stops.
WORKER_SCRIPT = """
import os
import signal
import sys
import time
from pathlib import Path

if os.environ.get("TEST_IGNORE_SIGTERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

gate = os.environ.get("TEST_GATE")
if gate:
    import dataclasses

    import freqtail.workflows.training as training

    original = training.train_run

    epoch = int(os.environ.get("TEST_GATE_EPOCH", "1"))
    step = int(os.environ.get("TEST_GATE_STEP", "0"))

    class Gate:
        def on_step(self, run):
            if step and run.epoch + 1 == epoch and run.step_in_epoch == step:
                self.hold(run)

        def on_epoch_end(self, run, record):
            if not step and record["epoch"] == epoch:
                self.hold(run)

        def hold(self, run):
            if run.dist.is_main:
                Path(gate, "holding").write_text(str(os.getpid()))
                while not Path(gate, "release").exists() and not run.stop.requested:
                    time.sleep(0.01)

    def train_run(request):
        return original(dataclasses.replace(request, callbacks=[Gate()]))

    training.train_run = train_run

from freqtail.cli import main

sys.exit(main(sys.argv[1:]))
"""


def train(config, run_dir, **options):
    """The training tests' shorthand: :func:`train_run` of one :class:`TrainRequest`."""
    return train_run(TrainRequest(config, run_dir, **options))


def write_tiny_dataset(root):
    from freqtail.sample_photos import photo_crops

    root.mkdir(parents=True, exist_ok=True)
    for split, per_photo, seed in (("train", 24, 0), ("test", 12, 1)):
        images = photo_crops(32, per_photo, seed=seed, names=CLASSES)
        labels = np.repeat(np.arange(len(CLASSES)), per_photo)
        np.save(root / f"{split}_images.npy", images)
        np.save(root / f"{split}_labels.npy", labels)
    (root / "meta.json").write_text(json.dumps({"classes": list(CLASSES)}))
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Folder of the tiny 4-class dataset (embedded layout)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def worker_script(tmp_path_factory):
    """Path of :data:`WORKER_SCRIPT` written to a file."""
    path = tmp_path_factory.mktemp("worker") / "train_worker.py"
    path.write_text(WORKER_SCRIPT)
    return path
