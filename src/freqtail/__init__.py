"""freqtail: the frequency long-tailed view of visual robustness as a PyTorch toolkit.

Lin, Gao, Yang, Sang, "Revisiting Visual Model Robustness: A Frequency Long-Tailed Distribution
View", NeurIPS 2023.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public names re-exported lazily, so that ``import freqtail`` stays light (no torch until used):
# the command line imports this package at start-up (tests/test_bass.py checks it). Maps
# attribute -> module that defines it.
_LAZY_EXPORTS = {
    "balance_spectrum": "freqtail.bass",
    "BaSS": "freqtail.bass",
    "BaSSModule": "freqtail.bass",
}


def __getattr__(name: str):
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'freqtail' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
