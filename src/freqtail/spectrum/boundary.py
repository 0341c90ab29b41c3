"""The 80/20 boundary of paper Eq. 2: where the low-frequency bands reach ``ratio`` of the power.

LFC = bands ``< b``, HFC = bands ``>= b``; over every band up to the corner by default, or over the
bands ``0 .. max_band`` alone (the paper's inscribed circle) with proportions renormalised there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from freqtail.checks import check_int
from freqtail.errors import InputError
from freqtail.spectrum.adapters import Converter, check_distribution
from freqtail.spectrum.bands import check_size, corner_radius, nyquist_radius
from freqtail.spectrum.power import SIGNAL_RTOL
from freqtail.spectrum.ratio import DEFAULT_RATIO, check_ratio


def truncate(p: torch.Tensor, max_band: int) -> torch.Tensor:
    """Bands ``0 .. max_band`` of a distribution p (..., K + 1), renormalised; zero rows without power."""
    kept = p[..., : max_band + 1]
    total = p.sum(-1, keepdim=True)
    part = kept.sum(-1, keepdim=True)
    # The same "no signal" rule as has_signal: rounding-level power does not become a distribution.
    valid = (part > 0) & (part > SIGNAL_RTOL * total)
    return torch.where(valid, kept / torch.where(valid, part, torch.ones_like(part)), 0.0)


def truncate_proportions(pi: Any, max_band: int) -> Any:
    """Proportions restricted to the bands ``0 .. max_band`` and renormalised to sum to 1 there.

    E.g. ``max_band = inscribed_max_band(H, W)`` gives the paper's distribution over the inscribed
    circle. DC is neither added nor removed: a ``pi`` with ``pi[..., 0] = 0`` (the default of
    :func:`band_proportions`) keeps it 0. A row whose kept bands carry no power (all of it lies beyond
    ``max_band``, or the row is all zero) becomes all zero, as :func:`band_proportions` does without signal.

    Args:
        pi: proportions (..., K + 1) from :func:`band_proportions` (tensor or numpy; numpy in, numpy out).
        max_band: the last band kept, an integer >= 0; values >= K keep every band.

    Returns:
        (..., min(max_band, K) + 1) proportions, each row summing to 1 (or 0), in pi's float dtype.
    """
    max_band = check_int(max_band, "max_band", minimum=0)
    conv = Converter(pi, "proportions pi")
    check_distribution(conv.tensor)
    return conv.out(truncate(conv.tensor, max_band))


def lfc_boundary(pi: Any, ratio: float = DEFAULT_RATIO, max_band: int | None = None) -> Any:
    """The 80/20 boundary band of Eq. 2: the largest ``n`` with ``sum(pi[:n]) <= ratio``.

    LFC = bands ``< b``, HFC = bands ``>= b``. Cumulative sums within ``16 * eps`` (of pi's dtype) of
    ``ratio`` count as hitting it exactly. A row without signal (all-zero pi) gets ``b = K + 1``:
    everything is low frequency.

    With ``max_band`` the boundary is that of :func:`truncate_proportions` ``(pi, max_band)``: only the
    bands ``0 .. max_band`` count, renormalised, so ``b`` is in ``0 .. min(max_band, K) + 1`` and a row
    without power in those bands gets ``min(max_band, K) + 1``. ``max_band = inscribed_max_band(H, W)``
    is the paper's convention (bands up to ``H / 2``); the default (None) is freqtail's, every band up
    to the corner.

    Args:
        pi: proportions (..., K + 1) from :func:`band_proportions` (tensor or numpy).
        ratio: share of the power below the boundary, strictly between 0 and 1.
        max_band: the last band that counts (an integer >= 0), or None for all bands.

    Returns:
        int64 (...) band indices in ``0 .. K + 1`` (numpy in, numpy out).
    """
    ratio = check_ratio(ratio)
    if max_band is not None:
        max_band = check_int(max_band, "max_band", minimum=0)
    conv = Converter(pi, "proportions pi")
    p = conv.tensor
    check_distribution(p)
    if max_band is not None:
        p = truncate(p, max_band)
    tol = 16 * torch.finfo(p.dtype).eps
    # cumulative[n] = sum of pi[k] for k < n, n = 0 .. K + 1; it is non-decreasing, so b = count - 1.
    cumulative = torch.cat([torch.zeros_like(p[..., :1]), p.double().cumsum(-1)], dim=-1)
    b = (cumulative <= ratio + tol).sum(-1) - 1
    return conv.out(b.to(torch.int64))


def boundary_fractions(b: Any, h: int, w: int) -> tuple[Any, Any]:
    """``(b / nyquist_radius(h, w), b / corner_radius(h, w))`` for boundary band(s) ``b``.

    Raises:
        InputError: for a 1x1 image, whose corner radius is 0.
    """
    h, w = check_size(h, w)
    if h * w == 1:
        raise InputError("A 1x1 image has no frequency beyond DC, so boundary fractions are undefined.")
    if isinstance(b, torch.Tensor):
        b = b.double()
    elif isinstance(b, np.ndarray):
        b = b.astype(np.float64)
    else:
        b = float(b)
    return b / nyquist_radius(h, w), b / corner_radius(h, w)
