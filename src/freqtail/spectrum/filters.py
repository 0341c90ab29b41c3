"""LFC / HFC images: the inverse FFT of the spectrum masked below / at or above a boundary band.

Hard masks by default, so ``x == lfc + hfc`` up to float error; a raised-cosine smooth mask is an
option. The masks live on the ``rfft2`` half plane.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from freqtail.checks import check_choice, check_number
from freqtail.errors import InputError
from freqtail.spectrum.adapters import as_float_images
from freqtail.spectrum.bands import band_layout, half_plane_radius, num_bands


def _low_mask(h: int, w: int, boundary: torch.Tensor, mask: str, width: float, device) -> torch.Tensor:
    """Low-pass weights on the rfft2 half plane, shape (..., H, W // 2 + 1), float64."""
    k_max = num_bands(h, w) - 1
    b = boundary.to(device=device, dtype=torch.float64)[..., None, None]
    if mask == "hard":
        bands = band_layout(h, w, device).band.view(h, w // 2 + 1)
        return (bands < b).to(torch.float64)
    radius = half_plane_radius(h, w, device).view(h, w // 2 + 1)
    # Raised cosine centred on the hard edge r = b: 1 below b - width / 2, 0 above b + width / 2.
    t = ((radius - b) / width + 0.5).clamp(0.0, 1.0)
    low = 0.5 * (1.0 + torch.cos(math.pi * t))
    low = torch.where(b <= 0, torch.zeros_like(low), low)
    return torch.where(b >= k_max + 1, torch.ones_like(low), low)


def _filtered(x: Any, boundary_band: Any, mask: str, width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x as float tensor, low-pass weights broadcastable to its rfft2)."""
    check_choice(mask, ("hard", "smooth"), "mask")
    if mask == "smooth":
        width = check_number(width, "The smooth mask width (in bands)", minimum=0, open_min=True)
    x = as_float_images(x)
    h, w = x.shape[-2:]
    if isinstance(boundary_band, torch.Tensor):
        boundary = boundary_band.detach().to(x.device)
    else:
        boundary = torch.as_tensor(np.asarray(boundary_band), device=x.device)
    integral = not (boundary.is_complex() or boundary.dtype == torch.bool) and (
        not boundary.is_floating_point()
        or bool((torch.isfinite(boundary) & (boundary == boundary.round())).all())
    )
    if not integral:
        raise InputError(f"The boundary band must be an integer (or integers), not {boundary_band!r}.")
    k_max = num_bands(h, w) - 1
    if bool((boundary < 0).any()) or bool((boundary > k_max + 1).any()):
        raise InputError(f"The boundary band must be between 0 and {k_max + 1} for {h}x{w} images.")
    try:
        fits = torch.broadcast_shapes(boundary.shape, x.shape[:-2]) == x.shape[:-2]
    except RuntimeError:
        fits = False
    if not fits:
        raise InputError(
            f"The boundary bands of shape {tuple(boundary.shape)} do not broadcast to the images' leading "
            f"shape {tuple(x.shape[:-2])}."
        )
    return x, _low_mask(h, w, boundary, mask, width, x.device)


def _apply(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    spectrum = torch.fft.rfft2(x)
    return torch.fft.irfft2(spectrum * weights.to(x.dtype), s=(h, w))


def split_frequencies(
    x: Any, boundary_band: Any, mask: str = "hard", width: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split images into low- and high-frequency components at a boundary band.

    Args:
        x: float tensor / array (..., H, W) (e.g. (N, C, H, W)), or uint8 numpy (N, H, W, C) / (H, W, C)
            images (converted to float32 (N, C, H, W) in [0, 1]).
        boundary_band: int, or an integer tensor broadcastable to x's leading shape (e.g. (N, 1) for one
            boundary per image), in ``0 .. K + 1``. LFC = bands ``< b``.
        mask: ``"hard"`` (the definition) or ``"smooth"``: a raised-cosine transition centred on radius
            ``b`` of total ``width`` (in frequency-index units). b = 0 gives LFC = 0 and b = K + 1 gives
            LFC = x for both masks.
        width: transition width of the smooth mask.

    Returns:
        ``(lfc, hfc)`` float tensors shaped like the (converted) x, each the inverse FFT of the spectrum
        masked by complementary weights, so ``lfc + hfc == x`` up to float error.
    """
    x, low = _filtered(x, boundary_band, mask, width)
    return _apply(x, low), _apply(x, 1.0 - low)


def low_pass(x: Any, boundary_band: Any, mask: str = "hard", width: float = 2.0) -> torch.Tensor:
    """The LFC of :func:`split_frequencies` alone (one inverse FFT)."""
    x, low = _filtered(x, boundary_band, mask, width)
    return _apply(x, low)


def high_pass(x: Any, boundary_band: Any, mask: str = "hard", width: float = 2.0) -> torch.Tensor:
    """The HFC of :func:`split_frequencies` alone (one inverse FFT)."""
    x, low = _filtered(x, boundary_band, mask, width)
    return _apply(x, 1.0 - low)
