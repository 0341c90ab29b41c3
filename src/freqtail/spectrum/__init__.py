"""The frequency long tail of images (paper §2, Eq. 1-2, §3.3; docs/design.md "Conventions").

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

Modules, one job each:

* :mod:`~freqtail.spectrum.adapters` — images and band vectors in and out;
* :mod:`~freqtail.spectrum.bands` — band geometry (radius, band maps, the rfft2 half-plane layout),
  shared with BaSS;
* :mod:`~freqtail.spectrum.power` — spectra, band power, proportions;
* :mod:`~freqtail.spectrum.boundary` — the 80/20 boundary;
* :mod:`~freqtail.spectrum.tail` — spectral entropy and the power-law fit;
* :mod:`~freqtail.spectrum.filters` — LFC / HFC images;
* :mod:`~freqtail.spectrum.summary` — the result records;
* :mod:`~freqtail.spectrum.statistics` — streamed dataset statistics.
"""

from __future__ import annotations

from freqtail.spectrum.adapters import as_float_images
from freqtail.spectrum.bands import (
    band_map,
    corner_radius,
    full_ring_max_band,
    inscribed_max_band,
    num_bands,
    nyquist_radius,
    radius_map,
)
from freqtail.spectrum.boundary import (
    DEFAULT_RATIO,
    boundary_fractions,
    check_ratio,
    lfc_boundary,
    truncate_proportions,
)
from freqtail.spectrum.filters import high_pass, low_pass, split_frequencies
from freqtail.spectrum.power import SIGNAL_RTOL as SIGNAL_RTOL
from freqtail.spectrum.power import band_power, band_proportions, centered_spectrum, has_signal
from freqtail.spectrum.statistics import INSCRIBED_MIN_SHARE as INSCRIBED_MIN_SHARE
from freqtail.spectrum.statistics import SpectrumAccumulator, summarize
from freqtail.spectrum.summary import BoundaryDistribution, SpectrumSummary
from freqtail.spectrum.tail import SpectralEntropy, fit_power_law, spectral_entropy

# SIGNAL_RTOL and INSCRIBED_MIN_SHARE stay importable from here (``X as X``), outside __all__.
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
