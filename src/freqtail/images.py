"""Image layouts, validation and conversion, shared by every module.

freqtail uses two layouts (docs/design.md, "Conventions"):

* ``uint8`` channels-last, 0..255: numpy arrays (N, H, W, C) or (H, W, C), and PIL images;
* float channels-first in [0, 1]: torch tensors (N, C, H, W).

Validation raises :class:`freqtail.errors.InputError` with one sentence, so bad data never reaches
the FFT code.
"""

from __future__ import annotations

import numpy as np
import torch

from freqtail.errors import InputError

VALID_CHANNELS = (1, 3)


def check_uint8_images(images: np.ndarray, what: str = "images", allow_single: bool = True) -> np.ndarray:
    """Validate a uint8 channels-last image array and return it as (N, H, W, C).

    Accepted shapes: (N, H, W, C) and, if ``allow_single``, (H, W, C); C must be 1 or 3.

    Raises:
        InputError: wrong type, dtype, rank, channel count, or an empty array.
    """
    if not isinstance(images, np.ndarray):
        raise InputError(f"The {what} must be a numpy array, not {type(images).__name__}.")
    if images.dtype != np.uint8:
        raise InputError(
            f"The {what} must have dtype uint8 (0..255), but have dtype {images.dtype}; "
            "convert with (x * 255).round().astype(np.uint8) if they are floats in [0, 1]."
        )
    if images.ndim == 3 and allow_single:
        images = images[None]
    if images.ndim != 4:
        expected = "(N, H, W, C) or (H, W, C)" if allow_single else "(N, H, W, C)"
        raise InputError(f"The {what} must have shape {expected}, but have shape {tuple(images.shape)}.")
    if images.shape[-1] not in VALID_CHANNELS:
        raise InputError(
            f"The {what} must have 1 or 3 channels in the last axis (channels-last), "
            f"but have shape {tuple(images.shape)}."
        )
    if 0 in images.shape:
        raise InputError(f"The {what} are empty (shape {tuple(images.shape)}).")
    return images


def check_float_images(x: torch.Tensor, what: str = "images", *, finite: bool = True) -> torch.Tensor:
    """Validate a float (N, C, H, W) tensor: floating dtype, rank 4, non-empty, finite.

    Values outside [0, 1] are allowed (callers clamp where it matters) but NaN/Inf are not.
    ``finite=False`` leaves out the finiteness check (a reduction over every value), for callers
    that find non-finite values on their own way (BaSS's degenerate-channel test).
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"The {what} must be a torch tensor, not {type(x).__name__}.")
    if not x.is_floating_point():
        raise InputError(f"The {what} tensor must be floating point in [0, 1], not {x.dtype}.")
    shape = x.shape
    if len(shape) != 4:
        raise InputError(f"The {what} tensor must have shape (N, C, H, W), not {tuple(shape)}.")
    if 0 in shape:
        raise InputError(f"The {what} tensor is empty (shape {tuple(shape)}).")
    if not finite:
        return x
    # A finite sum proves every value finite in one cheap reduction (NaN/Inf propagate into it);
    # only a non-finite sum (bad values, or an overflow of huge ones) needs the exact check.
    if not bool(torch.isfinite(x.detach().sum())) and not bool(torch.isfinite(x.detach()).all()):
        raise InputError(f"The {what} tensor contains NaN or infinite values.")
    return x


def uint8_to_float(
    images: np.ndarray | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    t = torch.as_tensor(images, device=device)
    return t.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def float_to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> uint8 numpy (N, H, W, C), rounded to nearest and clipped."""
    return (
        x.detach()
        .mul(255.0)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .contiguous()
        .numpy()
    )
