"""Input adapters of the spectral functions: images to float tensors, band vectors in and out.

Images: uint8 channels-last numpy or real float (..., H, W) tensors/arrays become float tensors
(:func:`as_float_images`, :func:`real_images`). Band vectors (..., K + 1) (powers, proportions) are
validated by :class:`Converter`, which also hands results back as numpy when they came in as numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from freqtail.errors import InputError
from freqtail.images import check_uint8_images, uint8_to_float


def real_images(x: Any, what: str = "images") -> torch.Tensor:
    """Validate a real float tensor or numpy array of shape (..., H, W) and return a float tensor.

    Half precision is promoted to float32 (FFTs of half tensors only work for powers of two).
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(
                f"The {what} must be a float array of shape (..., H, W), not dtype {x.dtype}; "
                "convert uint8 (N, H, W, C) images with freqtail.spectrum.as_float_images."
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise InputError(f"The {what} must be a torch tensor or numpy array, not {type(x).__name__}.")
    if x.is_complex() or not x.is_floating_point():
        raise InputError(
            f"The {what} must be a real floating-point tensor of shape (..., H, W), not {x.dtype}; "
            "convert uint8 (N, H, W, C) images with freqtail.spectrum.as_float_images."
        )
    if x.ndim < 2:
        raise InputError(
            f"The {what} must have at least 2 dimensions (..., H, W), not shape {tuple(x.shape)}."
        )
    if x.numel() == 0:
        raise InputError(f"The {what} are empty (shape {tuple(x.shape)}).")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if not bool(torch.isfinite(x.detach()).all()):
        raise InputError(f"The {what} contain NaN or infinite values.")
    return x


def as_float_images(images: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Convert images to a float tensor for the spectral functions.

    Args:
        images: uint8 numpy (N, H, W, C) or (H, W, C) with C in {1, 3} (becomes float32 (N, C, H, W)
            in [0, 1]); or a float tensor / float numpy array (..., H, W), returned as a tensor.
        device: where the result lives (default: unchanged / CPU).

    Raises:
        InputError: wrong dtype, rank, channel count, empty, or non-finite values.
    """
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return uint8_to_float(check_uint8_images(images), device=device)
    x = real_images(images)
    return x if device is None else x.to(device)


class Converter:
    """Remembers whether a band vector came in as numpy so results go back out the same way."""

    def __init__(self, value: Any, what: str):
        self.numpy = isinstance(value, np.ndarray)
        if self.numpy:
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise InputError(f"The {what} must be a numeric array, not dtype {value.dtype}.")
            value = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, (list, tuple)):
            self.numpy = True
            value = torch.as_tensor(np.asarray(value, dtype=np.float64))
        if not isinstance(value, torch.Tensor):
            raise InputError(f"The {what} must be a torch tensor or numpy array, not {type(value).__name__}.")
        if value.is_complex():
            raise InputError(f"The {what} must be real, not {value.dtype}.")
        if not value.is_floating_point():
            value = value.double()
        elif value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        if value.ndim < 1 or value.shape[-1] == 0:
            raise InputError(
                f"The {what} must have shape (..., K + 1) with K + 1 >= 1, not {tuple(value.shape)}."
            )
        if not bool(torch.isfinite(value).all()):
            raise InputError(f"The {what} contain NaN or infinite values.")
        if bool((value < 0).any()):
            raise InputError(f"The {what} contain negative values.")
        self.tensor = value

    def out(self, value: torch.Tensor) -> Any:
        return value.detach().cpu().numpy() if self.numpy else value


def check_distribution(pi: torch.Tensor, what: str = "proportions pi") -> None:
    """pi rows must sum to 1 (a distribution) or 0 (no signal)."""
    sums = pi.double().sum(-1)
    tol = 1e-4
    bad = ((sums - 1).abs() > tol) & (sums.abs() > tol)
    if bool(bad.any()):
        example = float(sums[bad].flatten()[0])
        raise InputError(
            f"The {what} must sum to 1 over the last axis (or 0 for no signal), but a row sums to "
            f"{example:.6g}; pass band_proportions(band_power(x)), not raw band powers."
        )
