"""Feeding labelled images to the analyses: one adapter for datasets, loaders and tensor pairs.

Every analysis accepts ``data`` as one of

* a pair ``(images, labels)``: float tensor (N, C, H, W) in [0, 1] or uint8 numpy (N, H, W, C),
  and integer labels (N,) (tensor, numpy array or list);
* a map-style dataset whose items are ``(float (C, H, W) in [0, 1], int)`` (what
  :func:`freqtail.data.build_dataset` returns);
* any other iterable of ``(images (N, C, H, W), labels (N,))`` batches, e.g. a ``DataLoader``.

With ``n`` smaller than the number of images, a pair or a dataset contributes the images that
:func:`select_images` names: the one subset rule of :func:`freqtail.data.subsets.stratified_subset`
(seeded, stratified across classes by the pair's labels or the dataset's ``labels`` / ``targets``),
so class-sorted test sets are sampled across classes and every analysis, and ``freqtail evaluate``,
sees the same images for the same ``n`` and seed. An iterable has no labels to stratify by: it
contributes its first ``n`` images, and its selection says so (``indices`` None).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from freqtail.checks import check_int, check_optional_int
from freqtail.data.subsets import ALL_RULE, FIRST_N_RULE, choose_subset
from freqtail.distributed import DistContext, global_batches, rank_batches
from freqtail.errors import InputError
from freqtail.images import check_float_images, check_uint8_images, uint8_to_float

#: Default seed of the image subset (the same default as ``freqtail evaluate --subset-seed``).
SUBSET_SEED = 0


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, restoring each one's own training flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def _as_images(images: Any) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8:
            return uint8_to_float(np.ascontiguousarray(check_uint8_images(images, allow_single=False)))
        images = torch.from_numpy(np.array(images))  # a copy: the array may be read-only
    x = check_float_images(images)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return x


def _as_labels(labels: Any, count: int) -> torch.Tensor:
    if isinstance(labels, (list, tuple)):
        labels = np.asarray(labels)
    if isinstance(labels, np.ndarray):
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"The labels must be integers, not {labels.dtype}.")
        labels = torch.from_numpy(labels.astype(np.int64))
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex():
        raise InputError("The labels must be an integer tensor or array of class indices.")
    labels = labels.reshape(-1).long()
    if labels.numel() != count:
        raise InputError(f"There must be one label per image ({count} images, {labels.numel()} labels).")
    if count and int(labels.min()) < 0:
        raise InputError("The labels must be non-negative class indices.")
    return labels


def _is_pair(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], (torch.Tensor, np.ndarray))
        and not isinstance(data[1], (str, bytes))
    )


def _is_dataset(data: Any) -> bool:
    return hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes))


@dataclass(frozen=True)
class Selection:
    """Which images of ``data`` an analysis uses.

    Attributes:
        indices: sorted int64 positions in the pair or dataset; None for an iterable of batches (its
            first ``n`` images, whatever they are).
        rule: the rule in words (:data:`freqtail.data.subsets.SUBSET_RULE`, ``"all"``, ...).
        seed: the subset seed.
        n_requested: the ``n`` asked for (None = all).
    """

    indices: np.ndarray | None
    rule: str
    seed: int
    n_requested: int | None

    def to_dict(self) -> dict[str, Any]:
        """``{"subset", "subset_seed", "n_requested", "indices"}`` for an analysis JSON."""
        return {
            "subset": self.rule,
            "subset_seed": int(self.seed),
            "n_requested": self.n_requested,
            "indices": None if self.indices is None else [int(i) for i in self.indices],
        }


def select_images(data: Any, n: int | None = None, seed: int = SUBSET_SEED) -> Selection:
    """The images of ``data`` an analysis with ``n`` images uses (module docstring), without loading them.

    Raises:
        InputError: ``n`` < 1, a bad seed, an empty dataset, or a pair whose labels do not fit.
    """
    n = check_optional_int(n, "The number of images n", minimum=1)
    if _is_pair(data) or _is_dataset(data):
        if _is_pair(data):
            images = data[0]
            labels = _as_labels(data[1], int(images.shape[0])).numpy()
        else:
            images, labels = data, None
            if len(data) == 0:
                raise InputError("The dataset is empty.")
        choice = choose_subset(images, n, seed, labels=labels)
        return Selection(choice.indices, choice.rule, choice.seed, n)
    return Selection(None, ALL_RULE if n is None else FIRST_N_RULE, int(seed), n)


def labelled_batches(
    data: Any, n: int | None = None, batch_size: int = 128, selection: Selection | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(float32 (B, C, H, W), int64 (B,))`` CPU batches of ``n`` images (all if None; see the
    module docstring for which).

    Args:
        data: see the module docstring.
        n: images wanted (None = all).
        batch_size: images per batch.
        selection: from :func:`select_images` (default: computed here with the default seed).

    Raises:
        InputError: unsupported ``data``, bad images or labels, or no images at all.
    """
    n = check_optional_int(n, "The number of images n", minimum=1)
    batch_size = check_int(batch_size, "The batch size", minimum=1)
    if selection is None and (_is_pair(data) or _is_dataset(data)):
        selection = select_images(data, n)
    if _is_pair(data):
        images = _as_images(data[0])
        labels = _as_labels(data[1], images.shape[0])
        chosen = torch.from_numpy(selection.indices)
        if chosen.numel() < images.shape[0]:
            images, labels = images[chosen], labels[chosen]
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    if _is_dataset(data):
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(data, selection.indices.tolist()), batch_size=batch_size, shuffle=False
        )
        data = loader
    elif not hasattr(data, "__iter__") or isinstance(data, (str, bytes)):
        raise InputError(
            "The data must be (images, labels), a dataset of (image, label) items, or an iterable of "
            f"(images, labels) batches, not {type(data).__name__}."
        )
    seen = 0
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InputError("Every batch of the data must be an (images, labels) pair.")
        images = _as_images(batch[0])
        labels = _as_labels(batch[1], images.shape[0])
        if n is not None and seen + images.shape[0] > n:
            images, labels = images[: n - seen], labels[: n - seen]
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        seen += images.shape[0]
        if n is not None and seen >= n:
            return


def shard_batches(
    data: Any,
    n: int | None,
    batch_size: int,
    selection: Selection,
    context: DistContext,
    numbers: Sequence[int] | None = None,
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """This rank's share of :func:`labelled_batches`: ``(number, first, images, labels)`` for each of
    its global batches, ``first`` being the position of the batch's first image among all selected
    images.

    The selected images are cut into global batches of ``batch_size``, the same for every number of
    processes, and batch ``b`` goes to rank ``b % world_size``
    (:func:`freqtail.distributed.rank_batches`), or, with ``numbers`` (a pair or a dataset only),
    this rank reads the global batches ``numbers`` (ascending). A pair or a dataset is read only for
    this rank's batches; an iterable of batches is read whole by every rank, each keeping its own.
    """
    if selection.indices is not None and (_is_pair(data) or _is_dataset(data)):
        every = global_batches(np.arange(selection.indices.size), batch_size)
        if numbers is None:
            mine = rank_batches(every, context)
        else:
            mine = [(int(number), every[int(number)]) for number in sorted(numbers)]
        if not mine:
            return
        positions = np.concatenate([batch for _, batch in mine])
        own = Selection(selection.indices[positions], selection.rule, selection.seed, selection.n_requested)
        # Only the very last global batch can be short, so this rank's images cut into batch_size
        # pieces are exactly its global batches.
        batches = labelled_batches(data, n, batch_size, own)
        for (number, _), (images, labels) in zip(mine, batches, strict=True):
            yield number, number * batch_size, images, labels
        return
    first = 0
    for number, (images, labels) in enumerate(labelled_batches(data, n, batch_size, selection)):
        if number % context.world_size == context.rank:
            yield number, first, images, labels
        first += int(images.shape[0])


def collect(
    data: Any, n: int | None = None, batch_size: int = 256, selection: Selection | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (or ``n``, see :func:`select_images`) images and labels in memory, on the CPU:
    float32 (N, C, H, W) and int64 (N,).

    Raises:
        InputError: as :func:`labelled_batches`, or images of different sizes.
    """
    images, labels = [], []
    for x, y in labelled_batches(data, n, batch_size, selection):
        if images and x.shape[1:] != images[0].shape[1:]:
            raise InputError(
                f"All images must share one shape, but {tuple(x.shape[1:])} "
                f"followed {tuple(images[0].shape[1:])}."
            )
        images.append(x.float())
        labels.append(y)
    if not images:
        raise InputError("No images were given.")
    return torch.cat(images), torch.cat(labels)


def check_logits(logits: Any, labels: torch.Tensor) -> torch.Tensor:
    """Validate a model output against the labels: (B, num_classes) with every label < num_classes."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"The model must return logits of shape (N, num_classes), not {shape}.")
    if int(labels.max()) >= logits.shape[1]:
        raise InputError(
            f"A label ({int(labels.max())}) is not a class of the model, which has {logits.shape[1]} outputs."
        )
    return logits
