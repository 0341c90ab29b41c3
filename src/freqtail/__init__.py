"""freqtail: the frequency long-tailed view of visual robustness as a PyTorch toolkit.

Lin, Gao, Yang, Sang, "Revisiting Visual Model Robustness: A Frequency Long-Tailed Distribution
View", NeurIPS 2023.
"""

from __future__ import annotations

__version__ = "0.1.0"
