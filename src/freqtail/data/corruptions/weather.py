"""Weather corruptions: snow, frost, fog, brightness, spatter.

Severity parameters are the CIFAR-10-C ones (hendrycks/robustness, make_cifar_c.py). Sizes in
pixels (blurs, snowflake streaks) are applied unchanged to images of any size; the fog fractal
and the frost texture are generated at the image's size. ``spatter`` repeats the original's
arithmetic and calls OpenCV where it does, so for the same random layer it returns the original's
pixels. Every weather corruption computes in the original's precision (float64 for frost, fog and
brightness; float32 images with float64 flakes for snow) and truncates as its ``np.uint8(...)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from freqtail.data.corruptions._common import (
    gaussian_blur_batch,
    hsv_adjust,
    luma_601,
    round_to_uint8,
    to_unit,
    to_unit64,
    truncate_to_uint8,
)
from freqtail.data.corruptions._kernels import clipped_zoom, motion_blur
from freqtail.data.corruptions.textures import (
    FROST_SHEET_COUNT,
    frost_sheet_shape,
    frost_sheets,
    next_power_of_two,
    plasma_draw_count,
    plasma_fractal,
)

# (flake mean, flake std, flake zoom, threshold, streak radius, streak sigma, image weight).
SNOW = (
    (0.1, 0.2, 1.0, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1.0, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
SNOW_ANGLES = (-135.0, -45.0)
# (image weight, frost weight) of x' = a x + b frost, on the 0..255 scale.
FROST = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
# (fog strength, fractal wibble decay).
FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))
# Added to the HSV value channel.
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
# (liquid mean, liquid std, liquid blur sigma, threshold, intensity or mud blur sigma, mud?).
SPATTER = (
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1.0, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)
# float32 roundings of the float64 quotients, as the original's ``175 / 255. * ones_like(float32)``.
WATER_RGB = np.array([175 / 255, 238 / 255, 238 / 255], dtype=np.float32)  # pale turquoise
MUD_RGB = np.array([63 / 255, 42 / 255, 20 / 255], dtype=np.float32)  # brown


def snow(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Falling snow: sparse bright flakes streaked by a motion blur, over a slightly whitened image.

    Per image: a Gaussian random layer is zoomed in, thresholded (flakes), stored as 8 bits,
    streaked with the ImageMagick-style motion blur at an angle uniform in [-135, -45) degrees,
    and added twice (once rotated by 180 degrees) to ``w x + (1 - w) max(x, 1.5 luma(x) + 0.5)``.
    """
    loc, scale, zoom, threshold, radius, sigma, weight = SNOW[severity - 1]
    n, h, w = images.shape[:3]
    x = to_unit(images)
    flakes = np.stack([rng.normal(loc, scale, size=(h, w)) for rng in rngs])  # float64 as the original
    angles = np.array([rng.uniform(*SNOW_ANGLES) for rng in rngs])
    flakes = clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    flakes_u8 = truncate_to_uint8(flakes)  # the original passes the layer through an 8-bit PNG
    streaks = motion_blur(flakes_u8[..., None].astype(np.float32), radius, sigma, angles)
    streaks = round_to_uint8(streaks) / 255.0  # float64, as the original's decoded PNG / 255.
    whitened = np.maximum(x, luma_601(x) * np.float32(1.5) + np.float32(0.5))
    x = np.float32(weight) * x + np.float32(1 - weight) * whitened
    return truncate_to_uint8(x + streaks + np.rot90(streaks, k=2, axes=(1, 2)))


def frost(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """x' = clip(a x + b F, 0, 255) in float64, truncated, F a random crop of a frost texture.

    Each image draws one of :data:`~freqtail.data.corruptions.textures.FROST_SHEET_COUNT` (5)
    textures, as the original draws ``randint(5)``: its list names six photographs, but the sixth
    is never drawn.

    DEVIATION: the original crops one of its frost photographs; freqtail uses synthetic frost
    textures (:func:`~freqtail.data.corruptions.textures.frost_sheets`) because the photographs
    cannot be shipped or downloaded. Expect frost results that differ from published CIFAR-10-C
    numbers.
    """
    image_weight, frost_weight = FROST[severity - 1]
    n, h, w = images.shape[:3]
    sheet_h, sheet_w = frost_sheet_shape(h, w)
    sheets = frost_sheets(sheet_h, sheet_w)
    crops = np.empty(images.shape, dtype=np.uint8)
    for i, rng in enumerate(rngs):
        sheet = sheets[int(rng.integers(FROST_SHEET_COUNT))]
        top = int(rng.integers(0, sheet_h - h))
        left = int(rng.integers(0, sheet_w - w))
        crops[i] = sheet[top : top + h, left : left + w]
    blended = image_weight * images + frost_weight * crops  # float64
    return np.clip(blended, 0, 255).astype(np.uint8)


def fog(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Add a plasma-fractal haze: x' = (x + s F) * max(x) / (max(x) + s), F in [0, 1], in float64.

    The fractal is generated at the next power of two at least the image side (32 for CIFAR, as
    in the original) and cropped to the image.
    """
    strength, decay = FOG[severity - 1]
    n, h, w = images.shape[:3]
    side = next_power_of_two(max(h, w))
    uniforms = np.stack([rng.uniform(-1.0, 1.0, plasma_draw_count(side)) for rng in rngs])
    haze = plasma_fractal(uniforms, side, decay, dtype=np.float64)[:, :h, :w, None]
    x = to_unit64(images)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return truncate_to_uint8((x + strength * haze) * peak / (peak + strength))


def brightness(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """HSV value V' = clip(V + c): brighter at constant hue and saturation."""
    return hsv_adjust(images, channel=2, scale=1.0, shift=BRIGHTNESS[severity - 1])


_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)


def _water_shading(liquid_u8: np.ndarray) -> np.ndarray:
    """The original's water layer times its embossed edge shading, float32 (H, W), unnormalised.

    Args:
        liquid_u8: the 8-bit liquid layer, uint8 (H, W), 0..255.

    Returns:
        ``liquid_u8 * shading`` as float32 (H, W); the caller scales it so the peak is 1.

    The original's OpenCV calls, unchanged: Canny edges (thresholds 50 and 150, L1 gradient), the
    distance to the nearest edge (``DIST_L2`` with the 5x5 mask) truncated at 20, 3x3 box blur
    truncated to 8 bits, histogram equalisation, the emboss filter saturated to 8 bits, 3x3 box
    blur. Borders are OpenCV's default (reflect-101).
    """
    distance = cv2.distanceTransform(255 - cv2.Canny(liquid_u8, 50, 150), cv2.DIST_L2, 5)
    _, distance = cv2.threshold(distance, 20, 20, cv2.THRESH_TRUNC)
    distance = cv2.equalizeHist(cv2.blur(distance, (3, 3)).astype(np.uint8))
    embossed = cv2.blur(cv2.filter2D(distance, cv2.CV_8U, _EMBOSS), (3, 3)).astype(np.float32)
    return liquid_u8 * embossed


def spatter(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Water drops (severities 1-3) or mud splashes (4-5) on the lens.

    Args:
        images: uint8 (N, H, W, 3), RGB.
        severity: 1..5 (see :data:`SPATTER`).
        rngs: one generator per image; each draws one float64 (H, W) normal layer.

    Returns:
        uint8 (N, H, W, 3).

    The original's steps and precision: the image in float32 (``x / 255``); a float64 random layer
    (mean ``loc``, std ``scale``) blurred (sigma ``sigma``, scikit-image's rule) and set to 0 below
    ``threshold``. Water: the layer truncated to 8 bits (values above 1 wrap modulo 256, as the
    original's unchecked ``astype(np.uint8)`` does on x86), shaded by :func:`_water_shading`,
    divided by its peak, times ``intensity``, times pale turquoise (175, 238, 238) / 255 added to
    every channel in RGB order (the original names the array BGR for OpenCV, but only adds and
    drops an alpha channel, so the colour lands on the PIL image's RGB channels as written).
    Mud: the blob mask (layer > threshold) blurred in float32 (sigma ``intensity``), values below
    0.8 dropped, and the image blended towards brown (63, 42, 20) / 255 by the mask. The result
    is clipped and truncated, ``np.uint8(clip(.) * 255)``, in float32.

    DEVIATION: where the water layer has no drops at all (its shading is 0 everywhere; never seen
    at 32x32, possible on tiny images) the original divides 0 by 0 and casts NaN to uint8, an
    undefined result (black on x86); freqtail returns the image unchanged.
    """
    loc, scale, sigma, threshold, intensity, mud = SPATTER[severity - 1]
    n, h, w = images.shape[:3]
    x = images.astype(np.float32) / np.float32(255.0)
    liquid = np.stack([rng.normal(loc, scale, size=(h, w)) for rng in rngs])  # float64 as the original
    liquid = gaussian_blur_batch(liquid, sigma)
    liquid[liquid < threshold] = 0
    if mud:
        mask = gaussian_blur_batch((liquid > threshold).astype(np.float32), intensity)
        mask[mask < 0.8] = 0
        mask = mask[..., None]
        return truncate_to_uint8(x * (1 - mask) + MUD_RGB * mask)
    # liquid >= 0 here; the int64 step makes the original's x86 wrap-around explicit.
    liquid_u8 = ((liquid * 255).astype(np.int64) & 0xFF).astype(np.uint8)
    shading = np.stack([_water_shading(layer) for layer in liquid_u8])
    peak = shading.max(axis=(1, 2), keepdims=True)
    shading = (shading / np.where(peak > 0, peak, 1)) * np.float32(intensity)
    return truncate_to_uint8(x + shading[..., None] * WATER_RGB)
