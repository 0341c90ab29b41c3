"""The frequency long tail of images (paper §2, Eq. 1-2, §3.3; DESIGN.md "Conventions").

Everything here is batched torch (CPU or CUDA, float32 or float64); functions on band vectors also
take and return numpy arrays. The conventions, written once:

* centred spectrum ``fftshift(fft2(x))`` with DC at ``(H // 2, W // 2)``; any H, W;
* radius ``r`` = Euclidean distance (in frequency-index units) to the centre, **band** ``k = floor(r)``,
  ``k = 0 .. K`` where ``K = floor(corner radius)``; band 0 is DC alone;
* band power (Eq. 1): ``AI[k] = sum of |X|^2 over band k``; proportions ``pi = AI / sum(AI)`` with DC
  excluded by default;
* 80/20 boundary (Eq. 2): the largest ``b`` such that the bands ``< b`` carry at most ``ratio`` of the
  power; LFC = bands ``< b``, HFC = bands ``>= b``. The paper's bands stop at ``H / 2`` (the inscribed
  circle); freqtail's run to the corner, and the boundary over the inscribed bands
  ``k <= min(H, W) // 2`` alone is available too (``lfc_boundary(pi, ratio, max_band=...)``);
* spectral entropy ``H[k] = -pi[k] log pi[k]`` and a power-law fit ``log pi[k] = c - alpha log k``.

Dataset statistics stream through :class:`SpectrumAccumulator` in constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import torch

from freqtail.errors import InputError
from freqtail.images import check_float_images, check_uint8_images, uint8_to_float

DEFAULT_RATIO = 0.8

# A channel "has signal" when its non-DC power exceeds this fraction of its total power. The band power
# is computed on the mean-subtracted image, so a constant image gives exactly zero non-DC power in
# practice; the tolerance only guards against rounding in inputs computed elsewhere.
SIGNAL_RTOL = 1e-18

# A dataset summary reports no inscribed boundary when the inscribed bands hold at most this share of the
# non-DC power: float32 FFT rounding leaks a little power into empty bands (5e-16 of it for one 8x8
# cosine beyond the inscribed circle), and a boundary of that noise would mean nothing.
INSCRIBED_MIN_SHARE = 1e-9

__all__ = [
    "DEFAULT_RATIO",
    "BoundaryDistribution",
    "SpectralEntropy",
    "SpectrumAccumulator",
    "SpectrumSummary",
    "as_float_images",
    "band_map",
    "band_power",
    "band_proportions",
    "boundary_fractions",
    "centered_spectrum",
    "check_ratio",
    "corner_radius",
    "fit_power_law",
    "full_ring_max_band",
    "has_signal",
    "high_pass",
    "inscribed_max_band",
    "lfc_boundary",
    "low_pass",
    "num_bands",
    "nyquist_radius",
    "radius_map",
    "spectral_entropy",
    "split_frequencies",
    "summarize",
    "truncate_proportions",
]


# --------------------------------------------------------------------------------------------------
# Input adapters
# --------------------------------------------------------------------------------------------------


def _check_size(h: int, w: int) -> tuple[int, int]:
    if int(h) < 1 or int(w) < 1:
        raise InputError(f"Image size must be at least 1x1 pixels, not {h}x{w}.")
    return int(h), int(w)


def _real_images(x: Any, what: str = "images") -> torch.Tensor:
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
    x = _real_images(images)
    return x if device is None else x.to(device)


class _Converter:
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


# --------------------------------------------------------------------------------------------------
# Geometry: radius, bands
# --------------------------------------------------------------------------------------------------


def nyquist_radius(h: int, w: int) -> float:
    """Radius of the largest full circle of frequencies, ``min(H, W) / 2`` (frequency-index units)."""
    h, w = _check_size(h, w)
    return min(h, w) / 2.0


def corner_radius(h: int, w: int) -> float:
    """Largest radius in the centred spectrum, ``hypot(H // 2, W // 2)`` (0 for a 1x1 image)."""
    h, w = _check_size(h, w)
    return math.hypot(h // 2, w // 2)


def full_ring_max_band(h: int, w: int) -> int:
    """The last band that is a complete ring: ``min((H - 1) // 2, (W - 1) // 2)``.

    Band k is complete when the spectrum reaches offset k on both sides of both axes (all lattice
    points with ``r < k + 1`` have ``|offset| <= k``); bands beyond it are cut by the spectrum's edges.
    """
    h, w = _check_size(h, w)
    return min((h - 1) // 2, (w - 1) // 2)


def inscribed_max_band(h: int, w: int) -> int:
    """The last band of the inscribed circle, ``min(H, W) // 2``: where the paper's bands stop (``H / 2``).

    The upper end of the inscribed 80/20 boundary (:func:`lfc_boundary` with ``max_band``). When the
    shorter side is odd it equals :func:`full_ring_max_band`; when it is even it is one band more, a
    ring that lacks the points at offset ``+min(H, W) / 2`` (the spectrum stops at ``-min(H, W) / 2``).
    0 (DC alone) when H or W is 1.
    """
    h, w = _check_size(h, w)
    return min(h, w) // 2


def num_bands(h: int, w: int) -> int:
    """Number of bands ``K + 1`` where ``K = floor(corner radius)``; every band holds at least one pixel."""
    h, w = _check_size(h, w)
    return math.isqrt((h // 2) ** 2 + (w // 2) ** 2) + 1


def _centered_offsets(n: int) -> np.ndarray:
    """Signed frequency of each position of an fftshift-ed axis of length n: ``-(n // 2) .. (n - 1) // 2``."""
    return np.arange(n, dtype=np.int64) - n // 2


def _unshifted_offsets(n: int) -> np.ndarray:
    """Signed frequency of each position of an unshifted FFT axis (what ``fftfreq(n) * n`` gives).

    For even n the Nyquist frequency is ``-n / 2``, as after fftshift, so radii agree in both layouts.
    """
    return np.fft.ifftshift(_centered_offsets(n))


def _floor_sqrt(d2: np.ndarray) -> np.ndarray:
    """Exact ``floor(sqrt(d2))`` for non-negative int64 ``d2`` (float sqrt, then integer correction)."""
    k = np.floor(np.sqrt(d2.astype(np.float64))).astype(np.int64)
    k -= (k * k > d2).astype(np.int64)
    k += ((k + 1) * (k + 1) <= d2).astype(np.int64)
    return k


@lru_cache(maxsize=64)
def _centered_maps(h: int, w: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    du = _centered_offsets(h)[:, None]
    dv = _centered_offsets(w)[None, :]
    d2 = du * du + dv * dv
    radius = torch.from_numpy(np.sqrt(d2.astype(np.float64))).to(device=device, dtype=dtype)
    bands = torch.from_numpy(_floor_sqrt(d2)).to(device=device)
    return radius, bands


@dataclass(frozen=True)
class _HalfPlane:
    """Geometry of the ``rfft2`` half plane, flattened: (H * (W // 2 + 1),) per field."""

    bands: torch.Tensor  # int64 band of each stored coefficient
    radius: torch.Tensor  # float64 radius of each stored coefficient
    multiplicity: torch.Tensor  # 1 or 2: how many full-plane coefficients each stored one stands for
    band_sizes: torch.Tensor  # float64 (K + 1,) pixels per band in the full plane


@lru_cache(maxsize=64)
def _half_plane(h: int, w: int, device: str) -> _HalfPlane:
    # rfft2 keeps columns 0 .. W // 2 of the unshifted spectrum. For a real image the missing columns
    # are complex conjugates of stored ones at the same radius (the band map is symmetric under
    # (u, v) -> (-u, -v)), so each stored column other than 0 and (for even W) W / 2 counts twice.
    du = _unshifted_offsets(h)[:, None]
    dv = np.abs(_unshifted_offsets(w)[: w // 2 + 1])[None, :]
    d2 = du * du + dv * dv
    bands = _floor_sqrt(d2)
    multiplicity = np.full(d2.shape, 2.0)
    multiplicity[:, 0] = 1.0
    if w % 2 == 0:
        multiplicity[:, w // 2] = 1.0
    sizes = np.bincount(bands.ravel(), weights=multiplicity.ravel(), minlength=num_bands(h, w))
    return _HalfPlane(
        bands=torch.from_numpy(bands.ravel()).to(device),
        radius=torch.from_numpy(np.sqrt(d2.astype(np.float64)).ravel()).to(device),
        multiplicity=torch.from_numpy(multiplicity.ravel()).to(device),
        band_sizes=torch.from_numpy(sizes).to(device),
    )


def radius_map(
    h: int, w: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """(H, W) distance of each centred-spectrum position to the centre ``(H // 2, W // 2)``.

    Maps are cached per (H, W, device, dtype); the returned tensor is a fresh copy.
    """
    h, w = _check_size(h, w)
    return _centered_maps(h, w, str(torch.device(device or "cpu")), dtype)[0].clone()


def band_map(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """int64 (H, W) band ``floor(radius)`` of each centred-spectrum position; band 0 is DC only.

    Computed exactly in integer arithmetic (no float rounding at band edges); cached per (H, W, device).
    """
    h, w = _check_size(h, w)
    return _centered_maps(h, w, str(torch.device(device or "cpu")), torch.float64)[1].clone()


# --------------------------------------------------------------------------------------------------
# Spectra and band power
# --------------------------------------------------------------------------------------------------


def centered_spectrum(x: Any) -> torch.Tensor:
    """Complex centred spectrum ``fftshift(fft2(x))`` of real images.

    Args:
        x: real float tensor (or numpy array) of shape (..., H, W); any H, W >= 1.

    Returns:
        complex tensor (..., H, W) with DC at ``(H // 2, W // 2)``.
    """
    x = _real_images(x)
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
    x = _real_images(x)
    h, w = x.shape[-2:]
    plane = _half_plane(h, w, str(x.device))
    # The mean is removed before the FFT and DC restored exactly afterwards: a constant image then has
    # exactly zero non-DC power instead of rounding noise proportional to its brightness.
    mean = x.mean(dim=(-2, -1), keepdim=True)
    coefficients = torch.fft.rfft2(x - mean)
    magnitude = coefficients.abs()
    values = magnitude.square() if quantity == "power" else magnitude
    values = values.flatten(-2)
    dc = (mean[..., 0, 0] * (h * w)).abs()
    values[..., 0] = dc.square() if quantity == "power" else dc
    weighted = values * plane.multiplicity.to(values.dtype)
    out = torch.zeros(*values.shape[:-1], int(plane.band_sizes.numel()), dtype=values.dtype, device=x.device)
    out.index_add_(-1, plane.bands, weighted)
    if reduce == "mean":
        out = out / plane.band_sizes.to(out.dtype)
    return out.cpu().numpy() if was_numpy else out


def has_signal(power: Any, include_dc: bool = False) -> Any:
    """Whether each band-power vector (..., K + 1) carries power outside DC (bool (...)).

    With ``include_dc=True`` any power counts. Non-DC power at or below ``SIGNAL_RTOL`` times the
    total power (a constant image, up to rounding) counts as none.
    """
    conv = _Converter(power, "band powers")
    p = conv.tensor
    total = p.sum(-1)
    used = total if include_dc else p[..., 1:].sum(-1)
    return conv.out((used > 0) & (used > SIGNAL_RTOL * total))


def band_proportions(power: Any, include_dc: bool = False) -> Any:
    """Proportions ``pi[k] = AI[k] / sum(AI)`` of band powers (..., K + 1) -> (..., K + 1).

    With DC excluded (the default) ``pi[..., 0] = 0`` and the other bands sum to 1. A vector without
    signal (see :func:`has_signal`, e.g. a constant image) gets an all-zero ``pi``; never NaN.
    """
    conv = _Converter(power, "band powers")
    valid = has_signal(conv.tensor, include_dc=include_dc)
    p = (
        conv.tensor
        if include_dc
        else torch.cat([torch.zeros_like(conv.tensor[..., :1]), conv.tensor[..., 1:]], -1)
    )
    total = p.sum(-1, keepdim=True)
    pi = torch.where(valid[..., None], p / torch.where(valid[..., None], total, torch.ones_like(total)), 0.0)
    return conv.out(pi)


# --------------------------------------------------------------------------------------------------
# The 80/20 boundary, entropy, power law
# --------------------------------------------------------------------------------------------------


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` as a float if it is strictly between 0 and 1, else raise InputError."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise InputError(f"ratio must be a number strictly between 0 and 1, not {ratio!r}.") from None
    if not (0.0 < value < 1.0):
        raise InputError(f"ratio must be strictly between 0 and 1 (0.8 is the paper's 80/20), not {ratio}.")
    return value


def _check_distribution(pi: torch.Tensor, what: str = "proportions pi") -> None:
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


def _check_max_band(max_band: Any) -> int:
    if isinstance(max_band, bool) or not isinstance(max_band, (int, np.integer)) or int(max_band) < 0:
        raise InputError(f"max_band must be a non-negative integer band index, not {max_band!r}.")
    return int(max_band)


def _truncate(p: torch.Tensor, max_band: int) -> torch.Tensor:
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
    max_band = _check_max_band(max_band)
    conv = _Converter(pi, "proportions pi")
    _check_distribution(conv.tensor)
    return conv.out(_truncate(conv.tensor, max_band))


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
        max_band = _check_max_band(max_band)
    conv = _Converter(pi, "proportions pi")
    p = conv.tensor
    _check_distribution(p)
    if max_band is not None:
        p = _truncate(p, max_band)
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
    h, w = _check_size(h, w)
    if h * w == 1:
        raise InputError("A 1x1 image has no frequency beyond DC, so boundary fractions are undefined.")
    if isinstance(b, torch.Tensor):
        b = b.double()
    elif isinstance(b, np.ndarray):
        b = b.astype(np.float64)
    else:
        b = float(b)
    return b / nyquist_radius(h, w), b / corner_radius(h, w)


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
    try:
        base = float(base)
    except (TypeError, ValueError):
        raise InputError(f"The entropy base must be a positive number other than 1, not {base!r}.") from None
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise InputError(f"The entropy base must be a positive number other than 1, not {base}.")
    conv = _Converter(pi, "proportions pi")
    p = conv.tensor
    _check_distribution(p)
    safe = torch.where(p > 0, p, torch.ones_like(p))
    per_band = torch.where(p > 0, -p * torch.log(safe) / math.log(base), torch.zeros_like(p)) + 0.0  # no -0.0
    total = per_band.sum(-1)
    used = p.shape[-1] if include_dc else p.shape[-1] - 1
    normalized = total / (math.log(used) / math.log(base)) if used > 1 else torch.zeros_like(total)
    return SpectralEntropy(conv.out(per_band), conv.out(total), conv.out(normalized))


def _fit_power_law(pi: torch.Tensor, max_band: int | None) -> tuple[torch.Tensor, ...]:
    """Masked least squares per row; returns (alpha, r2, intercept), each (...)."""
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
            radius); by default every band (DESIGN.md).

    Returns:
        ``(alpha, r2)``, each of shape (...). With per-pixel power ``~ r ** -a``, full-ring band sums
        grow with the circumference, so ``pi[k] ~ k ** (1 - a)`` and ``alpha = a - 1``.

    Raises:
        InputError: fewer than 2 usable bands in some row.
    """
    conv = _Converter(pi, "proportions pi")
    alpha, r2, _ = _fit_power_law(conv.tensor, max_band)
    return conv.out(alpha), conv.out(r2)


# --------------------------------------------------------------------------------------------------
# LFC / HFC images
# --------------------------------------------------------------------------------------------------


def _low_mask(h: int, w: int, boundary: torch.Tensor, mask: str, width: float, device) -> torch.Tensor:
    """Low-pass weights on the rfft2 half plane, shape (..., H, W // 2 + 1), float64."""
    plane = _half_plane(h, w, str(device))
    k_max = num_bands(h, w) - 1
    b = boundary.to(device=device, dtype=torch.float64)[..., None, None]
    if mask == "hard":
        bands = plane.bands.view(h, w // 2 + 1)
        return (bands < b).to(torch.float64)
    radius = plane.radius.view(h, w // 2 + 1)
    # Raised cosine centred on the hard edge r = b: 1 below b - width / 2, 0 above b + width / 2.
    t = ((radius - b) / width + 0.5).clamp(0.0, 1.0)
    low = 0.5 * (1.0 + torch.cos(math.pi * t))
    low = torch.where(b <= 0, torch.zeros_like(low), low)
    return torch.where(b >= k_max + 1, torch.ones_like(low), low)


def _filtered(x: Any, boundary_band: Any, mask: str, width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x as float tensor, low-pass weights broadcastable to its rfft2)."""
    if mask not in ("hard", "smooth"):
        raise InputError(f"mask must be 'hard' or 'smooth', not {mask!r}.")
    try:
        width = float(width)
    except (TypeError, ValueError):
        raise InputError(
            f"The smooth mask width must be a positive number of bands, not {width!r}."
        ) from None
    if mask == "smooth" and not (width > 0 and math.isfinite(width)):
        raise InputError(f"The smooth mask width must be a positive number of bands, not {width}.")
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


# --------------------------------------------------------------------------------------------------
# Dataset statistics, streamed
# --------------------------------------------------------------------------------------------------


@dataclass
class BoundaryDistribution:
    """Distribution of per-image boundary bands (each from that image's channel-mean pi).

    Quantiles use the inverted-CDF rule (the smallest band b with at least q of the images at or
    below b), so they are always band indices.
    """

    histogram: list[int]  # histogram[b] = number of images with boundary band b, b = 0 .. K + 1
    count: int
    mean: float
    min: int
    p10: int
    median: int
    p90: int
    max: int

    @classmethod
    def from_histogram(cls, histogram: np.ndarray) -> BoundaryDistribution:
        hist = np.asarray(histogram, dtype=np.int64)
        count = int(hist.sum())
        cumulative = np.cumsum(hist)

        def quantile(q: float) -> int:
            return int(np.searchsorted(cumulative, max(1, math.ceil(q * count - 1e-9)), side="left"))

        bands = np.arange(hist.size)
        return cls(
            histogram=[int(v) for v in hist],
            count=count,
            mean=float((bands * hist).sum() / count),
            min=int(bands[hist > 0][0]),
            p10=quantile(0.1),
            median=quantile(0.5),
            p90=quantile(0.9),
            max=int(bands[hist > 0][-1]),
        )


@dataclass
class SpectrumSummary:
    """The frequency long tail of a set of images (see :class:`SpectrumAccumulator`)."""

    boundary_band: int
    boundary_fraction_nyquist: float
    boundary_fraction_corner: float
    lfc_power_share: float
    alpha: float | None  # None when fewer than 2 bands have power (tiny images)
    alpha_r2: float | None
    alpha_intercept: float | None  # c of log pi[k] = c - alpha log k, for plotting the fit
    # The same fit restricted to the full rings (1 <= k <= full_ring_max_band): the corner bands are
    # partial rings whose sums fall off steeply, which bends the all-band fit. None if < 2 bands.
    alpha_rings: float | None
    alpha_rings_r2: float | None
    alpha_rings_intercept: float | None
    entropy: float  # nats
    entropy_normalized: float
    entropy_per_band: np.ndarray  # (K + 1,) nats
    pi: np.ndarray  # (K + 1,) dataset mean proportions, pi[0] = 0
    num_images: int  # images seen, skipped ones included
    num_skipped_constant: int  # images without non-DC power in any channel
    num_skipped_channels: int  # constant channels skipped (those of skipped images included)
    image_size: tuple[int, int]
    ratio: float
    per_image_boundary: BoundaryDistribution
    nyquist_radius: float
    corner_radius: float
    # The 80/20 boundary over the inscribed bands 1 .. inscribed_max_band alone (the paper's bands stop
    # at H / 2), from the same mean pi renormalised over those bands. None when they carry no power
    # (at most INSCRIBED_MIN_SHARE of it, i.e. rounding noise).
    boundary_band_inscribed: int | None
    boundary_fraction_nyquist_inscribed: float | None
    lfc_power_share_inscribed: float | None  # share of the inscribed bands' power below it
    inscribed_power_share: float  # share of the non-DC power in bands <= inscribed_max_band

    @property
    def num_bands(self) -> int:
        """K + 1, the number of bands in ``pi``."""
        return int(len(self.pi))

    @property
    def full_ring_max_band(self) -> int:
        """The last complete ring, the upper end of the ``alpha_rings`` fit."""
        return full_ring_max_band(*self.image_size)

    @property
    def inscribed_max_band(self) -> int:
        """``min(H, W) // 2``, the last band of the inscribed boundary ``boundary_band_inscribed``."""
        return inscribed_max_band(*self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: plain ints, floats (never NaN/Inf), lists and None."""

        def number(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else float(value)

        return {
            "boundary_band": int(self.boundary_band),
            "boundary_fraction_nyquist": number(self.boundary_fraction_nyquist),
            "boundary_fraction_corner": number(self.boundary_fraction_corner),
            "lfc_power_share": number(self.lfc_power_share),
            "boundary_band_inscribed": None
            if self.boundary_band_inscribed is None
            else int(self.boundary_band_inscribed),
            "boundary_fraction_nyquist_inscribed": number(self.boundary_fraction_nyquist_inscribed),
            "lfc_power_share_inscribed": number(self.lfc_power_share_inscribed),
            "inscribed_max_band": self.inscribed_max_band,
            "inscribed_power_share": number(self.inscribed_power_share),
            "alpha": number(self.alpha),
            "alpha_r2": number(self.alpha_r2),
            "alpha_intercept": number(self.alpha_intercept),
            "alpha_rings": number(self.alpha_rings),
            "alpha_rings_r2": number(self.alpha_rings_r2),
            "alpha_rings_intercept": number(self.alpha_rings_intercept),
            "entropy": number(self.entropy),
            "entropy_normalized": number(self.entropy_normalized),
            "entropy_per_band": [float(v) for v in self.entropy_per_band],
            "pi": [float(v) for v in self.pi],
            "num_bands": self.num_bands,
            "num_images": int(self.num_images),
            "num_skipped_constant": int(self.num_skipped_constant),
            "num_skipped_channels": int(self.num_skipped_channels),
            "image_size": [int(v) for v in self.image_size],
            "nyquist_radius": float(self.nyquist_radius),
            "corner_radius": float(self.corner_radius),
            "ratio": float(self.ratio),
            "per_image_boundary": {
                "histogram": list(self.per_image_boundary.histogram),
                "count": self.per_image_boundary.count,
                "mean": float(self.per_image_boundary.mean),
                "min": self.per_image_boundary.min,
                "p10": self.per_image_boundary.p10,
                "median": self.per_image_boundary.median,
                "p90": self.per_image_boundary.p90,
                "max": self.per_image_boundary.max,
            },
        }


class SpectrumAccumulator:
    """Streams images and accumulates the dataset's frequency long tail in constant memory.

    Per DESIGN.md: the dataset pi is the mean over images and channels of the per-channel pi (DC
    excluded); channels without non-DC power (constant) are skipped and counted, and so are images whose
    channels are all constant. The dataset boundary comes from the mean pi; each usable image's own
    boundary (from the mean pi of its usable channels) goes into a histogram reported beside it. The
    dataset boundary is also computed over the inscribed bands alone (``k <= min(H, W) // 2``, the
    paper's range), from the same mean pi renormalised over them. Only sums and a histogram are kept,
    so memory does not grow with the number of images.

    Args:
        ratio: the 80/20 ratio (strictly between 0 and 1).
        device: where FFTs run (default: CPU for numpy input, the tensor's device for torch input).
        chunk_size: images per FFT call inside :meth:`update` (bounds peak memory for big arrays).
    """

    def __init__(
        self, ratio: float = DEFAULT_RATIO, device: torch.device | str | None = None, chunk_size=256
    ):
        self.ratio = check_ratio(ratio)
        self.device = None if device is None else torch.device(device)
        if int(chunk_size) < 1:
            raise InputError(f"chunk_size must be a positive integer, not {chunk_size}.")
        self.chunk_size = int(chunk_size)
        self.image_size: tuple[int, int] | None = None
        self.num_images = 0
        self.num_skipped_constant = 0
        self.num_skipped_channels = 0
        self._pi_sum: torch.Tensor | None = None  # float64 (K + 1,)
        self._channels_used = 0
        self._boundary_hist: torch.Tensor | None = None  # int64 (K + 2,)

    def _as_batch(self, images: Any) -> torch.Tensor:
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8:
                raise InputError(
                    f"Image arrays must be uint8 (N, H, W, C) or (H, W, C), not dtype {images.dtype}; "
                    "pass float images as a torch tensor (N, C, H, W) in [0, 1]."
                )
            return check_uint8_images(images)
        if isinstance(images, torch.Tensor):
            return check_float_images(images)
        raise InputError(
            "Images must be a uint8 numpy array (N, H, W, C) or a float torch tensor (N, C, H, W), "
            f"not {type(images).__name__}."
        )

    def update(self, images: Any) -> SpectrumAccumulator:
        """Add a batch: uint8 numpy (N, H, W, C) / (H, W, C), or float torch (N, C, H, W) in [0, 1].

        Every batch must have the same H x W. Returns self.

        Raises:
            InputError: bad dtype/rank/channels, empty, non-finite, 1x1 images, or a size change.
        """
        batch = self._as_batch(images)
        is_numpy = isinstance(batch, np.ndarray)
        h, w = (batch.shape[1], batch.shape[2]) if is_numpy else (batch.shape[2], batch.shape[3])
        if h * w == 1:
            raise InputError("Images of 1x1 pixels have no frequency beyond DC, so they have no long tail.")
        if self.image_size is None:
            self.image_size = (int(h), int(w))
            k1 = num_bands(h, w)
            self._pi_sum = torch.zeros(k1, dtype=torch.float64)
            self._boundary_hist = torch.zeros(k1 + 1, dtype=torch.int64)
        elif (h, w) != self.image_size:
            raise InputError(
                f"All images must share one size, but a batch of {h}x{w} images followed "
                f"{self.image_size[0]}x{self.image_size[1]} ones; resize them or analyse each size apart."
            )
        for start in range(0, batch.shape[0], self.chunk_size):
            chunk = batch[start : start + self.chunk_size]
            if is_numpy:
                # A read-only memory map is copied chunk by chunk (torch needs writable memory).
                x = uint8_to_float(np.require(chunk, requirements=["C", "W"]), device=self.device)
            else:
                x = chunk.detach().to(self.device) if self.device is not None else chunk.detach()
            self._add(x)
        return self

    def _add(self, x: torch.Tensor) -> None:
        power = band_power(x).double()  # (n, C, K + 1)
        valid = has_signal(power)  # (n, C)
        pi = band_proportions(power)  # zero rows where not valid
        self._pi_sum += pi.sum(dim=(0, 1)).cpu()
        channels = valid.sum(1)  # (n,)
        self._channels_used += int(channels.sum())
        self.num_skipped_channels += int((~valid).sum())
        usable = channels > 0
        self.num_images += int(x.shape[0])
        self.num_skipped_constant += int((~usable).sum())
        if bool(usable.any()):
            image_pi = pi[usable].sum(1) / channels[usable, None]
            b = lfc_boundary(image_pi, self.ratio)
            self._boundary_hist += torch.bincount(b.cpu(), minlength=self._boundary_hist.numel())

    def result(self) -> SpectrumSummary:
        """Summarise everything seen so far.

        Raises:
            InputError: no images, or all images constant (no non-DC power: the long tail is undefined).
        """
        if self.image_size is None or self._pi_sum is None or self._boundary_hist is None:
            raise InputError("No images were given, so there is no spectrum to summarise.")
        if self._channels_used == 0:
            raise InputError(
                f"All {self.num_images} images are constant (no power outside DC), so their frequency "
                "long tail is undefined."
            )
        h, w = self.image_size
        pi = self._pi_sum / self._channels_used
        pi = pi / pi.sum()  # remove rounding drift; pi[0] stays 0
        b = int(lfc_boundary(pi, self.ratio))
        frac_nyquist, frac_corner = boundary_fractions(b, h, w)
        inscribed = _inscribed_fields(pi, self.ratio, h, w)
        entropy = spectral_entropy(pi)
        alpha, r2, intercept = _optional_fit(pi, None)
        alpha_rings, rings_r2, rings_intercept = _optional_fit(pi, full_ring_max_band(h, w))
        return SpectrumSummary(
            boundary_band=b,
            boundary_fraction_nyquist=float(frac_nyquist),
            boundary_fraction_corner=float(frac_corner),
            lfc_power_share=float(pi[:b].sum()),
            alpha=alpha,
            alpha_r2=r2,
            alpha_intercept=intercept,
            alpha_rings=alpha_rings,
            alpha_rings_r2=rings_r2,
            alpha_rings_intercept=rings_intercept,
            entropy=float(entropy.total),
            entropy_normalized=float(entropy.normalized),
            entropy_per_band=entropy.per_band.numpy(),
            pi=pi.numpy(),
            num_images=self.num_images,
            num_skipped_constant=self.num_skipped_constant,
            num_skipped_channels=self.num_skipped_channels,
            image_size=(h, w),
            ratio=self.ratio,
            per_image_boundary=BoundaryDistribution.from_histogram(self._boundary_hist.numpy()),
            nyquist_radius=nyquist_radius(h, w),
            corner_radius=corner_radius(h, w),
            **inscribed,
        )


def _inscribed_fields(pi: torch.Tensor, ratio: float, h: int, w: int) -> dict[str, Any]:
    """The ``*_inscribed`` fields of :class:`SpectrumSummary` from the dataset pi (K + 1,)."""
    m = inscribed_max_band(h, w)
    share = float(pi[: m + 1].sum())
    if share <= INSCRIBED_MIN_SHARE:
        return {
            "boundary_band_inscribed": None,
            "boundary_fraction_nyquist_inscribed": None,
            "lfc_power_share_inscribed": None,
            "inscribed_power_share": share,
        }
    kept = _truncate(pi, m)
    b = int(lfc_boundary(kept, ratio))
    return {
        "boundary_band_inscribed": b,
        "boundary_fraction_nyquist_inscribed": b / nyquist_radius(h, w),
        "lfc_power_share_inscribed": float(kept[:b].sum()),
        "inscribed_power_share": share,
    }


def _optional_fit(pi: torch.Tensor, max_band: int | None) -> tuple[float | None, ...]:
    """(alpha, r2, intercept) as floats, or three Nones when fewer than 2 bands can be fitted."""
    k = torch.arange(pi.numel())
    usable = (k >= 1) & (pi > 0)
    if max_band is not None:
        usable &= k <= max_band
    if int(usable.sum()) < 2:
        return None, None, None
    return tuple(float(v) for v in _fit_power_law(pi, max_band))


def _batches(images: Any, batch_size: int) -> tuple[Iterable[Any], int | None]:
    """Split one array/tensor into batches, or pass an iterable of batches through (len if known)."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        n = int(images.shape[0]) if images.ndim >= 1 else 0
        if n == 0:
            return [images], 1  # let the accumulator reject it with its own sentence
        return (images[i : i + batch_size] for i in range(0, n, batch_size)), math.ceil(n / batch_size)
    if isinstance(images, Iterable) and not isinstance(images, (str, bytes)):
        return images, (len(images) if hasattr(images, "__len__") else None)
    raise InputError(
        "Images must be a uint8 numpy array, a float torch tensor, or an iterable of such batches, "
        f"not {type(images).__name__}."
    )


def summarize(
    images: Any,
    ratio: float = DEFAULT_RATIO,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool | Callable[[Iterable[Any], int | None], Iterable[Any]] = False,
) -> SpectrumSummary:
    """The frequency long tail of a set of images in one call (streams through batches).

    Args:
        images: uint8 numpy (N, H, W, C) / (H, W, C) (a memory map is fine), a float torch tensor
            (N, C, H, W), or an iterable of such batches (e.g. ``freqtail.data.iter_uint8_batches``).
        ratio: the 80/20 ratio.
        batch_size: images per batch when splitting one array.
        device: where the FFTs run ("cuda" for speed).
        progress: True for a tqdm bar on stderr, or a callable ``(iterable, total) -> iterable``.
    """
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be a positive integer, not {batch_size}.")
    accumulator = SpectrumAccumulator(ratio=ratio, device=device, chunk_size=int(batch_size))
    batches, total = _batches(images, int(batch_size))
    if progress is True:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=total, desc="spectrum", unit="batch", leave=False, disable=None)
    elif callable(progress):
        batches = progress(batches, total)
    for batch in batches:
        accumulator.update(batch)
    return accumulator.result()
