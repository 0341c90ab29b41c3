"""The CIFAR-10-C common corruptions: 19 corruptions x 5 severities on uint8 image batches.

Hendrycks & Dietterich (ICLR 2019) define the corruptions; the severity parameters are the
CIFAR-specific ones of their generation script (hendrycks/robustness,
``ImageNet-C/create_c/make_cifar_c.py``). The implementation is freqtail's own, on SciPy,
scikit-image, OpenCV (``defocus_blur``, ``spatter``), Pillow, matplotlib and NumPy. Every
corruption computes in the original's float precision and truncates as its ``np.uint8(...)``
does, so the deterministic ones return the original's pixels; ``glass_blur`` and ``spatter``
repeat the original's arithmetic step by step, including its quirks (glass blur's "swap" copies;
spatter's OpenCV calls), so for the same random numbers they return the original's pixels.
Known differences from the original:

* ``frost`` blends synthetic frost textures instead of the original's frost photographs;
* ``motion_blur`` and ``snow`` reimplement ImageMagick's motion blur with NumPy (same kernel
  and sampling rule);
* the random numbers come from per-image NumPy generators, so no image is bit-identical to the
  published CIFAR-10-C, only equal in distribution.

Usage::

    from freqtail.data.corruptions import corrupt, CORRUPTIONS
    out = corrupt(images_uint8_nhwc, "gaussian_noise", severity=3, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from freqtail.checks import check_int, check_seed
from freqtail.data.corruptions import blur, digital, noise, weather
from freqtail.data.corruptions._common import image_rngs
from freqtail.errors import InputError
from freqtail.images import check_uint8_images

CorruptionFn = Callable[[np.ndarray, int, list[np.random.Generator]], np.ndarray]

#: Category of each corruption (paper Table 4), in the paper's order.
CORRUPTIONS: dict[str, str] = {
    "gaussian_noise": "noise",
    "shot_noise": "noise",
    "impulse_noise": "noise",
    "speckle_noise": "noise",
    "defocus_blur": "blur",
    "glass_blur": "blur",
    "motion_blur": "blur",
    "zoom_blur": "blur",
    "gaussian_blur": "blur",
    "snow": "weather",
    "frost": "weather",
    "fog": "weather",
    "brightness": "weather",
    "spatter": "weather",
    "contrast": "digital",
    "elastic_transform": "digital",
    "pixelate": "digital",
    "jpeg_compression": "digital",
    "saturate": "digital",
}

#: Corruption names of each category, in order.
CATEGORIES: dict[str, tuple[str, ...]] = {
    category: tuple(name for name, cat in CORRUPTIONS.items() if cat == category)
    for category in ("noise", "blur", "weather", "digital")
}

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Corruptions that draw random numbers (their output depends on the seed).
RANDOM_CORRUPTIONS: frozenset[str] = frozenset(
    {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "speckle_noise",
        "glass_blur",
        "motion_blur",
        "snow",
        "frost",
        "fog",
        "spatter",
        "elastic_transform",
    }
)

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


def corruption_names(category: str | None = None) -> list[str]:
    """Names of all corruptions (paper order), or of one category ("noise", "blur", "weather", "digital")."""
    if category is None:
        return list(CORRUPTIONS)
    key = category.strip().lower()
    if key not in CATEGORIES:
        raise InputError(f"Unknown corruption category {category!r}; choose one of {', '.join(CATEGORIES)}.")
    return list(CATEGORIES[key])


def check_corruption_name(name: str) -> str:
    """Return ``name`` if it is a known corruption, else raise one sentence listing the valid names."""
    if name not in CORRUPTIONS:
        raise InputError(f"Unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}.")
    return name


def check_severity(severity: int) -> int:
    """Return ``severity`` as an int if it is one of 1..5, else raise one sentence."""
    return check_int(severity, "Corruption severity", minimum=1, maximum=5)


def parse_severities(text: str) -> list[int]:
    """A ``--severities`` text (``"1-5"``, ``"1,3,5"``, ``"2"``, ``"1-3,5"``) -> distinct severities 1..5."""
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high:
                    raise ValueError
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise InputError(
            f"--severities must look like 1-5, 1,3,5 or 2 (integers from 1 to 5), not {text!r}."
        ) from None
    if not values or any(not 1 <= v <= 5 for v in values) or len(set(values)) != len(values):
        raise InputError(f"--severities must list distinct integers from 1 to 5, not {text!r}.")
    return values


def parse_corruptions(text: str | None) -> list[str]:
    """A ``--corruptions`` text: comma-separated names and/or categories ("all" or None = every one)."""
    if text is None or text.strip().lower() == "all":
        return list(CORRUPTIONS)
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        key = part.lower().replace("-", "_")
        if key in CORRUPTIONS:
            chosen.append(key)
        elif key in CATEGORIES:
            chosen.extend(CATEGORIES[key])
        else:
            raise InputError(
                f"Unknown corruption {part!r} in --corruptions; choose from {', '.join(CORRUPTIONS)} "
                f"or a category ({', '.join(CATEGORIES)})."
            )
    return list(dict.fromkeys(chosen))


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


__all__ = [
    "parse_corruptions",
    "parse_severities",
    "CATEGORIES",
    "CORRUPTIONS",
    "MIN_SIDE",
    "RANDOM_CORRUPTIONS",
    "SEVERITIES",
    "check_corruption_name",
    "check_severity",
    "corrupt",
    "corruption_names",
]
