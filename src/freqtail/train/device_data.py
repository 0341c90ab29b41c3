"""The on-device training pipeline (``data_pipeline: device``) for in-memory datasets.

The uint8 training images stay on the training device, padded once as ``crop-flip``'s
``RandomCrop(padding=4)`` pads (zeros or reflect, :func:`pad_images`); a batch is one gather from
them that does the BaSS mixture, the random crop and the horizontal flip at once
(:func:`crop_flip`), then ``uint8 / 255``. The images are the loader path's
(:func:`freqtail.train.data.build_train_data`: the same held-out images, ``train_subset`` and
once-converted BaSS copy); only the random draws differ.

**Per-sample draws.** Sample ``i`` (its position in the training set, the index the epoch sampler
yields) in epoch ``e`` draws four 64-bit words ``w_k``, ``k = 0..3``, from a counter-based hash::

    key = derive_seed(seed, "augment")
    n   = ((e * 2**32 + i) * 4 + k + 1) mod 2**64
    w_k = splitmix64_mix(key + 0x9E3779B97F4A7C15 * n  mod 2**64)

(``splitmix64_mix(z)``: ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
z *= 0x94D049BB133111EB; z ^= z >> 31``, all mod 2**64: ``w_k`` is output ``n`` of the SplitMix64
generator seeded with ``key``). With ``u_k = (w_k >> 11) / 2**53`` in [0, 1) and padding ``P = 4``:

* BaSS (``bass: augment``): the once-converted image when ``u_0 < gamma`` (never for gamma 0,
  always for gamma 1), else the original;
* crop offsets in the padded ``(H + 2P) x (W + 2P)`` image: ``top = floor(u_1 * (2P + 1))``,
  ``left = floor(u_2 * (2P + 1))`` (computed exactly as ``((w >> 11) * (2P + 1)) >> 53``);
* flip when ``u_3 < 0.5``.

So a sample's image is a function of ``(seed, e, i)`` only: not of the batch size, the batch's other
samples, the number of processes or an interruption. The words are computed on the CPU with NumPy
for a batch's indices (tens of microseconds per batch); ``e < 2**30`` and ``i < 2**32``. The attack
start seeds are the loader path's (:class:`freqtail.train.data.SeededItems`):
``derive_seeds(seed, "sample", e, i, count=2)[1]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from freqtail.data import dataset_info
from freqtail.data.augment import CROP_PADDING
from freqtail.errors import ConfigError
from freqtail.train.data import BaSSMixture, build_train_data
from freqtail.train.rng import derive_seed, derive_seeds

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def sample_words(key: int, epoch: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """uint64 (B, 4): the words ``w_0..w_3`` of samples ``indices`` in ``epoch`` (module docstring)."""
    index = np.asarray(indices, dtype=np.int64)
    if not 0 <= epoch < 2**30 or (index.size and (index.min() < 0 or index.max() >= 2**32)):
        raise ValueError(f"epoch {epoch} or a sample index is outside the counter's range")
    counter = (np.uint64(epoch) << np.uint64(32)) | index.astype(np.uint64)
    n = counter[:, None] * np.uint64(4) + np.arange(1, 5, dtype=np.uint64)
    z = np.uint64(key) + _GOLDEN * n
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def sample_draws(
    key: int, epoch: int, indices: Sequence[int] | np.ndarray, *, padding: int, gamma: float
) -> dict[str, np.ndarray]:
    """The random choices of samples ``indices`` in ``epoch``: ``{"bass": bool (B,), "top": int64 (B,),
    "left": int64 (B,), "flip": bool (B,)}``; offsets in pixels of the padded image, 0..2 * padding."""
    high = sample_words(key, epoch, indices) >> np.uint64(11)  # the top 53 bits: u_k * 2**53
    unit = high.astype(np.float64) * 2.0**-53  # exact: every 53-bit integer is a float64
    offset = (high[:, 1:3] * np.uint64(2 * padding + 1)) >> np.uint64(53)
    return {
        "bass": unit[:, 0] < gamma,
        "top": offset[:, 0].astype(np.int64),
        "left": offset[:, 1].astype(np.int64),
        "flip": unit[:, 3] < 0.5,
    }


def pad_images(images: np.ndarray, padding: int, pad_mode: str) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, C, H + 2 * padding, W + 2 * padding), channels first, padded as
    ``crop-flip``'s ``RandomCrop`` pads: ``np.pad`` mode ``"constant"`` (0) for ``pad_mode="zeros"``,
    ``"reflect"`` (the edge pixel not repeated) for ``"reflect"``."""
    mode = "constant" if pad_mode == "zeros" else "reflect"
    width = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    return np.pad(np.asarray(images).transpose(0, 3, 1, 2), width, mode=mode)


def crop_flip(
    padded: torch.Tensor,
    rows: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Crops of ``size`` from rows of a padded uint8 image stack, flipped where asked, in one gather.

    Per sample: ``padded[row, :, top : top + h, left : left + w]``, its columns reversed where
    ``flip`` (torchvision's crop, then flip).

    Args:
        padded: uint8 (N, C, H + 2P, W + 2P) on the device (:func:`pad_images`).
        rows: int64 (B,) rows of ``padded``; top, left: int64 (B,) crop offsets in pixels,
            0..2P; flip: bool (B,). All on the device of ``padded``.
        size: (h, w) of the crops in pixels.

    Returns:
        uint8 (B, C, h, w).
    """
    _, channels, padded_height, padded_width = padded.shape
    height, width = size
    device = padded.device
    cols = left[:, None] + torch.arange(width, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    # One flat gather (torch.take) is ~3x faster than four-tensor advanced indexing on a CPU.
    plane = padded_height * padded_width
    lines = (top[:, None] + torch.arange(height, device=device)) * padded_width
    first = (rows[:, None] * (channels * plane) + lines)[:, None, :, None]
    channel = (torch.arange(channels, device=device) * plane)[None, :, None, None]
    return padded.take(first + channel + cols[:, None, None, :])


def _root_and_rows(dataset: Dataset) -> tuple[Dataset, np.ndarray]:
    """The dataset under nested ``Subset`` s and the row of it that each position of ``dataset`` is."""
    rows = np.arange(len(dataset))
    while isinstance(dataset, Subset):
        rows = np.asarray(dataset.indices, dtype=np.int64)[rows]
        dataset = dataset.dataset
    return dataset, rows


class DeviceTrainData:
    """The training split on the device, served as whole batches (see the module docstring).

    Args:
        images: uint8 (N, H, W, C), the training items in position order (position p = row p).
        labels: int (N,).
        bass_images: uint8 (N, H, W, C), their once-converted BaSS copy, for ``bass: augment``
            (None otherwise: ``bass: dataset`` passes the converted images as ``images``).
        gamma: probability of the BaSS image.
        crop: whether to crop and flip (``crop-flip`` with ``augment: true``); else the stored image.
        pad_mode: ``"zeros"`` or ``"reflect"``.
        seed: the run's seed; noise_seeds: return the attack-start seeds (else None).
        device: where the images live and the batches are made.
        classes, name: as the datasets carry them.

    Attributes:
        images: uint8 (N, C, H + 2P, W + 2P) on ``device``, padded (``crop``; else (N, C, H, W)); with
            ``bass_images`` 2N rows, the BaSS copy of row r at row N + r.
        labels: int64 (N,) on ``device``.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        bass_images: np.ndarray | None = None,
        gamma: float = 0.0,
        crop: bool = True,
        pad_mode: str = "zeros",
        seed: int = 0,
        noise_seeds: bool = False,
        device: torch.device | str = "cpu",
        classes: Sequence[str] = (),
        name: str = "dataset",
    ) -> None:
        height, width = int(images.shape[1]), int(images.shape[2])
        if crop and pad_mode == "reflect" and CROP_PADDING >= min(height, width):
            raise ConfigError(
                f"Reflect padding of {CROP_PADDING} pixels needs images larger than {CROP_PADDING} pixels "
                f"a side, not {height}x{width}; use pad_mode: zeros."
            )
        stacks = [images] if bass_images is None else [images, bass_images]
        # channels-first, so that a gather gives the contiguous (B, C, H, W) batch the model takes;
        # padded once here, so that a batch's crops are plain offsets into the padded images
        if crop:
            stack = np.concatenate([pad_images(s, CROP_PADDING, pad_mode) for s in stacks])
        else:
            stack = np.concatenate([np.asarray(s).transpose(0, 3, 1, 2) for s in stacks])
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.ascontiguousarray(stack)).to(self.device)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64)).to(self.device)
        self.count = len(images)
        self.mixed = bass_images is not None
        self.gamma = float(gamma)
        self.crop = bool(crop)
        self.seed = int(seed)
        self.key = derive_seed(seed, "augment")
        self.noise_seeds = bool(noise_seeds)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.image_size = (height, width)
        self.name = name

    def __len__(self) -> int:
        return self.count

    def batch(
        self, epoch: int, positions: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Samples ``positions`` of ``epoch``: ``(float32 (B, C, H, W) in [0, 1], int64 (B,) labels,
        int64 (B,) attack-start seeds on the CPU or None)``, images and labels on the device."""
        index = np.asarray(positions, dtype=np.int64)
        draws = sample_draws(self.key, epoch, index, padding=CROP_PADDING, gamma=self.gamma)
        rows = index + self.count * draws["bass"] if self.mixed else index
        # one host-to-device copy for every per-sample choice; from pinned memory on CUDA, so that it
        # does not wait for the previous step's kernels
        packed = torch.from_numpy(np.stack([rows, index, draws["top"], draws["left"], draws["flip"]]))
        if self.device.type == "cuda":
            packed = packed.pin_memory()
        rows_d, index_d, top, left, flip = packed.to(self.device, non_blocking=True)
        if self.crop:
            x = crop_flip(self.images, rows_d, top, left, flip.bool(), self.image_size)
        else:
            x = self.images[rows_d]
        seeds = None
        if self.noise_seeds:
            seeds = torch.tensor(
                [derive_seeds(self.seed, "sample", epoch, int(i), count=2)[1] for i in index],
                dtype=torch.int64,
            )
        return x.float().div_(255.0), self.labels[index_d], seeds

    def batches(self, sampler: Iterator[tuple[int, int]], batch_size: int, drop_last: bool) -> Iterator:
        """The batches of one epoch: ``sampler`` yields ``(epoch, position)`` keys (``EpochSampler``)."""
        keys = list(sampler)
        for start in range(0, len(keys), batch_size):
            chunk = keys[start : start + batch_size]
            if drop_last and len(chunk) < batch_size:
                return
            yield self.batch(chunk[0][0], [position for _, position in chunk])


def build_device_train_data(config, device: torch.device | str) -> DeviceTrainData:
    """The training split of ``config`` (an in-memory dataset) as :class:`DeviceTrainData` on ``device``.

    The rows, labels and BaSS copy are those of :func:`freqtail.train.data.build_train_data` (the
    held-out images of ``selection: val`` and the ``train_subset`` are left out the same way).
    """
    root, rows = _root_and_rows(build_train_data(config))
    if isinstance(root, BaSSMixture):
        images, bass_images, gamma = root.original.images, root.converted.images, root.gamma
        labels = root.original.labels
    else:
        images, bass_images, gamma, labels = root.images, None, 0.0, root.labels
    preset = config.augmentation or dataset_info(config.dataset).preset
    return DeviceTrainData(
        images[rows],
        labels[rows],
        bass_images=bass_images[rows] if bass_images is not None else None,
        gamma=gamma,
        crop=config.augment and preset == "crop-flip",
        pad_mode=config.pad_mode,
        seed=config.seed,
        noise_seeds=config.adversarial,
        device=device,
        classes=root.classes,
        name=root.name,
    )
