"""Explaining a model in the frequency domain (paper §3.1, §3.2.2; docs/design.md).

* :func:`frequency_sensitivity` — the input gradient's Fourier coefficients ranked per image
  (Fig. 2): rank curve, radius densities at chosen ranks, HFC shares;
* :func:`loss_landscape` — loss surfaces around the weights on low- and high-frequency data along
  filter-normalised random directions (Fig. 1 and 4);
* :func:`fourier_heatmap` — error under single Fourier-basis perturbations (Yin et al. 2019).

Each takes an ``nn.Module`` and labelled data (``(images, labels)``, a dataset or a loader) and
returns a result object with ``to_dict()`` and ``save(path)``; figures live in
:mod:`freqtail.report.analysis_figures`. The same analyses of a trained run, written into its folder,
are :mod:`freqtail.runs`' ``explain_*`` functions.

The names below load their module on first use, so that the command line can read
:mod:`freqtail.analysis.constants` without importing torch.
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

_EXPORTS = {
    "DEFAULT_EPS": "constants",
    "DEFAULT_RANK_FRACTIONS": "constants",
    "DEFAULT_TOP_FRACTION": "constants",
    "SIGN_MODES": "constants",
    "HalfPlane": "fourier",
    "conjugate_half_plane": "fourier",
    "fourier_basis": "fourier",
    "HeatmapResult": "heatmap",
    "fourier_heatmap": "heatmap",
    "LandscapeResult": "landscape",
    "filter_normalized_direction": "landscape",
    "grid_coordinates": "landscape",
    "loss_landscape": "landscape",
    "SensitivityAccumulator": "sensitivity",
    "SensitivityResult": "sensitivity",
    "frequency_sensitivity": "sensitivity",
    "gradient_magnitudes": "sensitivity",
    "input_gradients": "sensitivity",
    "radius_density": "sensitivity",
}

__all__ = sorted(_EXPORTS)


# Lazy on purpose, although torch is no optional dependency: ``freqtail --help`` reads
# freqtail.analysis.constants, which runs this package first (tests/test_cli.py checks that the
# parser imports no torch).
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
