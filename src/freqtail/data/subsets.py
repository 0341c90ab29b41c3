"""The one rule that picks ``n`` test images: seeded and stratified across classes.

``freqtail evaluate`` (every suite, the gradient-masking check, generated -C sets) and the
explanations (``sensitivity``, ``landscape``, ``heatmap``) all call :func:`stratified_subset`, so the
same ``n`` and seed select the same images everywhere, and every result stores the indices it used.

Training's held-out validation images (``selection: val``) are the other rule here,
:func:`proportional_subset`: class-stratified in proportion to the class sizes, as a validation split
usually is.

The evaluation rule, exactly (also :data:`SUBSET_RULE`, the words recorded with every result):

* ``n`` is None or ``n >= len(labels)``: every index, ``0 .. len(labels) - 1``;
* otherwise, with one generator ``rng = numpy.random.default_rng(seed)``:

  1. for each class in ascending label order, the class's positions (ascending) are shuffled with
     ``rng.permutation`` (the position at shuffled place ``r`` has *rank* ``r`` in its class);
  2. the order in which classes are visited is ``rng.permutation(number of classes)``, drawn after
     step 1 (entry ``i`` is the ascending-order number of the class visited ``i``-th);
  3. images are taken round by round: round ``r`` takes the rank-``r`` image of every class that
     still has one, in the visit order, until ``n`` are taken;
  4. the taken indices are returned sorted ascending, as int64.

So any ``n`` covers the classes as evenly as possible (class counts differ by at most 1 until a class
runs out of images), and the subsets of one seed are nested: the first ``m < n`` taken are the subset
of size ``m``. With one class (or no usable labels, see :func:`dataset_labels`) the rule is the
first ``n`` of ``default_rng(seed).permutation(len(labels))``, sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Subset

from freqtail.checks import check_optional_int, check_seed
from freqtail.errors import InputError

__all__ = [
    "ALL_RULE",
    "proportional_subset",
    "FIRST_N_RULE",
    "SUBSET_RULE",
    "UNLABELLED_RULE",
    "SubsetChoice",
    "choose_subset",
    "dataset_labels",
    "stratified_subset",
]

#: The subset rule in words, recorded with every result that used a subset.
SUBSET_RULE = (
    "class-stratified seeded subset (freqtail.data.subsets.stratified_subset): with "
    "rng = numpy.random.default_rng(seed), each class's positions (ascending label order) are shuffled "
    "by rng.permutation, the class visit order is rng.permutation(number of classes), images are taken "
    "round-robin (the r-th shuffled image of every class per round, in visit order) until n are taken, "
    "then sorted"
)
#: The same rule when the labels cannot be read cheaply (all images treated as one class).
UNLABELLED_RULE = (
    "first n of numpy.random.default_rng(seed).permutation(number of images), sorted (the labels could "
    "not be read without loading every image, so the subset is not stratified by class)"
)
#: Recorded when every image is used.
ALL_RULE = "all"
#: An iterable of batches (a DataLoader) has no labels to stratify by: its first n images are used.
FIRST_N_RULE = "the first n images of the iterable, in its order (an iterable has no labels to stratify by)"


def stratified_subset(labels: Sequence[Any] | np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` images chosen by the subset rule (module docstring): sorted int64 (n,).

    Args:
        labels: (N,) class labels of the images, in index order (any sortable values; a CPU tensor
            works too).
        n: how many to take; None or ``n >= N`` takes all N.
        seed: the generator seed (>= 0).

    Returns:
        int64 (min(n, N),) indices into ``labels``, ascending.

    Raises:
        InputError: labels that are not one-dimensional, ``n < 1``, a negative seed.

    Example:
        >>> stratified_subset([0, 0, 0, 1, 1, 2], 3, seed=0)  # one image of each class
        array([2, 4, 5])
    """
    values = np.asarray(labels)
    if values.ndim != 1:
        raise InputError(f"The labels must be one label per image (1-D), not shape {values.shape}.")
    n = check_optional_int(n, "The number of images", minimum=1)
    seed = check_seed(seed, "The subset seed")
    total = values.shape[0]
    if n is None or n >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    by_class = np.argsort(inverse, kind="stable")  # positions grouped by class, ascending inside
    rank = np.empty(total, dtype=np.int64)
    start = 0
    for count in counts:
        positions = by_class[start : start + count]
        rank[positions[rng.permutation(count)]] = np.arange(count)
        start += count
    visit = rng.permutation(len(counts))
    slot = np.empty(len(counts), dtype=np.int64)
    slot[visit] = np.arange(len(counts))  # slot[c] = place of class c in every round
    taken = np.lexsort((slot[inverse], rank))[:n]  # by rank (round), then by visit order
    return np.sort(taken).astype(np.int64)


def dataset_labels(dataset: Any) -> np.ndarray | None:
    """The labels of a map-style dataset without loading its images, or None when they are not at hand.

    Reads ``dataset.labels`` (:class:`freqtail.data.ArrayDataset`) or ``dataset.targets`` (folder
    datasets, torchvision datasets); follows ``torch.utils.data.Subset`` (its ``indices`` into its
    ``dataset``) and ``ConcatDataset`` (its parts, concatenated). Anything else (or labels whose count
    is not ``len(dataset)``) gives None: the caller then uses :data:`UNLABELLED_RULE`.

    Returns:
        (len(dataset),) array of labels, or None.
    """
    try:
        size = len(dataset)
    except TypeError:
        return None
    labels: np.ndarray | None = None
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        if inner is not None:
            labels = inner[np.asarray(dataset.indices, dtype=np.int64)]
    elif isinstance(dataset, ConcatDataset):
        parts = [dataset_labels(part) for part in dataset.datasets]
        if all(part is not None for part in parts):
            labels = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    else:
        for name in ("labels", "targets"):
            value = getattr(dataset, name, None)
            if value is None or callable(value):
                continue
            try:
                labels = np.asarray(value.cpu() if hasattr(value, "cpu") else value)
            except (TypeError, ValueError):
                labels = None
            break
    if labels is None or labels.ndim != 1 or labels.shape[0] != size:
        return None
    return labels


@dataclass(frozen=True)
class SubsetChoice:
    """Which images of a dataset a result used.

    Attributes:
        indices: sorted int64 (n,) positions in the dataset.
        total: images the dataset holds.
        seed: the subset seed.
        rule: :data:`ALL_RULE`, :data:`SUBSET_RULE` or :data:`UNLABELLED_RULE`.
    """

    indices: np.ndarray
    total: int
    seed: int
    rule: str

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    def within(self, n: int | None, labels: np.ndarray | None = None) -> SubsetChoice:
        """``n`` of this choice's images, picked by the same rule from their labels.

        Args:
            n: images wanted (None = all of this choice).
            labels: the labels of the whole dataset (indexed by this choice's ``indices``); None
                when they are not at hand (:data:`UNLABELLED_RULE`).

        Returns:
            a :class:`SubsetChoice` whose ``indices`` are still positions in the dataset.
        """
        own = np.zeros(self.n, dtype=np.int64) if labels is None else np.asarray(labels)[self.indices]
        positions = stratified_subset(own, n, self.seed)
        if len(positions) == self.n:
            return self
        rule = (SUBSET_RULE if labels is not None else UNLABELLED_RULE) + (
            f", drawn from the {self.n} images of a subset chosen the same way"
            if self.rule != ALL_RULE
            else ""
        )
        return SubsetChoice(self.indices[positions], self.total, self.seed, rule)

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "of", "subset", "subset_seed", "indices"}`` for a JSON record."""
        return {
            "n": self.n,
            "of": int(self.total),
            "subset": self.rule,
            "subset_seed": int(self.seed),
            "indices": [int(i) for i in self.indices],
        }


def check_subset_size(n: int | None, total: int, images: str) -> None:
    """Refuse a requested ``n`` beyond the images at hand (the subset rule would silently take all).

    Args:
        n: images asked for (``--n``), or None for all.
        total: images available.
        images: what they are, as the sentence should name them ("the embedded test set").

    Raises:
        InputError: "--n 2000 is more than the 1600 images of the embedded test set; ..."
    """
    if n is not None and n > total:
        raise InputError(
            f"--n {n} is more than the {total} images of {images}; give --n {total} or less, "
            "or leave --n out to use them all."
        )


def choose_subset(
    dataset: Any, n: int | None, seed: int = 0, labels: np.ndarray | None = None
) -> SubsetChoice:
    """The images of ``dataset`` the subset rule picks (see :func:`stratified_subset`).

    Args:
        dataset: a map-style dataset (its labels read by :func:`dataset_labels`).
        n: images wanted (None = all).
        seed: subset seed.
        labels: the labels, when the caller already has them (skips :func:`dataset_labels`).
    """
    total = len(dataset)
    if labels is None:
        labels = dataset_labels(dataset)
    rule = SUBSET_RULE
    if labels is None:
        labels, rule = np.zeros(total, dtype=np.int64), UNLABELLED_RULE
    indices = stratified_subset(labels, n, seed)  # checks n and the seed
    return SubsetChoice(indices, total, int(seed), ALL_RULE if len(indices) == total else rule)


def proportional_subset(labels: Sequence[int], size: int, seed: int) -> list[int]:
    """``size`` indices into ``labels`` (int (N,)), class-stratified in proportion and seeded; sorted.

    Class ``c`` with ``n_c`` of the ``N`` images gets ``floor(size * n_c / N)`` places; the places
    left go one each to the classes with the largest remainders ``size * n_c mod N`` (ties: the
    smaller label). Within a class the images are the first of a random permutation drawn from a
    torch generator seeded with ``seed`` (classes in label order). Used for the training images held
    out to choose the best checkpoint (``selection: val``).

    Raises:
        ValueError: ``size`` is not in ``0 .. N``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    total = len(labels)
    if not 0 <= size <= total:
        raise ValueError(f"cannot choose {size} of {total} images")
    classes, counts = np.unique(labels, return_counts=True)
    quota, remainder = np.divmod(size * counts, total)
    extra = np.lexsort((classes, -remainder))[: size - int(quota.sum())]
    quota[extra] += 1
    generator = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for label, places in zip(classes, quota, strict=True):
        members = np.flatnonzero(labels == label)
        order = torch.randperm(len(members), generator=generator).numpy()
        chosen.extend(members[order[:places]].tolist())
    return sorted(chosen)
