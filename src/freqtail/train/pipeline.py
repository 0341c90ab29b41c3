"""Which data pipeline a run trains with: the DataLoader (``loader``) or the on-device one (``device``).

``data_pipeline`` (a config key) is ``auto``, ``device`` or ``loader``:

* ``loader``: every item is made by the dataset in a ``DataLoader`` (torchvision's random crop and
  flip, AugMix, ...), seeded per sample by :class:`freqtail.train.data.SeededItems`.
* ``device``: the uint8 training images stay on the training device and each batch is cropped,
  flipped and BaSS-mixed there in a few batched torch operations
  (:mod:`freqtail.train.device_data`). It supports in-memory (array) datasets, the ``crop-flip`` and
  ``none`` presets, the ``erm``, ``pgd-at``, ``trades`` and ``mart`` objectives and every ``bass``
  mode (null, dataset, augment).
* ``auto``: ``device`` where it supports the configuration, else ``loader``.

The two pipelines draw different random crops and flips (the same distribution), so a run's
numbers depend on which one it uses; ``data_pipeline: loader`` gives the behaviour of freqtail
before the device pipeline existed.
"""

from __future__ import annotations

from freqtail.data.catalog import dataset_info
from freqtail.errors import ConfigError

#: Augmentation presets the device pipeline implements.
DEVICE_PRESETS = ("crop-flip", "none")
#: Objectives the device pipeline feeds (AugMix's per-image operations stay in the loader).
DEVICE_OBJECTIVES = ("erm", "pgd-at", "trades", "mart")


def device_pipeline_obstacle(config) -> str | None:
    """Why the device pipeline cannot train ``config`` (a clause), or None when it can.

    ``config`` is a :class:`freqtail.train.config.TrainConfig` (only its data keys and objective are
    read).
    """
    info = dataset_info(config.dataset)
    if info.kind != "array":
        return (
            f"{info.name} is read from image files and the device pipeline needs an in-memory dataset "
            "(embedded, cifar10, cifar100)"
        )
    preset = config.augmentation or info.preset
    if preset not in DEVICE_PRESETS:
        return (
            f"the device pipeline does the crop-flip and none augmentation presets, not {preset} "
            "(its per-image operations stay in the loader)"
        )
    if config.objective_name not in DEVICE_OBJECTIVES:
        supported = f"{', '.join(DEVICE_OBJECTIVES[:-1])} and {DEVICE_OBJECTIVES[-1]}"
        return (
            f"the device pipeline feeds the {supported} objectives, not {config.objective} "
            "(its per-image AugMix operations stay in the loader)"
        )
    return None


def resolve_data_pipeline(config) -> str:
    """``"device"`` or ``"loader"``: the pipeline ``config`` trains with (``auto`` resolved).

    Raises:
        ConfigError: ``data_pipeline: device`` for a configuration it does not support (one
            sentence naming why).
    """
    choice = config.data_pipeline
    if choice == "loader":
        return "loader"
    obstacle = device_pipeline_obstacle(config)
    if obstacle is None:
        return "device"
    if choice == "device":
        raise ConfigError(f"data_pipeline: device cannot train this run: {obstacle}; use loader or auto.")
    return "loader"
