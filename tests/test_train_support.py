"""Shared helpers of the training tests (no tests here): a tiny dataset folder and a worker script.

The tiny dataset is a 4-class set of natural 32x32 photo crops (96 train, 48 test) in the embedded
layout, read through ``--data-root`` like any embedded-format folder, so training tests need no cache.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

CLASSES = ("astronaut", "coffee", "brick", "moon")

#: A script that registers a BatchNorm-free model (so one process and N processes agree exactly up
#: to float summation order) and then runs the freqtail command line with its arguments.
WORKER_SCRIPT = """
import sys
from torch import nn
from freqtail.models import register_model


@register_model("test-mlp", summary="two-layer perceptron without BatchNorm (tests)")
def test_mlp(num_classes, *, image_size, in_channels, hidden=32):
    features = in_channels * image_size * image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


from freqtail.cli import main

sys.exit(main(sys.argv[1:]))
"""


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
