"""Band geometry: which band every spectrum position belongs to (docs/design.md "Bands").

The one place this is computed; band power, the LFC/HFC masks and BaSS (:mod:`freqtail.bass.core`)
all read it from here. A position's radius ``r`` is its distance, in frequency-index units, to the
centre ``(H // 2, W // 2)`` of the centred spectrum ``fftshift(fft2(x))``; its band is
``k = floor(r)``, ``k = 0 .. K`` with ``K = floor(corner radius)``. Two layouts of the same geometry:

* the centred plane, (H, W): :func:`radius_map`, :func:`band_map`;
* the unshifted ``rfft2`` half plane, columns ``0 .. W // 2``, flattened to (H * (W // 2 + 1),):
  :func:`band_layout` (bands, column multiplicities, positions per band) and :func:`half_plane_radius`.

Bands come from exact integer arithmetic (:func:`floor_sqrt`), so both layouts agree at every band
edge. Maps are built once per (H, W, device[, dtype]) and cached. BaSS's output depends on this
geometry: a change that moves any position to another band must bump ``freqtail.bass.BASS_VERSION``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from freqtail.errors import InputError


def check_size(h: int, w: int) -> tuple[int, int]:
    """Return ``(int(h), int(w))``, or raise InputError if either is below 1."""
    if int(h) < 1 or int(w) < 1:
        raise InputError(f"Image size must be at least 1x1 pixels, not {h}x{w}.")
    return int(h), int(w)


def nyquist_radius(h: int, w: int) -> float:
    """Radius of the largest full circle of frequencies, ``min(H, W) / 2`` (frequency-index units)."""
    h, w = check_size(h, w)
    return min(h, w) / 2.0


def corner_radius(h: int, w: int) -> float:
    """Largest radius in the centred spectrum, ``hypot(H // 2, W // 2)`` (0 for a 1x1 image)."""
    h, w = check_size(h, w)
    return math.hypot(h // 2, w // 2)


def full_ring_max_band(h: int, w: int) -> int:
    """The last band that is a complete ring: ``min((H - 1) // 2, (W - 1) // 2)``.

    Band k is complete when the spectrum reaches offset k on both sides of both axes (all lattice
    points with ``r < k + 1`` have ``|offset| <= k``); bands beyond it are cut by the spectrum's edges.
    """
    h, w = check_size(h, w)
    return min((h - 1) // 2, (w - 1) // 2)


def inscribed_max_band(h: int, w: int) -> int:
    """The last band of the inscribed circle, ``min(H, W) // 2``: where the paper's bands stop (``H / 2``).

    The upper end of the inscribed 80/20 boundary (:func:`~freqtail.spectrum.lfc_boundary` with
    ``max_band``). When the shorter side is odd it equals :func:`full_ring_max_band`; when it is even
    it is one band more, a ring that lacks the points at offset ``+min(H, W) / 2`` (the spectrum stops
    at ``-min(H, W) / 2``). 0 (DC alone) when H or W is 1.
    """
    h, w = check_size(h, w)
    return min(h, w) // 2


def num_bands(h: int, w: int) -> int:
    """Number of bands ``K + 1`` where ``K = floor(corner radius)``; every band holds at least one pixel."""
    h, w = check_size(h, w)
    return math.isqrt((h // 2) ** 2 + (w // 2) ** 2) + 1


def floor_sqrt(d2: np.ndarray) -> np.ndarray:
    """Exact ``floor(sqrt(d2))`` for non-negative int64 ``d2`` (float sqrt, then integer correction)."""
    k = np.floor(np.sqrt(d2.astype(np.float64))).astype(np.int64)
    k -= (k * k > d2).astype(np.int64)
    k += ((k + 1) * (k + 1) <= d2).astype(np.int64)
    return k


def _centered_offsets(n: int) -> np.ndarray:
    """Signed frequency of each position of an fftshift-ed axis of length n: ``-(n // 2) .. (n - 1) // 2``."""
    return np.arange(n, dtype=np.int64) - n // 2


def _unshifted_offsets(n: int) -> np.ndarray:
    """Signed frequency of each position of an unshifted FFT axis (what ``fftfreq(n) * n`` gives).

    For even n the Nyquist frequency is ``-n / 2``, as after fftshift, so radii agree in both layouts.
    """
    return np.fft.ifftshift(_centered_offsets(n))


def _centered_d2(h: int, w: int) -> np.ndarray:
    """int64 (H, W) squared distance of each centred-spectrum position to the centre."""
    du = _centered_offsets(h)[:, None]
    dv = _centered_offsets(w)[None, :]
    return du * du + dv * dv


def _half_plane_d2(h: int, w: int) -> np.ndarray:
    """int64 (H, W // 2 + 1) squared distance to the centre of each ``rfft2`` position."""
    du = _unshifted_offsets(h)[:, None]
    dv = _unshifted_offsets(w)[: w // 2 + 1][None, :]
    return du * du + dv * dv


@lru_cache(maxsize=64)
def _centered_maps(h: int, w: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    d2 = _centered_d2(h, w)
    radius = torch.from_numpy(np.sqrt(d2.astype(np.float64))).to(device=device, dtype=dtype)
    bands = torch.from_numpy(floor_sqrt(d2)).to(device=device)
    return radius, bands


def radius_map(
    h: int, w: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """(H, W) distance of each centred-spectrum position to the centre ``(H // 2, W // 2)``.

    Maps are cached per (H, W, device, dtype); the returned tensor is a fresh copy.
    """
    h, w = check_size(h, w)
    return _centered_maps(h, w, str(torch.device(device or "cpu")), dtype)[0].clone()


def band_map(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """int64 (H, W) band ``floor(radius)`` of each centred-spectrum position; band 0 is DC only.

    Computed exactly in integer arithmetic (no float rounding at band edges); cached per (H, W, device).
    """
    h, w = check_size(h, w)
    return _centered_maps(h, w, str(torch.device(device or "cpu")), torch.float64)[1].clone()


@dataclass(frozen=True)
class BandLayout:
    """Where each half-plane (``rfft2``) coefficient of an H x W image sits in the centred spectrum.

    Shared and cached: read its tensors, never write to them.

    Attributes:
        height, width: image size (H, W).
        band: int64 (H * (W//2 + 1),) band ``floor(distance to the centre (H//2, W//2))`` of each
            rfft2 position, flattened row-major; the distance is measured in the fftshift-ed plane.
        multiplicity: (H * (W//2 + 1),) in the layout's dtype: how many full-plane positions each
            rfft2 position stands for (1 for column 0 and, for even W, column W/2; 2 otherwise).
        counts: (K + 1,) in the layout's dtype: number of full-plane positions in each band 0..K.
        num_bands: K + 1, the number of bands (band K is the outermost, the corner).
    """

    height: int
    width: int
    band: torch.Tensor
    multiplicity: torch.Tensor
    counts: torch.Tensor
    num_bands: int


@lru_cache(maxsize=64)
def _band_layout_cached(height: int, width: int, device: str, dtype: torch.dtype) -> BandLayout:
    # For a real image the columns rfft2 leaves out are complex conjugates of stored ones at the same
    # radius (the band map is symmetric under (u, v) -> (-u, -v)), so each stored column other than 0
    # and (for even W) W / 2 counts twice.
    half = width // 2 + 1
    band = floor_sqrt(_half_plane_d2(height, width))
    columns = np.arange(half)
    multiplicity = np.where((columns == 0) | (2 * columns == width), 1.0, 2.0)
    multiplicity = np.broadcast_to(multiplicity[None, :], (height, half))
    # Counts from the full centred plane, independently of the half-plane bookkeeping.
    counts = np.bincount(floor_sqrt(_centered_d2(height, width)).ravel())
    return BandLayout(
        height=height,
        width=width,
        band=torch.as_tensor(band.ravel(), device=device),
        multiplicity=torch.as_tensor(multiplicity.ravel().copy(), dtype=dtype, device=device),
        counts=torch.as_tensor(counts, dtype=dtype, device=device),
        num_bands=int(counts.size),
    )


def band_layout(
    height: int,
    width: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> BandLayout:
    """The cached :class:`BandLayout` of an H x W image on ``device`` (float fields in ``dtype``)."""
    height, width = check_size(height, width)
    return _band_layout_cached(height, width, str(torch.device(device)), dtype)


@lru_cache(maxsize=64)
def _half_plane_radius_cached(h: int, w: int, device: str) -> torch.Tensor:
    return torch.from_numpy(np.sqrt(_half_plane_d2(h, w).astype(np.float64)).ravel()).to(device)


def half_plane_radius(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """float64 (H * (W // 2 + 1),) distance to the centre of each rfft2 position.

    Flattened as :attr:`BandLayout.band` is; cached and shared: never write to it.
    """
    h, w = check_size(h, w)
    return _half_plane_radius_cached(h, w, str(torch.device(device)))
