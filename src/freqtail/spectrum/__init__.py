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
* :mod:`~freqtail.spectrum.ratio` — the 80/20 rule's ratio (no torch: the command line checks it first);
* :mod:`~freqtail.spectrum.boundary` — the 80/20 boundary;
* :mod:`~freqtail.spectrum.tail` — spectral entropy and the power-law fit;
* :mod:`~freqtail.spectrum.filters` — LFC / HFC images;
* :mod:`~freqtail.spectrum.summary` — the result records;
* :mod:`~freqtail.spectrum.statistics` — streamed dataset statistics.
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "as_float_images": "adapters",
    "band_map": "bands",
    "corner_radius": "bands",
    "full_ring_max_band": "bands",
    "inscribed_max_band": "bands",
    "num_bands": "bands",
    "nyquist_radius": "bands",
    "radius_map": "bands",
    "DEFAULT_RATIO": "ratio",
    "boundary_fractions": "boundary",
    "check_ratio": "ratio",
    "lfc_boundary": "boundary",
    "truncate_proportions": "boundary",
    "high_pass": "filters",
    "low_pass": "filters",
    "split_frequencies": "filters",
    "SIGNAL_RTOL": "power",
    "band_power": "power",
    "band_proportions": "power",
    "centered_spectrum": "power",
    "has_signal": "power",
    "INSCRIBED_MIN_SHARE": "statistics",
    "SpectrumAccumulator": "statistics",
    "summarize": "statistics",
    "BoundaryDistribution": "summary",
    "SpectrumSummary": "summary",
    "SpectralEntropy": "tail",
    "fit_power_law": "tail",
    "spectral_entropy": "tail",
}

# SIGNAL_RTOL and INSCRIBED_MIN_SHARE stay importable from here, outside __all__.
__all__ = sorted(set(_EXPORTS) - {"SIGNAL_RTOL", "INSCRIBED_MIN_SHARE"})


# Lazy (PEP 562): the command line checks --ratio with freqtail.spectrum.ratio before torch is
# imported, and importing it runs this package first.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
