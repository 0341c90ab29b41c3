"""Datasets: the embedded default dataset, real datasets from ``--data-root``, BaSS variants and
the corruption suite. Everything that trains or evaluates gets its data from here, by name:

    >>> from freqtail.data import build_dataset
    >>> train = build_dataset("embedded", "train", augment=True)
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "ArrayDataset": "arrays",
    "PAD_MODES": "augment",
    "PRESETS": "augment",
    "augmentation_preset": "augment",
    "default_preset": "augment",
    "preset_parts": "augment",
    "standard_augmentation": "augment",
    "DatasetInfo": "catalog",
    "build_dataset": "registry",
    "canonical_name": "catalog",
    "dataset_info": "catalog",
    "dataset_names": "catalog",
    "iter_uint8_batches": "registry",
}

__all__ = sorted(_EXPORTS)


# Lazy (PEP 562): the command line checks corruption names and severities with
# freqtail.data.corruptions.names before torch is imported, and importing it runs this package first.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
