"""Shared test fixtures: small natural-image crops and an isolated cache folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own freqtail cache so tests never share or pollute ~/.cache."""
    monkeypatch.setenv("FREQTAIL_CACHE", str(tmp_path_factory.mktemp("freqtail-cache")))


@pytest.fixture(scope="session")
def natural_crops():
    """``natural_crops(size, per_photo=2, seed=0)`` -> uint8 (N, H, W, 3) crops of bundled photos.

    ``size`` is an int (square) or an (H, W) tuple.
    """
    from freqtail.sample_photos import PHOTO_NAMES, load_photo

    def make(size, per_photo: int = 2, seed: int = 0) -> np.ndarray:
        h, w = (size, size) if isinstance(size, int) else size
        rng = np.random.default_rng(seed)
        crops = []
        for name in PHOTO_NAMES:
            photo = load_photo(name)
            for _ in range(per_photo):
                top = int(rng.integers(0, photo.shape[0] - h + 1))
                left = int(rng.integers(0, photo.shape[1] - w + 1))
                crops.append(photo[top : top + h, left : left + w])
        return np.ascontiguousarray(np.stack(crops))

    return make
