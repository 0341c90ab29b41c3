"""Shared test fixtures: small natural-image crops and an isolated cache folder."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own freqtail cache so tests never share or pollute ~/.cache."""
    monkeypatch.setenv("FREQTAIL_CACHE", str(tmp_path_factory.mktemp("freqtail-cache")))


@pytest.fixture(scope="session")
def natural_crops():
    """``natural_crops(size, per_photo, seed=0)`` -> uint8 (N, H, W, 3) crops of bundled photos.

    ``size`` is an int (square) or an (H, W) tuple.
    """
    from freqtail.sample_photos import photo_crops

    return photo_crops
