"""Spectra and band power (paper Eq. 1): the per-band power of real images, and its proportions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from freqtail.errors import InputError
from freqtail.spectrum.adapters import Converter, real_images
from freqtail.spectrum.bands import band_layout

# A channel "has signal" when its non-DC power exceeds this fraction of its total power. The band power
# is computed on the mean-subtracted image, so a constant image gives exactly zero non-DC power in
# practice; the tolerance only guards against rounding in inputs computed elsewhere.
SIGNAL_RTOL = 1e-18


def centered_spectrum(x: Any) -> torch.Tensor:
    """Complex centred spectrum ``fftshift(fft2(x))`` of real images.

    Args:
        x: real float tensor (or numpy array) of shape (..., H, W); any H, W >= 1.

    Returns:
        complex tensor (..., H, W) with DC at ``(H // 2, W // 2)``.
    """
    x = real_images(x)
    return torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))


def band_power(x: Any, *, quantity: str = "power", reduce: str = "sum") -> Any:
    """Per-band spectral power of real images (Eq. 1's azimuthal integral by default).

    Args:
        x: real float tensor or numpy array (..., H, W) (per channel: pass (N, C, H, W)).
        quantity: ``"power"`` sums ``|X|^2``; ``"amplitude"`` sums ``|X|``.
        reduce: ``"sum"`` (the azimuthal integral, Eq. 1) or ``"mean"`` (the azimuthal average: the
            sum divided by the number of spectrum positions in the band).

    Returns:
        (..., K + 1) in the input's float dtype (numpy in, numpy out); ``K + 1 = num_bands(H, W)``.
        Unnormalised DFT: by Parseval, the ``"power"``/``"sum"`` bands add up to ``H * W * sum(x ** 2)``.
    """
    if quantity not in ("power", "amplitude"):
        raise InputError(f"quantity must be 'power' or 'amplitude', not {quantity!r}.")
    if reduce not in ("sum", "mean"):
        raise InputError(f"reduce must be 'sum' or 'mean', not {reduce!r}.")
    was_numpy = isinstance(x, np.ndarray)
    x = real_images(x)
    h, w = x.shape[-2:]
    layout = band_layout(h, w, x.device)
    # The mean is removed before the FFT and DC restored exactly afterwards: a constant image then has
    # exactly zero non-DC power instead of rounding noise proportional to its brightness.
    mean = x.mean(dim=(-2, -1), keepdim=True)
    coefficients = torch.fft.rfft2(x - mean)
    magnitude = coefficients.abs()
    values = magnitude.square() if quantity == "power" else magnitude
    values = values.flatten(-2)
    dc = (mean[..., 0, 0] * (h * w)).abs()
    values[..., 0] = dc.square() if quantity == "power" else dc
    weighted = values * layout.multiplicity.to(values.dtype)
    out = torch.zeros(*values.shape[:-1], layout.num_bands, dtype=values.dtype, device=x.device)
    out.index_add_(-1, layout.band, weighted)
    if reduce == "mean":
        out = out / layout.counts.to(out.dtype)
    return out.cpu().numpy() if was_numpy else out


def has_signal(power: Any, include_dc: bool = False) -> Any:
    """Whether each band-power vector (..., K + 1) carries power outside DC (bool (...)).

    With ``include_dc=True`` any power counts. Non-DC power at or below ``SIGNAL_RTOL`` times the
    total power (a constant image, up to rounding) counts as none.
    """
    conv = Converter(power, "band powers")
    p = conv.tensor
    total = p.sum(-1)
    used = total if include_dc else p[..., 1:].sum(-1)
    return conv.out((used > 0) & (used > SIGNAL_RTOL * total))


def band_proportions(power: Any, include_dc: bool = False) -> Any:
    """Proportions ``pi[k] = AI[k] / sum(AI)`` of band powers (..., K + 1) -> (..., K + 1).

    With DC excluded (the default) ``pi[..., 0] = 0`` and the other bands sum to 1. A vector without
    signal (see :func:`has_signal`, e.g. a constant image) gets an all-zero ``pi``; never NaN.
    """
    conv = Converter(power, "band powers")
    valid = has_signal(conv.tensor, include_dc=include_dc)
    p = (
        conv.tensor
        if include_dc
        else torch.cat([torch.zeros_like(conv.tensor[..., :1]), conv.tensor[..., 1:]], -1)
    )
    total = p.sum(-1, keepdim=True)
    pi = torch.where(valid[..., None], p / torch.where(valid[..., None], total, torch.ones_like(total)), 0.0)
    return conv.out(pi)
