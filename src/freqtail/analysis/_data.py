"""Feeding labelled images to the analyses: one adapter for datasets, loaders and tensor pairs.

Every analysis accepts ``data`` as one of

* a pair ``(images, labels)``: float tensor (N, C, H, W) in [0, 1] or uint8 numpy (N, H, W, C),
  and integer labels (N,) (tensor, numpy array or list);
* a map-style dataset whose items are ``(float (C, H, W) in [0, 1], int)`` (what
  :func:`freqtail.data.build_dataset` returns);
* any other iterable of ``(images (N, C, H, W), labels (N,))`` batches, e.g. a ``DataLoader``.

With ``n`` smaller than the number of images, a pair or a dataset contributes a fixed subset:
:func:`subset_indices` (``n`` indices drawn without replacement with seed 0, in increasing order), so
that class-sorted test sets (the embedded set, ImageFolder datasets) are sampled across classes and
every analysis of the same data sees the same images. An iterable contributes its first ``n`` images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from freqtail.errors import InputError
from freqtail.images import check_float_images, check_uint8_images, uint8_to_float

#: Seed of the fixed image subset (:func:`subset_indices`).
SUBSET_SEED = 0


def check_count(n: Any, what: str = "n") -> int | None:
    """``None`` (all images) or a positive int; raise InputError otherwise."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 1:
        raise InputError(f"{what} must be a positive number of images, not {n!r}.")
    return int(n)


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or int(batch_size) < 1:
        raise InputError(f"The batch size must be a positive integer, not {batch_size!r}.")
    return int(batch_size)


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


def subset_indices(total: int, n: int | None, seed: int = SUBSET_SEED) -> np.ndarray:
    """The images used out of ``total`` when ``n`` are asked for: all of them if ``n`` is None or
    ``n >= total``, else ``n`` distinct indices drawn with ``numpy.random.default_rng(seed)``, sorted."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def labelled_batches(
    data: Any, n: int | None = None, batch_size: int = 128
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(float32 (B, C, H, W), int64 (B,))`` CPU batches of ``n`` images (all if None; see the
    module docstring for which).

    Raises:
        InputError: unsupported ``data``, bad images or labels, or no images at all.
    """
    n = check_count(n)
    batch_size = check_batch_size(batch_size)
    if _is_pair(data):
        images = _as_images(data[0])
        labels = _as_labels(data[1], images.shape[0])
        chosen = torch.from_numpy(subset_indices(images.shape[0], n))
        if chosen.numel() < images.shape[0]:
            images, labels = images[chosen], labels[chosen]
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes)):
        total = len(data)
        if total == 0:
            raise InputError("The dataset is empty.")
        indices = subset_indices(total, n).tolist()
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(data, indices), batch_size=batch_size, shuffle=False
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


def collect(data: Any, n: int | None = None, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """All (or ``n``, see :func:`subset_indices`) images and labels in memory, on the CPU:
    float32 (N, C, H, W) and int64 (N,).

    Raises:
        InputError: as :func:`labelled_batches`, or images of different sizes.
    """
    images, labels = [], []
    for x, y in labelled_batches(data, n, batch_size):
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
