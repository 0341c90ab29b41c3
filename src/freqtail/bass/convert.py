"""BaSS for the data types people hold: numpy uint8 arrays, torch tensors, PIL images, datasets.

uint8 inputs are processed in float64 on the 0..255 scale and truncated back to uint8 exactly as
the published code does (``uint8(clip(x'))``), so CIFAR10-B made here matches the authors' files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from freqtail.bass.core import (
    balance_batch,
    balance_spectrum_tensor,
    check_profile,
    check_strength,
    chunk_length,
)
from freqtail.checks import check_int
from freqtail.errors import InputError
from freqtail.images import check_uint8_images

#: Most images per step in :func:`convert_uint8_images` (fewer for large images, see
#: :func:`freqtail.bass.core.chunk_length`).
DEFAULT_CHUNK_SIZE = 256


def _convert_uint8(
    images: np.ndarray | torch.Tensor,
    strength: float,
    profile: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bar: Any = None,
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """BaSS of uint8 images, chunk by chunk, in float64 on the 0..255 scale: every uint8 path.

    Args:
        images: uint8 numpy (N, H, W, C), which may be a read-only memory map (one chunk at a time
            is read), or a uint8 tensor (N, C, H, W) on any device.
        strength: in [0, 1]. profile: one of :data:`~freqtail.bass.core.PROFILES`.
        chunk_size: at most this many images per step on a CPU, where steps also hold less
            than twice :data:`~freqtail.bass.core.CHUNK_BYTES` of float64 (or one image), see
            :func:`~freqtail.bass.core.chunk_length`; the result does not depend on it. A GPU
            tensor is converted in one step.
        bar: a progress bar with ``update(n_images)``, or None.

    Returns:
        ``(out, degenerate)``: out a new uint8 array (N, H, W, C) or tensor (N, C, H, W), truncated
        as the published code does (``uint8(clip(x'))``); degenerate bool (N, C), numpy or torch
        like ``images``.
    """
    strength, profile = check_strength(strength), check_profile(profile)
    channels_last = isinstance(images, np.ndarray)
    if channels_last:
        n, h, w, c = images.shape
        out = np.empty(images.shape, dtype=np.uint8)
        target = torch.from_numpy(out).permute(0, 3, 1, 2)  # (N, C, H, W) view of the output
        device = torch.device("cpu")
    else:
        n, c, h, w = images.shape
        out = target = torch.empty(images.shape, dtype=torch.uint8, device=images.device)
        device = images.device
    degenerate = torch.zeros((n, c), dtype=torch.bool, device=device)
    step = chunk_length(n, c * h * w * 8, chunk_size) if device.type == "cpu" else n  # float64
    values = torch.empty((step, c, h, w), dtype=torch.float64, device=device)
    result = torch.empty_like(values)
    for start in range(0, n, step):
        stop = min(start + step, n)
        chunk = values[: stop - start]
        if channels_last:  # numpy reads a memory map without a writable copy; the cast is exact
            np.copyto(chunk.numpy().transpose(0, 2, 3, 1), images[start:stop], casting="unsafe")
        else:
            chunk.copy_(images[start:stop])
        if strength == 0.0:
            converted = chunk
        else:
            converted, degenerate[start:stop] = balance_batch(
                chunk, strength, profile, 1.0, out=result[: stop - start], check_finite=False
            )
        # Values are clipped to [0, 255]: the cast truncates toward zero like numpy's uint8().
        if channels_last:  # one plane at a time: faster than a 4-D transposing copy
            for channel in range(c):
                target[start:stop, channel].copy_(converted[:, channel])
        else:
            target[start:stop].copy_(converted)
        if bar is not None:
            bar.update(stop - start)
    return out, (degenerate.numpy() if channels_last else degenerate)


def _balance_pil(image: Any, strength: float, profile: str) -> tuple[Any, np.ndarray]:
    if image.mode not in ("L", "RGB"):
        raise InputError(
            f"BaSS takes PIL images in mode L or RGB, not {image.mode}; convert with image.convert('RGB')."
        )
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    out, degenerate = _convert_uint8(array[None], strength, profile)
    out = out[0, :, :, 0] if image.mode == "L" else out[0]
    return Image.fromarray(out, mode=image.mode), degenerate[0]


def _balance_torch(x: torch.Tensor, strength: float, profile: str) -> tuple[torch.Tensor, torch.Tensor]:
    if x.ndim not in (3, 4):
        raise InputError(
            f"BaSS takes image tensors of shape (N, C, H, W) or (C, H, W), not {tuple(x.shape)}."
        )
    batch = x if x.ndim == 4 else x[None]
    if batch.dtype == torch.uint8:
        if not batch.numel():
            raise InputError(f"The BaSS input tensor is empty (shape {tuple(batch.shape)}).")
        out, degenerate = _convert_uint8(batch, strength, profile)
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

    Large batches are transformed in chunks on a CPU (:func:`freqtail.bass.core.chunk_length`);
    no image's result depends on the batch it comes in, bit for bit.

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
    if return_degenerate not in (False, True, "channels"):
        raise InputError(f'return_degenerate must be False, True or "channels", not {return_degenerate!r}.')
    if isinstance(x, Image.Image):
        out, degenerate = _balance_pil(x, strength, profile)
    elif isinstance(x, torch.Tensor):
        out, degenerate = _balance_torch(x, strength, profile)
    elif isinstance(x, np.ndarray):
        batch = check_uint8_images(x, "BaSS input images")
        out, degenerate = _convert_uint8(batch, strength, profile)
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

    The same conversion as :func:`balance_spectrum` on the array, bit for bit.

    Args:
        images: uint8 (N, H, W, C) or (H, W, C), C in {1, 3}; may be a read-only memory map
            (only one chunk at a time is read into memory).
        strength: exponent in [0, 1] applied to the BaSS weights (1 = published).
        chunk_size: at most this many images are converted per step; a step also holds at
            most 2 MiB of float64 values (:data:`~freqtail.bass.core.CHUNK_BYTES`: 85 images of
            32x32 RGB, one of 224x224) unless all the images hold less than 4 MiB. Peak working
            memory is about 100 bytes per value of a step (measured: ~40 MiB for steps of 85
            32x32 RGB images, ~20 MiB with ``chunk_size=16``). The result does not depend on it.
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
    batch = check_uint8_images(images, "images to convert")
    chunk_size = check_int(chunk_size, "The BaSS chunk size", minimum=1)
    with tqdm(total=len(batch), unit="img", desc="BaSS", disable=not progress, dynamic_ncols=True) as bar:
        out, degenerate = _convert_uint8(batch, strength, profile, chunk_size, bar)
    n_degenerate, n_channels = int(degenerate.any(1).sum()), int(degenerate.sum())
    converted = out if np.ndim(images) == 4 else out[0]
    return (converted, n_degenerate, n_channels) if count_channels else (converted, n_degenerate)
