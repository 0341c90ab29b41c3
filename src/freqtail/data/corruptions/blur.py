"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur.

Severity parameters are the CIFAR-10-C ones (hendrycks/robustness, make_cifar_c.py); blur sizes
are in pixels and are applied unchanged to images of any size (the original tunes them for
32x32: on larger images the same severity blurs relatively less). ``glass_blur`` repeats the
original's arithmetic (float64, truncation) and its copy-not-swap pixel shuffling, so for the same
random offsets it returns the original's pixels. Every blur computes in the original's precision
(float64; zoom blur float32) and truncates as its ``np.uint8(...)`` does: the deterministic ones
(defocus, zoom, gaussian) return the original's pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from freqtail.data.corruptions._common import (
    gaussian_blur_batch,
    round_to_uint8,
    to_unit,
    to_unit64,
    truncate_to_uint8,
)
from freqtail.data.corruptions._kernels import clipped_zoom, defocus_kernel, local_shuffle, motion_blur

# (disk radius, anti-alias Gaussian sigma), pixels.
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
# (Gaussian sigma in pixels, shuffle radius d, iterations).
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
# (ImageMagick radius, sigma) in pixels; the angle is uniform in [-45, 45) degrees per image.
MOTION_BLUR = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))
MOTION_BLUR_ANGLES = (-45.0, 45.0)
# Zoom factors as np.arange(1, stop, 0.01) with these stops (floating point arange includes the
# stop for some of them, exactly as in the original).
ZOOM_BLUR_STOPS = (1.06, 1.11, 1.16, 1.21, 1.26)
# Gaussian sigma, pixels.
GAUSSIAN_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)


def defocus_blur(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Convolution with an anti-aliased disk (lens out of focus), in float64 with OpenCV's ``filter2D``.

    As the original: each channel of ``x / 255.`` filtered by ``cv2.filter2D`` (borders reflect-101,
    OpenCV's default), then truncated.
    """
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    kernel = defocus_kernel(radius, alias_blur)
    x = to_unit64(images)
    blurred = np.empty_like(x)
    for i in range(x.shape[0]):
        for channel in range(x.shape[3]):
            blurred[i, :, :, channel] = cv2.filter2D(x[i, :, :, channel], -1, kernel)
    return truncate_to_uint8(blurred)


def glass_blur(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Gaussian blur, local pixel shuffling (frosted glass), Gaussian blur again.

    Args:
        images: uint8 (N, H, W, 3).
        severity: 1..5 (see :data:`GLASS_BLUR`).
        rngs: one generator per image; each draws int (iterations, P, 2) offsets (dx, dy) in one
            call, P = (H - 2d)(W - 2d) the interior positions in the loop's order.

    Returns:
        uint8 (N, H, W, 3).

    The original's arithmetic, step by step: ``np.uint8(gaussian(x / 255.) * 255)`` in float64,
    ``iterations`` shuffling passes on the uint8 image, then ``np.uint8(clip(gaussian(x / 255.)) * 255)``.
    A pass visits the interior pixels in reverse raster order and, at each, COPIES the pixel at
    offset (dy, dx) into it (both uniform integers in [-d, d-1], the original's ``randint(-d, d)``).
    The original's code reads like a swap, but on NumPy row views it is a copy (see
    :mod:`~freqtail.data.corruptions._kernels`), and the published CIFAR-10-C was made so.
    :func:`~freqtail.data.corruptions._kernels.local_shuffle` runs the passes vectorised with
    results identical to the per-pixel loop.
    """
    sigma, max_delta, iterations = GLASS_BLUR[severity - 1]
    n, h, w = images.shape[:3]
    n_positions = max(h - 2 * max_delta, 0) * max(w - 2 * max_delta, 0)
    blurred = truncate_to_uint8(gaussian_blur_batch(images / 255.0, sigma))
    offsets = np.stack(
        [rng.integers(-max_delta, max_delta, size=(iterations, n_positions, 2)) for rng in rngs]
    )
    shuffled = local_shuffle(blurred, offsets, max_delta)
    return truncate_to_uint8(gaussian_blur_batch(shuffled / 255.0, sigma))


def motion_blur_corruption(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """One-sided line blur in a random direction (camera shake), ImageMagick semantics.

    The original calls ImageMagick's ``MotionBlurImage(radius, sigma, angle)``; we reproduce its
    kernel and sampling (:func:`~freqtail.data.corruptions._kernels.motion_blur`) with NumPy and
    round to 8 bits as ImageMagick's PNG output does.
    """
    radius, sigma = MOTION_BLUR[severity - 1]
    angles = np.array([rng.uniform(*MOTION_BLUR_ANGLES) for rng in rngs])
    return round_to_uint8(motion_blur(images.astype(np.float32), radius, sigma, angles))


def zoom_factors(severity: int) -> np.ndarray:
    """The zoom factors averaged by zoom blur at this severity (1.00, 1.01, ...)."""
    return np.arange(1.0, ZOOM_BLUR_STOPS[severity - 1], 0.01)


def zoom_blur(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Mean of the image and its clipped zooms by each factor of :func:`zoom_factors` (radial blur).

    In float32 and in the original's order: the zooms summed from 0, the image added last, the sum
    divided by the count, truncated.
    """
    factors = zoom_factors(severity)
    x = to_unit(images)
    zooms = np.zeros_like(x)
    for factor in factors:
        zooms += clipped_zoom(x, factor)
    return truncate_to_uint8((x + zooms) / np.float32(len(factors) + 1))


def gaussian_blur(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels in float64, edges extended (scikit-image's default), truncated."""
    x = to_unit64(images)
    return truncate_to_uint8(gaussian_blur_batch(x, GAUSSIAN_BLUR_SIGMA[severity - 1]))
