"""The half plane of a real image's centred spectrum, and real Fourier basis images.

The DFT of a real (H, W) image is conjugate-symmetric: ``X[-u, -v] = conj(X[u, v])`` (indices modulo
H and W). The coefficients therefore come in conjugate pairs with equal magnitude and radius, plus a
few self-conjugate ones. :func:`conjugate_half_plane` keeps **one coefficient of every conjugate
class**, in centred offsets ``(du, dv)`` with ``du = -(H // 2) .. (H - 1) // 2`` (likewise dv) and DC
at ``(0, 0)`` (position ``(H // 2, W // 2)`` of ``fftshift(fft2(x))``):

* every column ``dv = 1 .. (W - 1) // 2``, all rows;
* column ``dv = 0``: rows ``du = 0 .. (H - 1) // 2``, and for even H also the Nyquist row
  ``du = -H / 2``;
* for even W, the Nyquist column ``dv = -W / 2``: the same rows as column 0.

The self-conjugate coefficients (``du`` in {0, -H/2} and ``dv`` in {0, -W/2}, the Nyquist values only
for even sizes) stand for themselves (multiplicity 1); every other kept coefficient also stands for
its conjugate (multiplicity 2). The multiplicities add up to ``H * W``, so energies summed with them
equal full-plane energies (Parseval).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from freqtail.errors import InputError
from freqtail.spectrum import band_map, num_bands, radius_map


@dataclass(frozen=True)
class HalfPlane:
    """One coefficient per conjugate class of an (H, W) centred spectrum; M = number of classes.

    Attributes (numpy, read-only, each of shape (M,)):
        du, dv: int64 centred frequency offsets (rows, columns).
        index: int64 flat index ``(du + H // 2) * W + (dv + W // 2)`` into the centred (H, W) grid.
        conjugate_index: flat index of the conjugate ``(-du, -dv)`` (equal to ``index`` if self-conjugate).
        radius: float64 distance to DC (``freqtail.spectrum.radius_map``).
        band: int64 band ``floor(radius)`` (``freqtail.spectrum.band_map``).
        multiplicity: float64, 1 (self-conjugate) or 2.
    """

    height: int
    width: int
    du: np.ndarray
    dv: np.ndarray
    index: np.ndarray
    conjugate_index: np.ndarray
    radius: np.ndarray
    band: np.ndarray
    multiplicity: np.ndarray

    @property
    def size(self) -> int:
        """M, the number of conjugate classes."""
        return int(self.index.size)

    @property
    def num_bands(self) -> int:
        """K + 1 bands of the full spectrum (``freqtail.spectrum.num_bands``)."""
        return num_bands(self.height, self.width)


def _wrap(offset: np.ndarray, n: int) -> np.ndarray:
    """Map signed offsets into the centred range ``-(n // 2) .. (n - 1) // 2`` (modulo n)."""
    return (offset + n // 2) % n - n // 2


@lru_cache(maxsize=32)
def conjugate_half_plane(h: int, w: int) -> HalfPlane:
    """The kept coefficients of an (H, W) real image's centred spectrum (see the module docstring)."""
    if int(h) < 1 or int(w) < 1:
        raise InputError(f"Image size must be at least 1x1 pixels, not {h}x{w}.")
    h, w = int(h), int(w)
    rows = np.arange(h, dtype=np.int64) - h // 2
    cols = np.arange(w, dtype=np.int64) - w // 2
    du, dv = np.meshgrid(rows, cols, indexing="ij")
    du, dv = du.ravel(), dv.ravel()
    edge_rows = (du >= 0) & (du <= (h - 1) // 2)
    if h % 2 == 0:
        edge_rows |= du == -(h // 2)
    self_columns = dv == 0
    if w % 2 == 0:
        self_columns |= dv == -(w // 2)
    keep = ((dv >= 1) & (dv <= (w - 1) // 2)) | (self_columns & edge_rows)
    du, dv = du[keep], dv[keep]
    index = (du + h // 2) * w + (dv + w // 2)
    cu, cv = _wrap(-du, h), _wrap(-dv, w)
    conjugate_index = (cu + h // 2) * w + (cv + w // 2)
    radius = radius_map(h, w).numpy().ravel()[index]
    band = band_map(h, w).numpy().ravel()[index]
    multiplicity = np.where(conjugate_index == index, 1.0, 2.0)
    arrays = [du, dv, index, conjugate_index, radius, band, multiplicity]
    for array in arrays:
        array.setflags(write=False)
    return HalfPlane(h, w, *arrays)


def fourier_basis(
    h: int, w: int, du: np.ndarray, dv: np.ndarray, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Real unit-L2-norm Fourier basis images, float (M, H, W), for centred offsets ``du, dv`` (M,).

    ``U[m, n] = cos(2 pi (du m / H + dv n / W)) / norm``: its DFT is non-zero only at ``(du, dv)`` and
    the conjugate ``(-du, -dv)`` (one position for a self-conjugate frequency; DC gives a constant
    image). ``U`` never vanishes at the origin, so the norm is positive.
    """
    du = torch.tensor(np.asarray(du), dtype=torch.float64).reshape(-1, 1, 1)
    dv = torch.tensor(np.asarray(dv), dtype=torch.float64).reshape(-1, 1, 1)
    m = torch.arange(h, dtype=torch.float64).reshape(1, -1, 1)
    n = torch.arange(w, dtype=torch.float64).reshape(1, 1, -1)
    basis = torch.cos(2 * torch.pi * (du * m / h + dv * n / w))
    basis = basis / basis.flatten(1).norm(dim=1).reshape(-1, 1, 1)
    return basis.to(dtype)
