"""Building blocks shared by several corruptions: the clipped zoom as a linear operator, the
line-kernel motion blur, the defocus disk kernel, and the vectorised local pixel shuffle."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

# ----------------------------------------------------------------------------------------------
# Clipped zoom (zoom into the centre, keep the size)


@lru_cache(maxsize=256)
def clipped_zoom_matrix(length: int, factor: float) -> np.ndarray:
    """The 1-D "clipped zoom" along one axis as a (length, length) float32 matrix ``Z``.

    The original crops the central ``ceil(length / factor)`` pixels, enlarges them with
    ``scipy.ndimage.zoom(order=1)`` and trims the result back to ``length`` around the centre.
    Order-1 zoom is linear and separable, so the 2-D operation on an image ``X`` (H, W) equals
    ``Z_h @ X @ Z_w.T``. We obtain ``Z`` by zooming an identity matrix with SciPy itself (so the
    interpolation is SciPy's, not ours); applying it as a matrix product turns the dozens of
    per-image ``ndimage.zoom`` calls of zoom blur into a few large matrix products (about 7x faster).
    Returns float64 (length, length): SciPy interpolates in float64 and rounds once to the
    image's float32, and so does :func:`clipped_zoom`.
    """
    crop = int(np.ceil(length / factor))
    top = (length - crop) // 2
    enlarged = ndimage.zoom(np.eye(crop), (factor, 1.0), order=1)  # (round(crop * factor), crop)
    trim = (enlarged.shape[0] - length) // 2
    matrix = np.zeros((length, length), dtype=np.float64)
    matrix[:, top : top + crop] = enlarged[trim : trim + length]
    return matrix


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Clipped zoom of the spatial axes of a float (N, H, W) or (N, H, W, C) batch.

    Computed in float64 and returned in ``x``'s dtype (float32 or float64), as
    ``scipy.ndimage.zoom`` does.
    """
    n, h, w = x.shape[:3]
    trailing = x.shape[3:]
    channels = math.prod(trailing)
    zh = clipped_zoom_matrix(h, float(factor))
    zw = clipped_zoom_matrix(w, float(factor))
    # Two batched matrix products (BLAS): rows first on (N, H, W*C), then columns on (N, W, H*C).
    rows = np.matmul(zh, x.astype(np.float64, copy=False).reshape(n, h, w * channels))
    rows = rows.reshape(n, h, w, channels).transpose(0, 2, 1, 3).reshape(n, w, h * channels)
    zoomed = np.matmul(zw, rows).reshape(n, w, h, channels).transpose(0, 2, 1, 3)
    return zoomed.reshape((n, h, w, *trailing)).astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# Motion blur (ImageMagick's MotionBlurImage, reimplemented because ImageMagick is not a
# dependency and no maintained Python library offers this one-sided directional kernel)


def motion_blur_taps(radius: float, sigma: float) -> np.ndarray:
    """Weights of ImageMagick's motion blur: a one-sided half Gaussian of ``2 ceil(radius) + 1`` taps.

    Tap ``i`` (distance ``i`` pixels along the blur direction) weighs ``exp(-i^2 / (2 sigma^2))``,
    normalised to sum 1.
    """
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width, dtype=np.float64)
    taps = np.exp(-(i**2) / (2.0 * max(sigma, 1e-12) ** 2))
    return taps / taps.sum()


def motion_blur(x: np.ndarray, radius: float, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    """Directional (line-kernel) motion blur of a float (N, H, W, C) batch, one angle per image.

    Semantics of ImageMagick's ``-motion-blur radius x sigma + angle``: output pixel (row, col) is
    ``sum_i w_i * x[row + dy_i, col + dx_i]`` with ``dx_i = ceil(i cos(angle) - 0.5)`` and
    ``dy_i = ceil(i sin(angle) - 0.5)`` (angle in degrees, image y axis pointing down), the weights
    of :func:`motion_blur_taps`, and samples outside the image replaced by the nearest edge pixel
    (ImageMagick's default "edge" virtual pixels). The blur therefore smears each pixel towards
    the opposite of ``angle``, like a one-sided streak.
    """
    n, h, w = x.shape[:3]
    taps = motion_blur_taps(radius, sigma)
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64)).reshape(n, 1)
    steps = np.arange(len(taps), dtype=np.float64)[None, :]
    dx = np.ceil(steps * np.cos(theta) - 0.5).astype(np.int64)  # (N, taps)
    dy = np.ceil(steps * np.sin(theta) - 0.5).astype(np.int64)
    batch = np.arange(n)[:, None, None]
    out = np.zeros(x.shape, dtype=np.float32)
    for t, weight in enumerate(taps):
        rows = np.clip(np.arange(h)[None, :] + dy[:, t : t + 1], 0, h - 1)  # (N, H)
        cols = np.clip(np.arange(w)[None, :] + dx[:, t : t + 1], 0, w - 1)  # (N, W)
        out += np.float32(weight) * x[batch, rows[:, :, None], cols[:, None, :]]
    return out


# ----------------------------------------------------------------------------------------------
# Defocus disk


@lru_cache(maxsize=32)
def defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Normalised disk of ``radius`` pixels, anti-aliased by a small Gaussian (as in the original).

    The aliased disk ``x^2 + y^2 <= radius^2`` (float32) lives on a grid of half-width
    ``max(8, radius)``; it is blurred by OpenCV's ``GaussianBlur`` of ``alias_blur`` pixels with a
    3x3 support (5x5 for radii above 8), the original's call, whose float32 kernel values the
    defocus output depends on to the last bit. Zero borders are trimmed (they do not change a
    convolution). Returns float32 (k, k).
    """
    half = 8 if radius <= 8 else math.ceil(radius)
    grid = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    support = 3 if radius <= 8 else 5
    kernel = cv2.GaussianBlur(disk, ksize=(support, support), sigmaX=alias_blur)
    nonzero = np.flatnonzero(kernel.any(axis=0))
    reach = max(half - nonzero[0], nonzero[-1] - half)
    return kernel[half - reach : half + reach + 1, half - reach : half + reach + 1]


# ----------------------------------------------------------------------------------------------
# Glass blur: local pixel shuffling
#
# The original's "swap" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` acts on NumPy row views of an
# (H, W, 3) array: the right-hand side is a tuple of two views, ``x[h, w]`` is then overwritten
# with the values of ``x[h', w']``, and ``x[h', w']`` is assigned the view of ``x[h, w]``, which
# already holds its own values. So each step COPIES x[h', w'] into x[h, w] and leaves x[h', w']
# unchanged; the published CIFAR-10-C was made that way, and freqtail reproduces it.


def shuffle_positions(height: int, width: int, max_delta: int) -> np.ndarray:
    """The (row, col) positions the original glass blur visits, in its order: rows from
    ``height - d`` down to ``d + 1``, and within a row columns from ``width - d`` down to ``d + 1``.

    Returns int64 (P, 2).
    """
    rows = np.arange(height - max_delta, max_delta, -1)
    cols = np.arange(width - max_delta, max_delta, -1)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


@lru_cache(maxsize=32)
def shuffle_schedule(height: int, width: int, max_delta: int) -> tuple[np.ndarray, ...]:
    """Group the sequential steps of :func:`shuffle_positions` into independent waves.

    The step at position p reads p + (dy, dx), dy, dx in [-d, d-1], and writes p. Two steps can
    touch a common pixel only if their positions differ by at most 2d - 1 in both coordinates;
    every such pair must run in the original order, any other pair commutes. The wave of a step
    is one more than the largest wave of the earlier steps it may conflict with (its longest
    dependency chain), so steps within a wave never share a pixel and running the waves in order
    reproduces the sequential loop exactly. For 32x32 and d = 1 this is 88 waves instead of 900
    steps (d = 1 does not need them: see :func:`local_shuffle`).

    Returns one int64 array of indices into :func:`shuffle_positions` per wave.
    """
    reach = 2 * max_delta - 1
    rows = np.arange(height - max_delta, max_delta, -1)
    n_cols = max(width - 2 * max_delta, 0)
    waves = np.zeros((len(rows), n_cols), dtype=np.int64)  # [row order, column order]
    for r in range(len(rows)):
        # Largest wave among conflicting steps of the previous rows (within `reach` rows/columns).
        earlier = waves[max(0, r - reach) : r]
        if len(earlier):
            column_max = earlier.max(axis=0)
            blocking = ndimage.maximum_filter1d(column_max, size=2 * reach + 1, mode="constant", cval=-1)
        else:
            blocking = np.full(n_cols, -1, dtype=np.int64)
        # Within the row, the previous step (one column to the right) is always the latest conflict:
        # wave[j] = 1 + max(blocking[j], wave[j - 1]), solved with a running maximum.
        j = np.arange(n_cols)
        waves[r] = np.maximum.accumulate(blocking + 1 - j) + j
    flat = waves.ravel()
    order = np.argsort(flat, kind="stable")
    boundaries = np.flatnonzero(np.diff(flat[order])) + 1
    return tuple(np.split(order, boundaries))


def local_shuffle(images: np.ndarray, offsets: np.ndarray, max_delta: int) -> np.ndarray:
    """Glass blur's local pixel shuffling as published, vectorised over images and positions.

    Args:
        images: (N, H, W, C) array (any dtype); not modified.
        offsets: int (N, iterations, P, 2) with (dx, dy) per visited position, in the order of
            :func:`shuffle_positions`; each in [-max_delta, max_delta - 1].
        max_delta: the shuffling radius d.

    Returns:
        The shuffled copy, (N, H, W, C): per iteration, the same result as the original's loop,
        which at every position p in order copies ``x[p + (dy, dx)]`` into ``x[p]`` (a copy, not
        a swap: see the note above :func:`shuffle_positions`).

    A step's source is visited earlier in the same pass only if it lies below p, or on p's row to
    its right (dy > 0, or dy = 0 and dx > 0). When no offset points there (always for d = 1, whose
    offsets are -1 or 0) every source still holds its value from the start of the pass, and the
    pass is a single gather. Otherwise a later step may read a pixel an earlier one overwrote, and
    the pass runs in the waves of :func:`shuffle_schedule`.
    """
    n, h, w = images.shape[:3]
    out = images.copy()
    positions = shuffle_positions(h, w, max_delta)
    rows = positions[:, 0][None, :]
    cols = positions[:, 1][None, :]
    batch = np.arange(n)[:, None]
    for iteration in range(offsets.shape[1]):
        dx = offsets[:, iteration, :, 0]
        dy = offsets[:, iteration, :, 1]
        if not np.any((dy > 0) | ((dy == 0) & (dx > 0))):
            out[batch, rows, cols] = out[batch, rows + dy, cols + dx]  # the gather copies first
            continue
        for wave in shuffle_schedule(h, w, max_delta):
            r, c = rows[:, wave], cols[:, wave]
            out[batch, r, c] = out[batch, r + dy[:, wave], c + dx[:, wave]]
    return out
