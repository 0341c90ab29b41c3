"""Weather corruptions: snow, frost, fog, brightness, spatter.

Severity parameters are the CIFAR-10-C ones (hendrycks/robustness, make_cifar_c.py). Sizes in
pixels (blurs, snowflake streaks) are applied unchanged to images of any size; the fog fractal
and the frost texture are generated at the image's size.
"""

from __future__ import annotations

import numpy as np

from freqtail.data.corruptions._common import (
    gaussian_blur_batch,
    hsv_adjust,
    luma_601,
    round_to_uint8,
    to_uint8,
    to_unit,
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
WATER_RGB = np.array([175.0, 238.0, 238.0], dtype=np.float32) / 255.0  # pale turquoise
MUD_RGB = np.array([63.0, 42.0, 20.0], dtype=np.float32) / 255.0  # brown


def snow(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Falling snow: sparse bright flakes streaked by a motion blur, over a slightly whitened image.

    Per image: a Gaussian random layer is zoomed in, thresholded (flakes), stored as 8 bits,
    streaked with the ImageMagick-style motion blur at an angle uniform in [-135, -45) degrees,
    and added twice (once rotated by 180 degrees) to ``w x + (1 - w) max(x, 1.5 luma(x) + 0.5)``.
    """
    loc, scale, zoom, threshold, radius, sigma, weight = SNOW[severity - 1]
    n, h, w = images.shape[:3]
    x = to_unit(images)
    flakes = np.stack([rng.normal(loc, scale, size=(h, w)) for rng in rngs]).astype(np.float32)
    angles = np.array([rng.uniform(*SNOW_ANGLES) for rng in rngs])
    flakes = clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    flakes_u8 = to_uint8(flakes)  # the original passes the layer through an 8-bit PNG
    streaks = motion_blur(flakes_u8[..., None].astype(np.float32), radius, sigma, angles)
    streaks = round_to_uint8(streaks).astype(np.float32) / np.float32(255.0)
    whitened = np.maximum(x, luma_601(x) * np.float32(1.5) + np.float32(0.5))
    x = np.float32(weight) * x + np.float32(1 - weight) * whitened
    return to_uint8(x + streaks + np.rot90(streaks, k=2, axes=(1, 2)))


def frost(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """x' = clip(a x + b F) on the 0..255 scale, F a random crop of a frost texture.

    DEVIATION: the original crops one of its frost photographs; freqtail uses synthetic frost
    textures (:func:`~freqtail.data.corruptions.textures.frost_sheets`) because the photographs
    cannot be shipped or downloaded. Expect frost results that differ from published CIFAR-10-C
    numbers.
    """
    image_weight, frost_weight = FROST[severity - 1]
    n, h, w = images.shape[:3]
    sheet_h, sheet_w = frost_sheet_shape(h, w)
    sheets = frost_sheets(sheet_h, sheet_w)
    crops = np.empty(images.shape, dtype=np.float32)
    for i, rng in enumerate(rngs):
        sheet = sheets[int(rng.integers(FROST_SHEET_COUNT))]
        top = int(rng.integers(0, sheet_h - h))
        left = int(rng.integers(0, sheet_w - w))
        crops[i] = sheet[top : top + h, left : left + w]
    blended = np.float32(image_weight) * images.astype(np.float32) + np.float32(frost_weight) * crops
    return to_uint8(blended / np.float32(255.0))


def fog(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Add a plasma-fractal haze: x' = (x + s F) * max(x) / (max(x) + s), F in [0, 1].

    The fractal is generated at the next power of two at least the image side (32 for CIFAR, as
    in the original) and cropped to the image.
    """
    strength, decay = FOG[severity - 1]
    n, h, w = images.shape[:3]
    side = next_power_of_two(max(h, w))
    uniforms = np.stack([rng.uniform(-1.0, 1.0, plasma_draw_count(side)) for rng in rngs])
    haze = plasma_fractal(uniforms, side, decay)[:, :h, :w, None]
    x = to_unit(images)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    strength = np.float32(strength)
    return to_uint8((x + strength * haze) * peak / (peak + strength))


def brightness(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """HSV value V' = clip(V + c): brighter at constant hue and saturation."""
    return hsv_adjust(images, channel=2, scale=1.0, shift=BRIGHTNESS[severity - 1])


def _equalize_hist_opencv(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of a uint8 image with OpenCV's mapping.

    Written here because OpenCV is not a dependency and scikit-image's ``equalize_hist`` uses a
    different formula: OpenCV maps level ``v`` to ``round(255 * (cdf(v) - h0) / (n - h0))``, with
    ``h0`` the count of the darkest level present, so the darkest level maps to 0.
    """
    hist = np.bincount(image.ravel(), minlength=256)
    first = int(np.flatnonzero(hist)[0])
    total = image.size
    if hist[first] == total:
        return image.copy()
    cumulative = np.cumsum(hist).astype(np.float64) - hist[first]
    lut = np.clip(np.rint(cumulative * (255.0 / (total - hist[first]))), 0, 255).astype(np.uint8)
    return lut[image]


_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)


def _water_mask(liquid: np.ndarray) -> np.ndarray:
    """The embossed shading of water drops, float32 (H, W), before normalisation.

    OpenCV pipeline of the original, with SciPy / scikit-image equivalents: Canny edges of the
    8-bit liquid layer (thresholds 50 and 150, no pre-smoothing), Euclidean distance to the
    nearest edge (exact, where OpenCV approximates it with a 5x5 mask) truncated at 20, 3x3 box
    blur, histogram equalisation, a 3x3 emboss filter saturated to 8 bits, 3x3 box blur. Borders
    reflect without repeating the edge pixel (OpenCV's default, SciPy's "mirror").
    """
    from scipy import ndimage
    from skimage.feature import canny

    liquid_u8 = to_uint8(liquid)
    edges = canny(liquid_u8, sigma=0.0, low_threshold=50, high_threshold=150)
    if edges.any():
        distance = ndimage.distance_transform_edt(~edges)
    else:
        distance = np.full(liquid.shape, 20.0)
    distance = np.minimum(distance, 20.0)
    distance = ndimage.uniform_filter(distance, size=3, mode="mirror").astype(np.uint8)
    distance = _equalize_hist_opencv(distance)
    embossed = ndimage.correlate(distance.astype(np.float32), _EMBOSS, mode="mirror")
    embossed = np.clip(np.rint(embossed), 0, 255)
    return ndimage.uniform_filter(embossed.astype(np.float32), size=3, mode="mirror")


def spatter(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Water drops (severities 1-3) or mud splashes (4-5) on the lens.

    A Gaussian random layer is blurred and thresholded into blobs. Water: the blobs, shaded by
    :func:`_water_mask` and scaled so the strongest point adds ``intensity`` of pale turquoise,
    are added to the image. Mud: the blob mask is blurred (sigma ``intensity``), values below 0.8
    dropped, and the image is blended towards brown by the mask.
    """
    loc, scale, sigma, threshold, intensity, mud = SPATTER[severity - 1]
    n, h, w = images.shape[:3]
    x = to_unit(images)
    liquid = np.stack([rng.normal(loc, scale, size=(h, w)) for rng in rngs]).astype(np.float32)
    liquid = gaussian_blur_batch(liquid, sigma)
    liquid[liquid < threshold] = 0
    if mud:
        mask = gaussian_blur_batch((liquid > threshold).astype(np.float32), intensity)
        mask[mask < 0.8] = 0
        mask = mask[..., None]
        return to_uint8(x * (1 - mask) + MUD_RGB * mask)
    shading = np.stack([liquid[i] * _water_mask(liquid[i]) for i in range(n)])
    peak = shading.max(axis=(1, 2), keepdims=True)
    shading = np.where(peak > 0, shading / np.where(peak > 0, peak, 1), 0) * np.float32(intensity)
    return to_uint8(x + shading[..., None] * WATER_RGB)
