"""Datasets: the embedded default dataset, real datasets from ``--data-root``, BaSS variants and
the corruption suite. Everything that trains or evaluates gets its data from here, by name:

    >>> from freqtail.data import build_dataset
    >>> train = build_dataset("embedded", "train", augment=True)
"""

from __future__ import annotations

from freqtail.data.arrays import ArrayDataset
from freqtail.data.augment import (
    PAD_MODES,
    PRESETS,
    augmentation_preset,
    default_preset,
    preset_parts,
    standard_augmentation,
)
from freqtail.data.registry import (
    DatasetInfo,
    build_dataset,
    canonical_name,
    dataset_info,
    dataset_names,
    iter_uint8_batches,
)

__all__ = [
    "PAD_MODES",
    "PRESETS",
    "ArrayDataset",
    "DatasetInfo",
    "augmentation_preset",
    "build_dataset",
    "canonical_name",
    "dataset_info",
    "dataset_names",
    "default_preset",
    "iter_uint8_batches",
    "preset_parts",
    "standard_augmentation",
]
