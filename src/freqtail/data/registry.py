"""The one entry point to every dataset: :func:`build_dataset`, :func:`dataset_info`,
:func:`iter_uint8_batches`.

Items are ``(float32 (C, H, W) in [0, 1], int label)``; datasets carry ``classes``, ``num_classes``,
``image_size`` (H, W) and ``name``. The pipeline of one item (:mod:`freqtail.data.augment`)::

    stored image (uint8) -> working resize (folder datasets; PIL bilinear, deterministic)
        -> [BaSS "dataset" variant: the converted working-resolution image, cached]
        -> [BaSS(p=gamma): train split, bass="augment"]
        -> rest of the augmentation preset (train split with augment=True: random; else deterministic)
        -> float32 in [0, 1]

Array datasets (embedded, CIFAR) are stored at their working resolution, so their resize is the
identity and costs nothing. Normalisation is not done here: it is inside the model
(:class:`freqtail.models.wrappers.FreqtailModel`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torchvision.transforms import v2

import freqtail.data.folders as folders
from freqtail.bass.core import check_strength
from freqtail.bass.modules import BaSS
from freqtail.checks import check_fraction, check_int
from freqtail.data.arrays import ArrayDataset
from freqtail.data.augment import check_preset, preset_parts
from freqtail.data.catalog import (
    BASS_MODES,
    DATASETS,
    IMAGENET_LIKE,
    canonical_name,
)
from freqtail.data.cifar import load_cifar
from freqtail.data.embedded import ensure_embedded, read_embedded_folder
from freqtail.data.loader_workers import loader_workers
from freqtail.data.variants import FileVariantCache, cached_bass_arrays
from freqtail.errors import ConfigError
from freqtail.images import float_to_uint8


def _split(name: str, split: str) -> str:
    if split in ("train", "test"):
        return split
    if split == "val" and name in IMAGENET_LIKE:
        return "test"
    valid = "'train', 'test' or 'val'" if name in IMAGENET_LIKE else "'train' or 'test'"
    raise ConfigError(f"Unknown split {split!r} for dataset {name}; use {valid}.")


def _check_bass(bass: str | None, gamma: float) -> str | None:
    if bass in (None, "none"):
        return None
    if bass not in BASS_MODES:
        raise ConfigError(f"Unknown BaSS mode {bass!r}; use None, 'dataset' or 'augment'.")
    check_fraction(gamma, "The BaSS mixing ratio gamma", error=ConfigError)
    return bass


class ImageArrayDataset(ArrayDataset):
    """:class:`ArrayDataset` with the ``image_size`` attribute every freqtail dataset carries."""

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.images.shape[1]), int(self.images.shape[2]))


def load_arrays(name: str, split: str, root: str | os.PathLike | None = None, download: bool = False):
    """Stored images of an array dataset: ``(uint8 (N, H, W, 3), int64 (N,), classes)``."""
    if name == "embedded":
        return read_embedded_folder(root if root is not None else ensure_embedded(), split)
    return load_cifar(name, split, root, download=download)


def _array_images(name: str, split: str, root, bass: str | None, strength: float, download: bool):
    images, labels, classes = load_arrays(name, split, root, download)
    if bass == "dataset":
        other = "test" if split == "train" else "train"
        sources = {split: images, other: load_arrays(name, other, root)[0]}
        converted, _ = cached_bass_arrays(name, sources, strength=strength)
        images = converted[split]
    return images, labels, classes


def _folder_samples(name: str, split: str, root, download: bool):
    if name == "tiny-imagenet":
        samples, classes, _ = folders.tiny_imagenet_samples(root, split, download=download)
    elif name == "imagenet":
        if download:
            raise ConfigError(f"{folders.IMAGENET_HOW_TO}.")
        samples, classes, _ = folders.imagenet_samples(root, split)
    else:
        if download:
            raise ConfigError(f"{folders.IMAGENET_HOW_TO}.")
        samples, classes = folders.restricted_imagenet_samples(root, split)
    return samples, classes


def build_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    *,
    bass: str | None = None,
    gamma: float = 1.0,
    strength: float = 1.0,
    augment: bool = False,
    augmentation: str | None = None,
    pad_mode: str = "zeros",
    download: bool = False,
):
    """Build a dataset by name: a ``torch.utils.data.Dataset`` of ``(float32 (C, H, W) in [0, 1], int)``.

    Args:
        name: one of :func:`dataset_names` (case, '-' and '_' ignored).
        split: "train" or "test" ("val" is accepted for Tiny-ImageNet, ImageNet, Restricted-ImageNet).
        root: data folder (``--data-root``); None for the embedded set (or a folder written by
            :func:`freqtail.data.bass_copies.write_bass_dataset` for it). Never downloads unless ``download``.
        bass: None (original data), "dataset" (train and test converted once with BaSS at the working
            resolution and cached, the paper's "new dataset" protocol) or "augment" (BaSS with
            probability ``gamma`` on the fly on the train split, at the working resolution, before the
            rest of the augmentation; the test split stays original).
        gamma: BaSS probability in [0, 1] for ``bass="augment"``.
        strength: BaSS weight exponent in [0, 1] (1 = published).
        augment: apply the augmentation preset's train part to the train split (else its test part).
        augmentation: preset name (:data:`freqtail.data.augment.PRESETS`); None = the dataset's default
            (:attr:`DatasetInfo.preset`); "none" = the default preset's deterministic test part on both
            splits. Array datasets take only presets whose working resize keeps their stored size
            (not ``resized-crop-flip``).
        pad_mode: padding of ``crop-flip``'s random crop, "zeros" or "reflect"
            (:data:`freqtail.data.augment.PAD_MODES`).
        download: fetch CIFAR / Tiny-ImageNet with torchvision's downloader if missing.

    Returns:
        a dataset with attributes ``classes``, ``num_classes``, ``image_size`` (H, W) and ``name``.

    Raises:
        ConfigError: unknown name, split, BaSS mode, preset, pad mode or value.
        DatasetNotFoundError: missing or damaged data (one sentence: what, where, how to get it).

    Example:
        >>> train = build_dataset("embedded", "train", augment=True)
        >>> image, label = train[0]
        >>> image.shape, train.num_classes
        (torch.Size([3, 32, 32]), 16)
    """
    name = canonical_name(name)
    split = _split(name, split)
    bass = _check_bass(bass, gamma)
    strength = check_strength(strength, error=ConfigError)
    info = DATASETS[name]
    preset = info.preset if augmentation is None else check_preset(augmentation)
    if preset == "none":  # no randomness, at the dataset's own working resolution
        preset, augment = info.preset, False
    train = split == "train"
    resize, rest = preset_parts(preset, info.image_size, train=train and augment, pad_mode=pad_mode)
    steps = []
    if bass == "augment" and train:
        steps.append(BaSS(p=float(gamma), strength=strength))
    steps.append(rest)
    transform = v2.Compose(steps)

    if info.kind == "array":
        if resize.output_size(*info.image_size) != info.image_size:
            raise ConfigError(
                f"The {preset} preset resizes images before BaSS and cropping; the {name} images are "
                f"stored at {info.image_size[0]}x{info.image_size[1]}, so use crop-flip, "
                "flip-jitter-lighting or none."
            )
        images, labels, classes = _array_images(name, split, root, bass, strength, download)
        if images.shape[1:3] != info.image_size:
            raise ConfigError(
                f"The {name} images have size {images.shape[1]}x{images.shape[2]}, not "
                f"{info.image_size[0]}x{info.image_size[1]}."
            )
        return ImageArrayDataset(images, labels, classes, transform=transform, name=name)

    samples, classes = _folder_samples(name, split, root, download)
    hook = None
    if bass == "dataset":
        hook = FileVariantCache(name, strength, resize.key)
    return folders.FolderImageDataset(
        samples, classes, transform, info.image_size, name, source_hook=hook, resize=resize
    )


def iter_uint8_batches(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    batch_size: int = 512,
    bass: str | None = None,
    num_workers: int = 0,
) -> Iterator[np.ndarray]:
    """Stream a dataset as uint8 (N, H, W, C) batches, without augmentation (for spectrum statistics).

    Array datasets yield slices of the stored arrays; folder datasets yield their test-transform
    items (the default preset's working resize, [BaSS], then its deterministic rest: Tiny-ImageNet
    64 x 64, ImageNet ``Resize(256)`` + ``CenterCrop(224)``, Restricted-ImageNet ``Resize((128, 128))``),
    so with ``bass="dataset"`` they are exactly the images a BaSS model is trained and tested on;
    decoded by ``num_workers`` DataLoader workers. ``bass`` is None or "dataset" ("augment" is random
    and has no place in statistics).
    """
    batch_size = check_int(batch_size, "The batch size", minimum=1, error=ConfigError)
    if bass == "augment":
        raise ConfigError(
            "Dataset statistics use bass=None or bass='dataset'; 'augment' is random per epoch."
        )
    name = canonical_name(name)
    dataset = build_dataset(name, split, root, bass=bass)
    if isinstance(dataset, ArrayDataset):
        for start in range(0, len(dataset), batch_size):
            yield np.ascontiguousarray(dataset.images[start : start + batch_size])
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=loader_workers(num_workers)
    )
    for images, _ in loader:
        yield float_to_uint8(images)
