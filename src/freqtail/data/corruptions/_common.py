"""Helpers shared by the corruption modules: value conversions, per-image random generators,
batched filters.

Conventions inside the corruption package: images enter as uint8 (N, H, W, 3); each corruption
computes in the precision the original CIFAR-10-C script uses for it (float64 for most, float32
for zoom blur, snow, spatter and elastic transform: :func:`to_unit64` / :func:`to_unit`), and
converts back with :func:`truncate_to_uint8`, exactly the script's ``np.uint8(np.clip(x, 0, 1) * 255)``.
"""

from __future__ import annotations

import zlib

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from scipy import ndimage


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) 0..255 -> float32 (N, H, W, C) in [0, 1], the correctly rounded ``k / 255``.

    A float32 division, as the original's ``np.array(x, dtype=np.float32) / 255.`` (and equal to its
    ``(np.array(x) / 255.).astype(np.float32)``); multiplying by a rounded ``1 / 255`` instead would
    put some grey levels one float32 step lower, below the value the original truncates.
    """
    return images.astype(np.float32) / np.float32(255.0)


def to_unit64(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) 0..255 -> float64 (N, H, W, C) in [0, 1], the original's ``np.array(x) / 255.``."""
    return images / 255.0


def truncate_to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (values outside are clipped) -> uint8, exactly ``np.uint8(np.clip(x, 0, 1) * 255)``.

    Computed in ``x``'s own precision, so that a corruption computed in the original's precision
    truncates exactly where the original does (no slack: a value the original puts a hair below a
    grey level drops to the level below, as there).
    """
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def round_to_uint8(x255: np.ndarray) -> np.ndarray:
    """float on the 0..255 scale -> uint8, rounded to nearest and clipped (8-bit image files round)."""
    return np.clip(np.rint(x255), 0, 255).astype(np.uint8)


def image_rngs(
    seed: int, name: str, severity: int, start_index: int, count: int
) -> list[np.random.Generator]:
    """One independent generator per image, keyed by (seed, corruption, severity, global index).

    Keying on the global index (``start_index + i``) makes the result of a corruption independent
    of how a dataset is split into chunks.
    """
    name_key = zlib.crc32(name.encode("utf-8"))
    return [
        np.random.default_rng(np.random.SeedSequence([seed, name_key, severity, start_index + i]))
        for i in range(count)
    ]


def gaussian_blur_batch(
    x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> np.ndarray:
    """Gaussian blur of the two spatial axes of a (N, H, W, C) or (N, H, W) batch.

    The defaults (``mode="nearest"``, ``truncate=4``) are those of ``skimage.filters.gaussian``,
    which the original script uses.
    """
    if sigma <= 0:
        return x.copy()
    sigmas = (0.0, sigma, sigma) + (0.0,) * (x.ndim - 3)
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def luma_601(x: np.ndarray) -> np.ndarray:
    """Grey level of RGB (..., 3) with the ITU-R BT.601 weights (OpenCV's RGB2GRAY), shape (..., 1)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (x @ weights)[..., None]


def hsv_adjust(images: np.ndarray, channel: int, scale: float, shift: float) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) -> HSV, ``channel = clip(channel * scale + shift, 0, 1)`` -> uint8 RGB.

    In float64, as the original's ``skimage.color.rgb2hsv(np.array(x) / 255.)``; matplotlib's
    vectorised HSV conversion (the same formulas as scikit-image's, about three times faster on
    batches; the tests check the uint8 results equal scikit-image's).
    """
    hsv = rgb_to_hsv(to_unit64(images))
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + shift, 0.0, 1.0)
    return truncate_to_uint8(hsv_to_rgb(hsv))
