"""The trainer's data: datasets from :func:`freqtail.data.build_dataset`, fixed subsets, AugMix
branches, per-sample seeding and the epoch sampler.

Reproducibility contract (what makes ``--resume`` bit-exact and N processes equal to one):

* the training order of epoch ``e`` is a permutation drawn from ``(seed, e)`` by a
  ``DistributedSampler`` (rank ``r`` of ``W`` takes positions ``r, r + W, ...``);
* the sampler yields ``(epoch, index)`` keys, and :class:`SeededItems` draws the augmentation of
  sample ``index`` in epoch ``e`` from torch's RNG seeded with ``(seed, e, index)``, saving and
  restoring the RNG around it — independent of workers, processes and batches;
* each item also carries a per-sample seed for the attack's random start;
* with ``data_pipeline: device`` the same ``(epoch, index)`` keys feed
  :class:`freqtail.train.device_data.DeviceTrainData`, which makes whole batches on the training
  device with its own counter-based per-sample draws (and the same attack-start seeds).

Model selection on held-out images (``selection: val``): :func:`held_out_indices` picks
``val_subset`` training images, seeded and class-stratified in proportion to the classes
(:func:`freqtail.data.subsets.proportional_subset`); :func:`build_train_data` trains on the
others and :func:`build_val_data` serves the held-out ones with the test transform.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Subset

from freqtail.data import build_dataset, dataset_info
from freqtail.data.loader_workers import loader_workers
from freqtail.data.subsets import dataset_labels, proportional_subset
from freqtail.errors import ConfigError
from freqtail.train.augmix import AugMixDataset
from freqtail.train.rng import derive_seed, derive_seeds


def take(dataset: Dataset, indices: Sequence[int]) -> Subset:
    """``Subset(dataset, indices)`` that keeps ``classes``, ``num_classes``, ``image_size`` and ``name``."""
    subset = Subset(dataset, list(indices))
    for attribute in ("classes", "num_classes", "image_size", "name"):
        if hasattr(dataset, attribute):
            setattr(subset, attribute, getattr(dataset, attribute))
    return subset


def fixed_subset(dataset: Dataset, size: int | None, seed: int, stream_key: int) -> Dataset:
    """A fixed random subset of ``size`` items (sorted indices; the same for every epoch), or ``dataset``."""
    if size is None or size >= len(dataset):
        return dataset
    generator = torch.Generator().manual_seed(derive_seed(seed, "subset", stream_key))
    indices = torch.randperm(len(dataset), generator=generator)[:size].sort().values.tolist()
    return take(dataset, indices)


def _labels(dataset: Dataset) -> np.ndarray:
    """int (N,) labels of a training dataset: read without decoding images where the dataset keeps
    them (:func:`freqtail.data.subsets.dataset_labels`), else item by item."""
    labels = dataset_labels(dataset)
    if labels is None:
        labels = np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)
    return labels


def held_out_indices(config, labels: Sequence[int]) -> list[int] | None:
    """Indices of the training images held out for ``selection: val`` (None for ``selection: test``).

    Raises:
        ConfigError: ``val_subset`` leaves no training image.
    """
    if config.selection != "val":
        return None
    if config.val_subset >= len(labels):
        raise ConfigError(
            f"val_subset {config.val_subset} must be smaller than the {len(labels)} training images of "
            f"{config.dataset}, so that some are left to train on."
        )
    return proportional_subset(labels, config.val_subset, derive_seed(config.seed, "val", 0))


class BaSSMixture(Dataset):
    """BaSS as augmentation with probability ``gamma``, drawn from a once-converted copy of the data.

    Item ``i`` is ``converted[i]`` with probability ``gamma`` (one draw from torch's RNG, as
    :class:`freqtail.bass.BaSS` makes), else ``original[i]``; both datasets apply the same transform,
    so the crop and flip that follow are drawn the same way. Equal, image for image, to
    ``build_dataset(..., bass="augment", gamma=gamma)`` under the same RNG state — but the BaSS
    images were computed once in batches (:mod:`freqtail.data.variants`' cache) instead of one at
    a time in every epoch (about 470 us per 32x32 image on one CPU thread).
    """

    def __init__(self, original: Dataset, converted: Dataset, gamma: float) -> None:
        if len(original) != len(converted):
            raise ValueError("the original and converted datasets differ in length")
        self.original, self.converted, self.gamma = original, converted, float(gamma)
        for attribute in ("classes", "num_classes", "image_size", "name"):
            if hasattr(original, attribute):
                setattr(self, attribute, getattr(original, attribute))

    def __len__(self) -> int:
        return len(self.original)

    @property
    def targets(self) -> np.ndarray | None:
        """The labels (the original's; BaSS does not change them)."""
        return dataset_labels(self.original)

    def __getitem__(self, index: int):
        use_bass = bool(torch.rand(1) < self.gamma)
        return (self.converted if use_bass else self.original)[index]


class SeededItems(Dataset):
    """Wraps a dataset so item ``(epoch, index)`` is ``(inputs, label, noise_seed)``, reproducibly.

    The base item is computed with torch's global CPU RNG seeded from ``(seed, epoch, index)``; the
    caller's RNG state is restored afterwards. A plain integer key means epoch 0.
    """

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base = base
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample_seed, noise_seed = derive_seeds(self.seed, "sample", epoch, index, count=2)
        state = torch.get_rng_state()
        torch.default_generator.manual_seed(sample_seed)
        try:
            inputs, label = self.base[index]
        finally:
            torch.set_rng_state(state)
        return inputs, label, noise_seed


class EpochSampler(DistributedSampler):
    """A ``DistributedSampler`` that yields ``(epoch, index)`` keys and can skip a resumed epoch's start.

    ``set_epoch(epoch, skip)`` selects the epoch's permutation and drops its first ``skip`` indices
    of this rank (the batches already trained before an interruption).
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, drop_last: bool) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=derive_seed(seed, "sampler"),
            drop_last=drop_last,
        )
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, index) for index in indices])

    def __len__(self) -> int:
        return max(self.num_samples - self.skip, 0)


def _seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and ``random`` from the worker's torch seed, and
    ignore Ctrl-C (the training process handles it and shuts the workers down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - third-party code may use the legacy global state
    random.seed(seed)


def _train_split(config, bass: str | None, augment: bool):
    return build_dataset(
        config.dataset,
        "train",
        config.data_root,
        bass=bass,
        gamma=config.gamma if bass == "augment" else 1.0,
        strength=config.bass_strength,
        augment=augment,
        augmentation=config.augmentation,
        pad_mode=config.pad_mode,
    )


def build_train_data(config):
    """The training dataset (before seeding): build_dataset, minus held-out images, subset, AugMix.

    ``bass="augment"`` on in-memory datasets (embedded, CIFAR) uses :class:`BaSSMixture` (the same
    images as the on-the-fly transform, converted once); folder datasets convert on the fly. The
    AugMix BaSS branch takes its images from the BaSS-converted twin of the training split
    (``bass="dataset"``), with the same held-out images and subset removed.
    """
    if config.bass == "augment" and dataset_info(config.dataset).kind == "array":
        original = _train_split(config, None, config.augment)
        base = BaSSMixture(original, _train_split(config, "dataset", config.augment), config.gamma)
    else:
        base = _train_split(config, config.bass, config.augment)
    twin = _train_split(config, "dataset", config.augment) if config.uses_bass_branch else None
    held_out = held_out_indices(config, _labels(base)) if config.selection == "val" else None

    def restrict(dataset: Dataset) -> Dataset:
        if held_out is not None:
            dropped = set(held_out)
            dataset = take(dataset, [i for i in range(len(dataset)) if i not in dropped])
        return fixed_subset(dataset, config.train_subset, config.seed, 0)

    base = restrict(base)
    if config.objective_name == "augmix":
        base = AugMixDataset(
            base,
            width=config.augmix_width,
            depth=config.augmix_depth,
            severity=config.augmix_severity,
            alpha=config.augmix_alpha,
            bass_base=restrict(twin) if twin is not None else None,
        )
    return base


def build_val_data(config):
    """The held-out training images of ``selection: val`` with the test transform, or None.

    No augmentation; BaSS-converted when ``bass == "dataset"`` (the images the model trains on),
    original otherwise (like the test split).
    """
    if config.selection != "val":
        return None
    plain = _train_split(config, "dataset" if config.bass == "dataset" else None, augment=False)
    return take(plain, held_out_indices(config, _labels(plain)))


def build_test_data(config):
    """The test dataset: original, or BaSS-converted when ``bass == "dataset"`` (the domain protocol)."""
    bass = "dataset" if config.bass == "dataset" else None
    test = build_dataset(
        config.dataset,
        "test",
        config.data_root,
        bass=bass,
        strength=config.bass_strength,
        augmentation=config.augmentation,
    )
    return fixed_subset(test, config.test_subset, config.seed, 1)


def train_loader(dataset: Dataset, sampler: EpochSampler, per_rank_batch: int, config, pin_memory: bool):
    """The DataLoader of the seeded training items (persistent workers when ``num_workers > 0``)."""
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "loader"))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=loader_workers(config.num_workers),
        drop_last=config.drop_last,
        pin_memory=pin_memory,
        persistent_workers=config.num_workers > 0,
        worker_init_fn=_seed_worker,
        generator=generator,
    )
