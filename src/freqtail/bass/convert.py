"""BaSS for the data types people hold: numpy uint8 arrays, torch tensors, PIL images, datasets.

uint8 inputs are processed in float64 on the 0..255 scale and truncated back to uint8 exactly as
the published code does (``uint8(clip(x'))``), so CIFAR10-B made here matches the authors' files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from freqtail.bass.core import balance_spectrum_tensor
from freqtail.checks import check_int
from freqtail.errors import InputError
from freqtail.images import check_uint8_images

#: Images per chunk in :func:`convert_uint8_images`: ~60 MiB of working memory at 32x32 RGB (measured).
DEFAULT_CHUNK_SIZE = 256


def _balance_uint8_nchw(
    images: torch.Tensor, strength: float, profile: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) tensor -> (uint8 (N, C, H, W), degenerate channels bool (N, C)), float64 inside."""
    values = images.to(torch.float64)
    out, degenerate = balance_spectrum_tensor(values, strength, profile=profile, scale=1.0, per_channel=True)
    # Values are already clipped to [0, 255]; the cast truncates toward zero like numpy's uint8().
    return out.to(torch.uint8), degenerate


def _balance_uint8_numpy(images: np.ndarray, strength: float, profile: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) numpy -> (uint8 (N, H, W, C), degenerate channels bool (N, C))."""
    # A writable C-contiguous copy only when needed (read-only memory maps, views).
    nchw = torch.from_numpy(np.require(images, requirements=("C", "W"))).permute(0, 3, 1, 2)
    out, degenerate = _balance_uint8_nchw(nchw, strength, profile)
    return out.permute(0, 2, 3, 1).contiguous().numpy(), degenerate.numpy()


def _balance_pil(image: Any, strength: float, profile: str) -> tuple[Any, np.ndarray]:
    from PIL import Image

    if image.mode not in ("L", "RGB"):
        raise InputError(
            f"BaSS takes PIL images in mode L or RGB, not {image.mode}; convert with image.convert('RGB')."
        )
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    out, degenerate = _balance_uint8_numpy(array[None], strength, profile)
    out = out[0, :, :, 0] if image.mode == "L" else out[0]
    return Image.fromarray(out, mode=image.mode), degenerate[0]


def _balance_torch(x: torch.Tensor, strength: float, profile: str) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim not in (3, 4):
        raise InputError(
            f"BaSS takes image tensors of shape (N, C, H, W) or (C, H, W), not {tuple(x.shape)}."
        )
    batch = x if x.ndim == 4 else x[None]
    if batch.dtype == torch.uint8:
        out, degenerate = _balance_uint8_nchw(batch, strength, profile)
    elif batch.is_floating_point():
        out, degenerate = balance_spectrum_tensor(batch, strength, profile=profile, per_channel=True)
    else:
        raise InputError(f"BaSS takes uint8 or floating point image tensors, not {x.dtype}.")
    return (out if x.ndim == 4 else out[0]), degenerate


def balance_spectrum(
    x: Any,
    strength: float = 1.0,
    *,
    profile: str = "amplitude",
    return_degenerate: bool | str = False,
) -> Any:
    """Apply BaSS to images of any supported type; the output has the input's type and shape.

    Accepted inputs:

    * uint8 numpy (N, H, W, C) or (H, W, C), C in {1, 3} -> uint8 numpy, truncated as published;
    * float torch (N, C, H, W) or (C, H, W) in [0, 1] -> float torch in [0, 1] (clipped, not
      rounded), on the input's device, differentiable;
    * uint8 torch (N, C, H, W) or (C, H, W) -> uint8 torch, truncated as published;
    * PIL image in mode L or RGB -> PIL image of the same mode.

    Args:
        x: the images.
        strength: exponent in [0, 1] applied to the BaSS weights (1 = published, 0 = identity).
        profile: ``"amplitude"`` (published) or ``"power"`` (see :mod:`freqtail.bass`).
        return_degenerate: also return which images hit the degenerate rule. ``True``: per image,
            True when at least one channel was returned unchanged (the others are transformed):
            a bool numpy (N,) for numpy input (N = 1 for a single image), a bool tensor (N,) for
            tensors, a bool for a PIL image. ``"channels"``: per channel, a bool numpy (N, C), a
            bool tensor (N, C), or a tuple of C bools for a PIL image.

    Returns:
        The converted images, or ``(images, degenerate)`` when ``return_degenerate`` is set.

    Raises:
        InputError: unsupported type, dtype, shape or mode, NaN/Inf, or an invalid option.

    Example:
        >>> import numpy as np
        >>> from freqtail.bass import balance_spectrum
        >>> images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        >>> balance_spectrum(images).shape
        (4, 32, 32, 3)
    """
    from PIL import Image

    if return_degenerate not in (False, True, "channels"):
        raise InputError(f'return_degenerate must be False, True or "channels", not {return_degenerate!r}.')
    if isinstance(x, Image.Image):
        out, degenerate = _balance_pil(x, strength, profile)
    elif isinstance(x, torch.Tensor):
        out, degenerate = _balance_torch(x, strength, profile)
    elif isinstance(x, np.ndarray):
        batch = check_uint8_images(x, "BaSS input images")
        out, degenerate = _balance_uint8_numpy(batch, strength, profile)
        out = out if x.ndim == 4 else out[0]
    else:
        raise InputError(
            f"BaSS takes a uint8 numpy array, a torch tensor or a PIL image, not {type(x).__name__}."
        )
    if not return_degenerate:
        return out
    if return_degenerate == "channels":
        return out, (tuple(bool(v) for v in degenerate) if isinstance(x, Image.Image) else degenerate)
    return out, (bool(degenerate.any()) if isinstance(x, Image.Image) else degenerate.any(1))


def convert_uint8_images(
    images: np.ndarray,
    strength: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    *,
    profile: str = "amplitude",
    count_channels: bool = False,
) -> tuple[np.ndarray, int] | tuple[np.ndarray, int, int]:
    """Convert a large uint8 image array chunk by chunk; peak extra memory does not grow with N.

    Args:
        images: uint8 (N, H, W, C) or (H, W, C), C in {1, 3}; may be a read-only memory map
            (only one chunk at a time is read into memory).
        strength: exponent in [0, 1] applied to the BaSS weights (1 = published).
        chunk_size: images converted per step; working memory is about 80 bytes per value
            (chunk_size * H * W * C), ~60 MiB at the default for 32x32 RGB.
        progress: show a tqdm progress bar (images per second) on stderr.
        profile: ``"amplitude"`` (published) or ``"power"``.
        count_channels: also return how many channels (over all images) were left unchanged.

    Returns:
        ``(converted, n_degenerate)``: a new uint8 array of the input's shape, and how many images
        hit the degenerate rule in at least one channel (that channel is copied unchanged, the
        others are transformed); ``(converted, n_degenerate, n_degenerate_channels)`` with
        ``count_channels=True``.

    Example:
        >>> import numpy as np
        >>> from freqtail.bass import convert_uint8_images
        >>> images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
        >>> converted, n_degenerate = convert_uint8_images(images, chunk_size=4)
        >>> converted.shape, n_degenerate
        ((10, 32, 32, 3), 0)
    """
    from tqdm.auto import tqdm

    batch = check_uint8_images(images, "images to convert")
    chunk_size = check_int(chunk_size, "The BaSS chunk size", minimum=1)
    total = batch.shape[0]
    out = np.empty(batch.shape, dtype=np.uint8)
    n_degenerate = n_channels = 0
    with tqdm(total=total, unit="img", desc="BaSS", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            converted, degenerate = _balance_uint8_numpy(np.asarray(batch[start:stop]), strength, profile)
            out[start:stop] = converted
            n_degenerate += int(degenerate.any(1).sum())
            n_channels += int(degenerate.sum())
            bar.update(stop - start)
    converted = out if np.ndim(images) == 4 else out[0]
    return (converted, n_degenerate, n_channels) if count_channels else (converted, n_degenerate)
