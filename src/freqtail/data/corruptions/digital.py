"""Digital corruptions: contrast, elastic transform, pixelate, JPEG compression, saturate.

Severity parameters are the CIFAR-10-C ones (hendrycks/robustness, make_cifar_c.py). Where the
original scales a parameter by the image size (elastic transform: multiples of 32; pixelate:
``int(32 * c)``), freqtail uses the actual image size, so 32x32 images get exactly the original.
Contrast and saturate compute in float64, elastic transform in float32, as the original does, and
all three truncate as its ``np.uint8(...)`` does.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from freqtail.data.corruptions._common import (
    gaussian_blur_batch,
    hsv_adjust,
    to_unit,
    to_unit64,
    truncate_to_uint8,
)

# Contrast factor around the per-channel mean.
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
# (displacement amplitude, displacement smoothness sigma, affine jitter), in units of the image
# side (the original's multiples of IMSIZE = 32).
ELASTIC = ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
# Fraction of the side kept by the box downsampling.
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
# Pillow JPEG quality.
JPEG_QUALITY = (80, 65, 58, 50, 40)
# (scale, shift) of the HSV saturation.
SATURATE = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))


def contrast(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """x' = (x - m) c + m, with m the per-image, per-channel mean (lower contrast), in float64."""
    factor = CONTRAST[severity - 1]
    x = to_unit64(images)
    means = x.mean(axis=(1, 2), keepdims=True)
    return truncate_to_uint8((x - means) * factor + means)


def _random_affine_source(h: int, w: int, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Source (row, col) coordinates, float (2, H, W), of a random affine warp.

    Three points around the centre (at +-1/3 of the smaller side) move by uniform offsets in
    [-jitter, jitter] pixels; the affine map taking the original points to the moved ones is
    applied to the image (as OpenCV's ``getAffineTransform`` + ``warpAffine``), so each output
    pixel samples the image at the inverse map of its position.
    """
    centre = np.array([w // 2, h // 2], dtype=np.float64)  # (x, y)
    half = min(h, w) // 3
    points = np.array([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    moved = points + rng.uniform(-jitter, jitter, size=points.shape)
    # Forward map [x', y'] = A [x, y, 1]; solve from the three point pairs.
    forward = np.linalg.solve(np.c_[points, np.ones(3)], moved).T  # (2, 3)
    inverse_linear = np.linalg.inv(forward[:, :2])
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    out_xy = np.stack([cols.ravel(), rows.ravel()]) - forward[:, 2:3]
    src_x, src_y = inverse_linear @ out_xy
    return np.stack([src_y.reshape(h, w), src_x.reshape(h, w)])


def elastic_transform(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Random affine warp, then a smooth random displacement field (local stretching).

    Per image (side s = min(H, W), parameters in units of s): affine warp with point jitter
    ``c3 * s`` pixels (bilinear, reflect-101 borders); then every pixel moves by
    ``alpha * G_sigma(u)`` in each axis, u uniform in [-1, 1] per pixel, G a Gaussian blur of
    ``c2 * s`` pixels (reflect borders, truncated at 3 sigma), ``alpha = c1 * s`` (bilinear,
    reflect borders).
    """
    alpha_unit, sigma_unit, jitter_unit = ELASTIC[severity - 1]
    n, h, w, c = images.shape
    side = min(h, w)
    alpha, sigma, jitter = alpha_unit * side, sigma_unit * side, jitter_unit * side
    x = to_unit(images)
    grid_rows, grid_cols, grid_channels = np.mgrid[0:h, 0:w, 0:c].astype(np.float32)
    out = np.empty_like(x)
    for i, rng in enumerate(rngs):
        source = _random_affine_source(h, w, jitter, rng).astype(np.float32)
        coords = np.stack(
            [
                np.broadcast_to(source[0][..., None], (h, w, c)),
                np.broadcast_to(source[1][..., None], (h, w, c)),
                grid_channels,
            ]
        )
        warped = ndimage.map_coordinates(x[i], coords, order=1, mode="mirror")
        shifts = rng.uniform(-1.0, 1.0, size=(2, h, w))
        shifts = gaussian_blur_batch(shifts, sigma, mode="reflect", truncate=3.0) * alpha
        coords = np.stack(
            [
                grid_rows + shifts[1][..., None].astype(np.float32),
                grid_cols + shifts[0][..., None].astype(np.float32),
                grid_channels,
            ]
        )
        out[i] = ndimage.map_coordinates(warped, coords, order=1, mode="reflect")
    return truncate_to_uint8(out)


def pixelate(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Box-downsample to ``int(c * side)`` and box-upsample back (Pillow ``Image.BOX``)."""
    keep = PIXELATE[severity - 1]
    n, h, w = images.shape[:3]
    small = (max(1, int(w * keep)), max(1, int(h * keep)))
    out = np.empty_like(images)
    for i, image in enumerate(images):
        pil = Image.fromarray(image).resize(small, Image.Resampling.BOX)
        out[i] = np.asarray(pil.resize((w, h), Image.Resampling.BOX))
    return out


def jpeg_compression(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Encode and decode with Pillow's JPEG codec at quality ``c`` (default 4:2:0 chroma subsampling)."""
    quality = JPEG_QUALITY[severity - 1]
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def saturate(images: np.ndarray, severity: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """HSV saturation S' = clip(S a + b): severities 1-2 wash colours out, 3-5 oversaturate."""
    scale, shift = SATURATE[severity - 1]
    return hsv_adjust(images, channel=1, scale=scale, shift=shift)
