"""Defaults of the explanations, importable without torch (the command line reads them for ``--help``)."""

from __future__ import annotations

#: Rank positions shown in Fig. 2's second row, as fractions of the rank axis (0 = largest |c|).
DEFAULT_RANK_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Share of coefficients (largest magnitudes first) whose HFC share is reported.
DEFAULT_TOP_FRACTION = 0.1
#: Yin et al.'s Fourier heat-map perturbation norm for CIFAR-10 (L2, per channel, [0, 1] scale).
DEFAULT_EPS = 4.0
#: Heat-map sign modes: one random sign per image (and frequency), or one per channel.
SIGN_MODES = ("image", "channel")
