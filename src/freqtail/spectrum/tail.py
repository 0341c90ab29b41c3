"""How long-tailed a band distribution is: spectral entropy (paper §3.3) and a power-law fit.

Both take proportions pi (..., K + 1) from :func:`~freqtail.spectrum.band_proportions`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from freqtail.checks import check_number
from freqtail.errors import InputError
from freqtail.spectrum.adapters import Converter, check_distribution


class SpectralEntropy(NamedTuple):
    """Spectral entropy (§3.3) of proportions pi (..., K + 1)."""

    per_band: Any  # (..., K + 1): H[k] = -pi[k] log pi[k], with 0 log 0 = 0
    total: Any  # (...): sum of per_band
    normalized: Any  # (...): total / log(number of bands used), in [0, 1]; 0 when only one band is used


def spectral_entropy(pi: Any, base: float = math.e, include_dc: bool = False) -> SpectralEntropy:
    """Per-band, total and normalised spectral entropy of proportions pi (..., K + 1).

    Args:
        pi: proportions from :func:`band_proportions` (tensor or numpy; numpy in, numpy out).
        base: logarithm base (e: nats, 2: bits).
        include_dc: whether pi includes DC; it sets the number of bands used for the normalisation
            (K + 1 with DC, K without), matching :func:`band_proportions`.
    """
    base = check_number(base, "The entropy base", minimum=0, open_min=True)
    if base == 1:
        raise InputError("The entropy base must be a positive number other than 1, not 1.")
    conv = Converter(pi, "proportions pi")
    p = conv.tensor
    check_distribution(p)
    safe = torch.where(p > 0, p, torch.ones_like(p))
    per_band = torch.where(p > 0, -p * torch.log(safe) / math.log(base), torch.zeros_like(p)) + 0.0  # no -0.0
    total = per_band.sum(-1)
    used = p.shape[-1] if include_dc else p.shape[-1] - 1
    normalized = total / (math.log(used) / math.log(base)) if used > 1 else torch.zeros_like(total)
    return SpectralEntropy(conv.out(per_band), conv.out(total), conv.out(normalized))


def power_law_fit(pi: torch.Tensor, max_band: int | None) -> tuple[torch.Tensor, ...]:
    """Masked least squares per row of a pi tensor (..., K + 1): (alpha, r2, intercept), each (...).

    :func:`fit_power_law` without the input conversion, plus the intercept ``c``.
    """
    p = pi.double()
    k = torch.arange(p.shape[-1], dtype=torch.float64, device=p.device)
    usable = (k >= 1) & (p > 0)
    if max_band is not None:
        usable &= k <= max_band
    n = usable.sum(-1)
    if bool((n < 2).any()):
        raise InputError(
            f"A power-law fit needs at least 2 bands k >= 1 with pi[k] > 0, but a row has {int(n.min())}; "
            "the images are too small or have no signal."
        )
    m = usable.double()
    x = torch.log(torch.where(usable, k.expand_as(p), torch.ones_like(p)))
    y = torch.log(torch.where(usable, p, torch.ones_like(p)))
    x_mean = (x * m).sum(-1) / n
    y_mean = (y * m).sum(-1) / n
    dx = (x - x_mean[..., None]) * m
    dy = (y - y_mean[..., None]) * m
    slope = (dx * dy).sum(-1) / (dx * dx).sum(-1)  # n >= 2 distinct k, so the denominator is > 0
    residual = ((dy - slope[..., None] * dx) ** 2).sum(-1)
    spread = (dy * dy).sum(-1)
    # A flat pi fits exactly with slope 0 (spread == residual == 0): R^2 = 1, never 0 / 0.
    r2 = torch.where(spread > 0, 1 - residual / torch.where(spread > 0, spread, 1.0), torch.ones_like(spread))
    return -slope, r2, y_mean - slope * x_mean


def fit_power_law(pi: Any, max_band: int | None = None) -> tuple[Any, Any]:
    """Least-squares fit ``log pi[k] = c - alpha log k`` over bands ``k >= 1`` with ``pi[k] > 0``.

    Args:
        pi: proportions (..., K + 1) (tensor or numpy; numpy in, numpy out).
        max_band: if given, fit only bands ``k <= max_band`` (e.g. the full rings inside the Nyquist
            radius); by default every band (docs/design.md).

    Returns:
        ``(alpha, r2)``, each of shape (...). With per-pixel power ``~ r ** -a``, full-ring band sums
        grow with the circumference, so ``pi[k] ~ k ** (1 - a)`` and ``alpha = a - 1``.

    Raises:
        InputError: fewer than 2 usable bands in some row.
    """
    conv = Converter(pi, "proportions pi")
    alpha, r2, _ = power_law_fit(conv.tensor, max_band)
    return conv.out(alpha), conv.out(r2)
