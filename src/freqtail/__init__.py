"""freqtail: the frequency long-tailed view of visual robustness as a PyTorch toolkit.

Lin, Gao, Yang, Sang, "Revisiting Visual Model Robustness: A Frequency Long-Tailed Distribution
View", NeurIPS 2023.
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

__version__ = "0.1.0"

# Public names re-exported lazily, so that ``import freqtail`` stays light (no torch until used):
# the command line imports this package at start-up (tests/test_bass.py checks it). Maps
# attribute -> module that defines it.
_LAZY_EXPORTS = {
    "balance_spectrum": "freqtail.bass",
    "BaSS": "freqtail.bass",
    "BaSSModule": "freqtail.bass",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_EXPORTS)
