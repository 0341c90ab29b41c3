"""Applying one CIFAR-10-C corruption at one severity to a batch of uint8 images (:func:`corrupt`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from freqtail.checks import check_int, check_seed
from freqtail.data.corruptions import blur, digital, noise, weather
from freqtail.data.corruptions._common import image_rngs
from freqtail.data.corruptions.names import check_corruption_name, check_severity
from freqtail.errors import InputError
from freqtail.images import check_uint8_images

CorruptionFn = Callable[[np.ndarray, int, list[np.random.Generator]], np.ndarray]

_FUNCTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "speckle_noise": noise.speckle_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur_corruption,
    "zoom_blur": blur.zoom_blur,
    "gaussian_blur": blur.gaussian_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": weather.brightness,
    "spatter": weather.spatter,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "saturate": digital.saturate,
}

MIN_SIDE = 8  # smallest image side every corruption is defined for
_CHUNK_VALUES = 1 << 22  # images are processed in chunks of about this many uint8 values (4 MiB)


def corrupt(
    images: np.ndarray, name: str, severity: int, seed: int = 0, *, start_index: int = 0
) -> np.ndarray:
    """Apply one CIFAR-10-C corruption at one severity to a batch of RGB images.

    Args:
        images: uint8 (N, H, W, 3) or (H, W, 3), RGB, sides >= 8 pixels; any size (the CIFAR-10-C
            parameters are used; see each corruption's docstring for how it treats other sizes).
        name: one of :data:`CORRUPTIONS`.
        severity: 1 (mild) .. 5 (severe).
        seed: non-negative integer; the same seed gives the same output.
        start_index: global index of ``images[0]`` in a larger set. Image ``i`` uses a random
            generator keyed by ``(seed, name, severity, start_index + i)``, so corrupting a set in
            chunks (passing each chunk's offset) equals corrupting it at once.

    Returns:
        uint8 array of the input's shape; the input is not modified.

    Raises:
        InputError: unknown name or severity, non-uint8 or non-RGB images, sides below 8.
    """
    check_corruption_name(name)
    severity = check_severity(severity)
    seed = check_seed(seed, "The corruption seed")
    start_index = check_int(start_index, "start_index", minimum=0)
    single = isinstance(images, np.ndarray) and images.ndim == 3
    batch = check_uint8_images(images, what="images to corrupt")
    n, h, w, c = batch.shape
    if c != 3:
        raise InputError(
            f"Corruptions need RGB images with 3 channels, but these have {c}; "
            "replicate grey images with np.repeat(images, 3, axis=-1)."
        )
    if min(h, w) < MIN_SIDE:
        raise InputError(f"Corruptions need images of at least {MIN_SIDE}x{MIN_SIDE} pixels, not {h}x{w}.")
    function = _FUNCTIONS[name]
    chunk = max(1, _CHUNK_VALUES // (h * w * c))
    out = np.empty((n, h, w, c), dtype=np.uint8)
    for begin in range(0, n, chunk):
        part = np.ascontiguousarray(batch[begin : begin + chunk])
        rngs = image_rngs(seed, name, severity, start_index + begin, len(part))
        out[begin : begin + len(part)] = function(part, severity, rngs)
    return out[0] if single else out
