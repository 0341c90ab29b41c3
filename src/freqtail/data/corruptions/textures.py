"""Procedural textures for the weather corruptions: the plasma fractal (fog) and synthetic frost.

The plasma fractal follows the diamond-square algorithm of the original script, vectorised over
a batch of maps. The frost texture is freqtail's own substitute for the frost photographs the
original blends in (they cannot be shipped or downloaded here); see :func:`frost_sheets`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from skimage.draw import line_aa

from freqtail.data.corruptions._common import gaussian_blur_batch

# ----------------------------------------------------------------------------------------------
# Plasma fractal (diamond-square), vectorised over a batch


def plasma_draw_count(mapsize: int) -> int:
    """How many uniform numbers one plasma map of side ``mapsize`` consumes."""
    count, step = 0, mapsize
    while step >= 2:
        count += 3 * (mapsize // step) ** 2
        step //= 2
    return count


def plasma_fractal(
    uniforms: np.ndarray, mapsize: int, wibble_decay: float, *, dtype: type = np.float32
) -> np.ndarray:
    """Diamond-square height maps, one per row of ``uniforms``, normalised to [0, 1].

    Args:
        uniforms: float (N, plasma_draw_count(mapsize)) uniform numbers in [-1, 1), one row per map.
        mapsize: side of the maps, a power of two.
        wibble_decay: factor by which the random perturbation shrinks at each finer scale
            (larger -> smoother fog).

        dtype: of the result (computed in float64; fog keeps float64, as the original does).

    Returns:
        (N, mapsize, mapsize) of ``dtype``, toroidal (wraps around), min 0 and max 1 per map.

    As in the original, the perturbation at a scale with amplitude ``wibble`` (100 at the
    coarsest scale) is ``wibble * uniform(-wibble, wibble)``, i.e. ``wibble**2 * u``; each new point
    is the mean of its four parents plus that perturbation.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma map size must be a power of two >= 2, not {mapsize}")
    n = uniforms.shape[0]
    heights = np.zeros((n, mapsize, mapsize), dtype=np.float64)
    used = 0
    step = mapsize
    wibble = 100.0

    def perturbed_mean(total: np.ndarray) -> np.ndarray:
        nonlocal used
        size = total.shape[1] * total.shape[2]
        noise = uniforms[:, used : used + size].reshape(total.shape)
        used += size
        return total / 4.0 + wibble * wibble * noise

    while step >= 2:
        half = step // 2
        # Squares: centre of each square = mean of its four corners.
        corners = heights[:, 0::step, 0::step]
        square_sum = corners + np.roll(corners, -1, axis=1)
        square_sum = square_sum + np.roll(square_sum, -1, axis=2)
        heights[:, half::step, half::step] = perturbed_mean(square_sum)
        # Diamonds: edge midpoints = mean of the two adjacent corners and two adjacent centres.
        centres = heights[:, half::step, half::step]
        corners = heights[:, 0::step, 0::step]
        across = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=2))
        heights[:, 0::step, half::step] = perturbed_mean(across)
        down = (centres + np.roll(centres, 1, axis=2)) + (corners + np.roll(corners, -1, axis=1))
        heights[:, half::step, 0::step] = perturbed_mean(down)
        step //= 2
        wibble /= wibble_decay
    heights -= heights.min(axis=(1, 2), keepdims=True)
    peak = heights.max(axis=(1, 2), keepdims=True)
    heights /= np.where(peak > 0, peak, 1.0)
    return heights.astype(dtype, copy=False)


def next_power_of_two(n: int) -> int:
    return 1 << max(1, (int(n) - 1).bit_length())


# ----------------------------------------------------------------------------------------------
# Synthetic frost

FROST_SHEET_COUNT = 5  # the original draws randint(5): one of its first 5 photographs (of 6 listed)
_FROST_SHEET_SEED = 20231210  # fixed: the sheets play the role of fixed photographs
# Per-channel colour of the brightest ice (RGB, 0..255) and of the dark gaps between crystals.
_ICE_RGB = np.array([228.0, 240.0, 255.0])
_GAP_RGB = np.array([62.0, 78.0, 100.0])
_SIDES = (-1.0, 1.0)  # a side branch leaves to the left or to the right of its stem


def _draw_needle(
    canvas: np.ndarray, r0: float, c0: float, sin: float, cos: float, length: float, value: float
) -> None:
    """Max-blend an anti-aliased straight needle of ``value`` brightness into ``canvas`` (H, W), from
    ``(r0, c0)`` in the direction of the angle whose sine and cosine are given."""
    h, w = canvas.shape
    r1 = r0 + length * sin
    c1 = c0 + length * cos
    rr, cc, weight = line_aa(int(round(r0)), int(round(c0)), int(round(r1)), int(round(c1)))
    keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    np.maximum.at(canvas, (rr[keep], cc[keep]), value * weight[keep])


def _draw_dendrite(
    canvas: np.ndarray,
    rng: np.random.Generator,
    row: float,
    col: float,
    angle: float,
    length: float,
    depth: int,
) -> None:
    """Draw a fern-like ice crystal: a needle whose side branches leave at +-60 degrees and branch again.

    Each branch is shorter the further out it starts, like dendritic frost growing on glass.
    """
    value = rng.uniform(0.6, 1.0)
    sin, cos = np.sin(angle), np.cos(angle)
    _draw_needle(canvas, row, col, sin, cos, length, value)
    if depth == 0 or length < 3:
        return
    n_branches = int(rng.integers(3, 9)) if depth > 1 else int(rng.integers(1, 4))
    for _ in range(n_branches):
        t = rng.uniform(0.1, 0.95)
        # rng.choice([-1.0, 1.0]) draws rng.integers(0, 2); drawn directly, without choice's overhead
        side = angle + _SIDES[int(rng.integers(0, 2))] * np.pi / 3 + rng.normal(0.0, 0.1)
        _draw_dendrite(
            canvas,
            rng,
            row + t * length * sin,
            col + t * length * cos,
            side,
            length * rng.uniform(0.2, 0.5) * (1.0 - 0.6 * t),
            depth - 1,
        )


@lru_cache(maxsize=4)
def frost_sheets(height: int, width: int) -> tuple[np.ndarray, ...]:
    """Five deterministic synthetic frost textures, uint8 (height, width, 3) each.

    The original frost corruption blends in random crops of frost photographs (ice crystals on
    glass). We synthesise a stand-in: a low-frequency plasma haze (uneven ice coverage), many
    thin bright ice needles with side branches at +-60 degrees that branch again (fern-like
    dendritic crystals) whose density follows the haze, a slight blur, and a pale blue-white
    colour map over dark blue gaps. It reproduces the character of frost (bright, thin, oriented
    high-frequency structure over a patchy veil) but not the exact statistics of the photographs,
    so frost accuracies on generated sets are not numerically comparable with the published
    CIFAR-10-C. The sheets do not depend on the corruption seed, like the fixed photographs of the
    original.
    """
    rng = np.random.default_rng(_FROST_SHEET_SEED)
    side = next_power_of_two(max(height, width))
    sheets = []
    for _ in range(FROST_SHEET_COUNT):
        haze = plasma_fractal(rng.uniform(-1, 1, (1, plasma_draw_count(side))), side, 2.0)[0]
        haze = haze[:height, :width].astype(np.float64)
        crystals = np.zeros((height, width), dtype=np.float64)
        n_seeds = int(height * width / 160)
        rows = rng.uniform(0, height, n_seeds)
        cols = rng.uniform(0, width, n_seeds)
        # More crystals where the haze (ice cover) is thick: keep a seed with probability ~ haze.
        keep = rng.uniform(0, 1, n_seeds) < 0.3 + 0.7 * haze[rows.astype(int), cols.astype(int)]
        for r, c in zip(rows[keep], cols[keep], strict=True):
            angle = rng.uniform(0, 2 * np.pi)
            _draw_dendrite(crystals, rng, r, c, angle, rng.uniform(6.0, 24.0), depth=2)
        crystals = gaussian_blur_batch(crystals[None], 0.6)[0]
        ice = np.clip(0.7 * crystals / max(crystals.max(), 1e-12) + 0.55 * haze, 0.0, 1.0)
        rgb = _GAP_RGB + ice[..., None] * (_ICE_RGB - _GAP_RGB)
        sheets.append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return tuple(sheets)


def frost_sheet_shape(image_height: int, image_width: int) -> tuple[int, int]:
    """Size of the frost sheets that crops for images of this size are taken from.

    The original crops 32x32 windows from frost photographs shrunk to roughly 150-300 pixels; we
    keep that ratio with sheets six times the image side (at least 192 pixels).
    """
    return max(192, 6 * image_height), max(192, 6 * image_width)
