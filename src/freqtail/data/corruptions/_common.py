"""Helpers shared by the corruption modules: value conversions, per-image random generators,
batched filters.

Conventions inside the corruption package: images enter as uint8 (N, H, W, 3) and most
operations work on float32 copies in [0, 1]. The original CIFAR-10-C script converts its float
results with ``np.uint8(...)``, which truncates; :func:`to_uint8` does the same (see its note).
"""

from __future__ import annotations

import zlib

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from scipy import ndimage

# The original computes in float64 and truncates; we compute in float32, whose rounding can put an
# exact grey level such as 200/255*255 at 199.99998 and truncate it to 199. Adding this much
# (far below one grey level) before truncating keeps exact values exact.
_TRUNCATION_SLACK = 1e-3


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) 0..255 -> float32 (N, H, W, C) in [0, 1]."""
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (values outside are clipped) -> uint8 by truncation, as ``np.uint8(x * 255)``."""
    scaled = np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(_TRUNCATION_SLACK)
    return np.minimum(scaled, 255.0).astype(np.uint8)


def truncate_to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (values outside are clipped) -> uint8, exactly ``np.uint8(np.clip(x, 0, 1) * 255)``.

    Computed in ``x``'s own precision and without :func:`to_uint8`'s slack, for the corruptions
    that repeat the original's arithmetic operation by operation (in float64 or float32 as it
    does), where the slack would move values the original truncates.
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

    Matplotlib's vectorised HSV conversion (the same formulas as scikit-image's, about four times
    faster on batches).
    """
    hsv = rgb_to_hsv(to_unit(images))
    hsv[..., channel] = np.clip(hsv[..., channel] * np.float32(scale) + np.float32(shift), 0.0, 1.0)
    return to_uint8(hsv_to_rgb(hsv))
