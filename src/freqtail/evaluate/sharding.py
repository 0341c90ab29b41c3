"""Sharding an evaluation across processes: which images each rank evaluates, and their attack seeds.

Evaluation under ``torchrun --nproc_per_node N freqtail evaluate ...`` works like this:

* the evaluated images (the whole test set or the seeded, class-stratified subset of
  :func:`freqtail.data.subsets.stratified_subset`) are cut into *global* batches of
  ``batch_size`` images, the same for every number of processes;
* global batch ``b`` goes to rank ``b % world_size``; each rank attacks only its batches, and the
  random starts of batch ``b`` are seeded from ``(seed, b)`` — so every image meets exactly the same
  attack whatever the number of processes, and the counts are identical to a one-process run;
* each rank counts its correct / total images (integers) and the counts are summed with one
  ``all_reduce`` (int64, exact) per measured quantity (:func:`freqtail.distributed.all_reduce_counts`);
  rank 0 writes the files;
* the per-image outcomes (which images were classified correctly) are put back in global-batch
  order by :func:`gather_outcomes` (each rank fills the positions of its own batches, one exact
  ``all_reduce`` sums them), so every number of processes gives the same bits as one.

The process group itself is :mod:`freqtail.distributed`, the one setup training and evaluation share.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The global batches and their round robin over ranks live in freqtail.distributed, shared with the
# analyses (freqtail.analysis), which sit beside this package.
from freqtail.distributed import DistContext, all_reduce_counts, global_batches, rank_batches

__all__ = ["batch_seed", "gather_outcomes", "global_batches", "rank_batches"]


def batch_seed(seed: int, batch: int) -> int:
    """The attack seed of global batch ``batch``: the same for every number of processes."""
    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, dtype=np.uint32)[0])


def gather_outcomes(
    outcomes: Sequence[tuple[int, np.ndarray]], n: int, batch_size: int, context: DistContext
) -> np.ndarray:
    """The per-image outcomes of all ranks, in the order of the evaluated images.

    Args:
        outcomes: this rank's ``(global batch number, bools of its images)``.
        n: the number of evaluated images (all ranks together).
        batch_size: the global batch size (batch ``b`` holds images ``b * batch_size ...``).
        context: this process's rank and world size.

    Returns:
        bool (n,): image ``i``'s outcome, whichever rank measured it.
    """
    filled = np.zeros(int(n), dtype=np.int64)
    for number, bits in outcomes:
        start = int(number) * int(batch_size)
        values = np.asarray(bits, dtype=bool).reshape(-1)
        filled[start : start + values.shape[0]] = values
    return all_reduce_counts(filled, context).astype(bool)
