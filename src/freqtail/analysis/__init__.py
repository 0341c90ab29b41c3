"""Explaining a model in the frequency domain (paper §3.1, §3.2.2; DESIGN.md "explain").

* :func:`frequency_sensitivity` — the input gradient's Fourier coefficients ranked per image
  (Fig. 2): rank curve, radius densities at chosen ranks, HFC shares;
* :func:`loss_landscape` — loss surfaces around the weights on low- and high-frequency data along
  filter-normalised random directions (Fig. 1 and 4);
* :func:`fourier_heatmap` — error under single Fourier-basis perturbations (Yin et al. 2019).

Each takes an ``nn.Module`` and labelled data (``(images, labels)``, a dataset or a loader) and
returns a result object with ``to_dict()`` and ``save(path)``; figures live in
:mod:`freqtail.report.analysis_figures`.
"""

from __future__ import annotations

from freqtail.analysis.fourier import HalfPlane, conjugate_half_plane, fourier_basis
from freqtail.analysis.heatmap import DEFAULT_EPS, HeatmapResult, fourier_heatmap
from freqtail.analysis.landscape import (
    LandscapeResult,
    filter_normalized_direction,
    grid_coordinates,
    loss_landscape,
)
from freqtail.analysis.sensitivity import (
    DEFAULT_RANK_FRACTIONS,
    DEFAULT_TOP_FRACTION,
    SensitivityAccumulator,
    SensitivityResult,
    frequency_sensitivity,
    gradient_magnitudes,
    input_gradients,
    radius_density,
)

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_RANK_FRACTIONS",
    "DEFAULT_TOP_FRACTION",
    "HalfPlane",
    "HeatmapResult",
    "LandscapeResult",
    "SensitivityAccumulator",
    "SensitivityResult",
    "conjugate_half_plane",
    "filter_normalized_direction",
    "fourier_basis",
    "fourier_heatmap",
    "frequency_sensitivity",
    "gradient_magnitudes",
    "grid_coordinates",
    "input_gradients",
    "loss_landscape",
    "radius_density",
]
