"""Defaults of the explanations and the checks of their options, importable without torch (the
command line reads them for ``--help`` and checks the options with them before torch is imported).
"""

from __future__ import annotations

from typing import Any

from freqtail.checks import check_int, check_number

#: Rank positions shown in Fig. 2's second row, as fractions of the rank axis (0 = largest |c|).
DEFAULT_RANK_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: How Fig. 2's coefficients are ranked: by the definition (one coefficient per conjugate pair, exact
#: radii, positions round(f (M - 1))) or as the authors' published notebook computes it (32x32 only;
#: :mod:`freqtail.analysis.sensitivity_ranking`).
RANKINGS = ("definition", "published-notebook")
DEFAULT_RANKING = "definition"
#: Share of coefficients (largest magnitudes first) whose HFC share is reported.
DEFAULT_TOP_FRACTION = 0.1
#: Yin et al.'s Fourier heat-map perturbation norm for CIFAR-10 (L2, per channel, [0, 1] scale).
DEFAULT_EPS = 4.0
#: Heat-map sign modes: one random sign per channel (Yin et al. perturb "each channel independently",
#: as the widely used FourierHeatmap code does), or one shared by the image's channels.
SIGN_MODES = ("channel", "image")
#: The default sign mode, as Yin et al. define the heat map.
DEFAULT_SIGN = "channel"
#: Test images and batch size each analysis of a run takes by default (``freqtail sensitivity`` etc.).
SENSITIVITY_IMAGES, SENSITIVITY_BATCH = 1000, 128
LANDSCAPE_IMAGES, LANDSCAPE_BATCH = 500, 256
HEATMAP_IMAGES, HEATMAP_BATCH = 100, 512
#: Landscape grid points per axis and half-width of the grid ([-span, span]^2).
LANDSCAPE_GRID, LANDSCAPE_SPAN = 21, 1.0


def check_top_fraction(value: float) -> float:
    """The share of the largest-sensitivity coefficients counted, a number in (0, 1]."""
    return check_number(value, "The top fraction", minimum=0, maximum=1, open_min=True)


def check_grid(grid: Any) -> int:
    """The number of landscape grid points per axis, a positive integer."""
    return check_int(grid, "The landscape grid (points per axis)", minimum=1)


def check_span(span: Any) -> float:
    """The half-width of the landscape grid, a positive number: the grid covers [-span, span]^2."""
    return check_number(span, "The landscape span", minimum=0, open_min=True)


def check_heatmap_eps(eps: Any) -> float:
    """The L2 norm of each Fourier-basis perturbation of the heat map, a non-negative number."""
    return check_number(eps, "The perturbation norm eps", minimum=0)
