"""Natural photographs that ship inside an installed package (scikit-image's bundled data).

They give every command real images to work on when the user has no data at hand, and they are
the source of the embedded default dataset. Only images stored inside the scikit-image wheel are
used, so nothing is downloaded.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import skimage.data

from freqtail.errors import InputError

# scikit-image loaders whose files ship in the wheel (no pooch download). Natural photographs and
# photographic textures/micrographs only: no synthetic drawings, text or binary masks.
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "cell",
    "clock",
    "motorcycle",
)


def _load_raw(name: str) -> np.ndarray:
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


@cache
def load_photo(name: str) -> np.ndarray:
    """Return one bundled photograph as a read-only uint8 array of shape (H, W, 3).

    Grayscale photographs are replicated to three channels.
    """
    if name not in PHOTO_NAMES:
        raise InputError(f"Unknown sample photograph {name!r}; choose one of {', '.join(PHOTO_NAMES)}.")
    image = np.asarray(_load_raw(name))
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3].astype(np.uint8, copy=False))
    image.setflags(write=False)
    return image


def load_photos(names: tuple[str, ...] = PHOTO_NAMES) -> dict[str, np.ndarray]:
    """Return ``{name: uint8 (H, W, 3)}`` for the given bundled photographs."""
    return {name: load_photo(name) for name in names}


def photo_crops(
    size: int | tuple[int, int], per_photo: int, seed: int = 0, names: tuple[str, ...] = PHOTO_NAMES
) -> np.ndarray:
    """Deterministic random crops of the bundled photographs.

    Args:
        size: crop side in pixels, or an (H, W) pair for non-square crops.

    Returns:
        uint8 array (len(names) * per_photo, H, W, 3), photo-major order.
    """
    ch, cw = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    crops = []
    for name in names:
        photo = load_photo(name)
        h, w = photo.shape[:2]
        if h < ch or w < cw:
            raise InputError(f"Crop size {ch}x{cw} is larger than the photograph {name!r} ({h}x{w}).")
        for _ in range(per_photo):
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            crops.append(photo[top : top + ch, left : left + cw])
    return np.ascontiguousarray(np.stack(crops))
