"""Datasets: the embedded default dataset, real datasets from ``--data-root``, BaSS variants and
the corruption suite. Everything that trains or evaluates gets its data from here, by name."""

from __future__ import annotations

from freqtail.data.arrays import ArrayDataset

__all__ = ["ArrayDataset"]
