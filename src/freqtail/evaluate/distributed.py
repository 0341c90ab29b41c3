"""Exact counting across processes: which images each rank evaluates, and summing the counts.

Evaluation under ``torchrun --nproc_per_node N freqtail evaluate ...`` works like this:

* the evaluated images (the whole test set or the seeded, class-stratified subset of
  :func:`freqtail.data.subsets.stratified_subset`) are cut into *global* batches of
  ``batch_size`` images, the same for every number of processes;
* global batch ``b`` goes to rank ``b % world_size``; each rank attacks only its batches, and the
  random starts of batch ``b`` are seeded from ``(seed, b)`` — so every image meets exactly the same
  attack whatever the number of processes, and the counts are identical to a one-process run;
* each rank counts its correct / total images (integers) and the counts are summed with one
  ``all_reduce`` (int64, exact) per measured quantity; rank 0 writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from freqtail.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` and the device it evaluates on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """The context of this process; under torchrun (``WORLD_SIZE`` > 1) also join the process group.

    Uses the trainer's setup (:func:`freqtail.train.distributed.init_distributed`): NCCL for CUDA
    devices, gloo otherwise; an already initialised process group is kept. Without torchrun this
    returns rank 0 of 1.

    Args:
        device: ``"auto"``/None (``cuda:LOCAL_RANK`` when CUDA is available, else CPU), ``"cpu"``,
            ``"cuda"`` or ``"cuda:K"``.
    """
    from freqtail.train.distributed import init_distributed as join_process_group

    info = join_process_group("auto" if device is None else str(device))
    return DistContext(info.rank, info.world_size, info.device)


def global_batches(indices: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``indices`` cut into consecutive batches of ``batch_size`` (the last may be shorter)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"The batch size must be a positive integer, not {batch_size!r}.")
    array = np.asarray(indices, dtype=np.int64)
    return [array[start : start + batch_size] for start in range(0, len(array), batch_size)]


def rank_batches(batches: Sequence[np.ndarray], context: DistContext) -> list[tuple[int, np.ndarray]]:
    """``(global batch number, indices)`` of the batches this rank evaluates (round robin)."""
    return [(b, batch) for b, batch in enumerate(batches) if b % context.world_size == context.rank]


def batch_seed(seed: int, batch: int) -> int:
    """The attack seed of global batch ``batch``: the same for every number of processes."""
    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, dtype=np.uint32)[0])


def all_reduce_counts(counts: Sequence[int] | np.ndarray, context: DistContext) -> np.ndarray:
    """Sum integer counts over all ranks (exact: int64 ``all_reduce``); unchanged with one process."""
    array = np.asarray(counts, dtype=np.int64)
    if not context.distributed:
        return array
    import torch.distributed as dist

    device = context.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.as_tensor(array, dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def barrier(context: DistContext) -> None:
    """Wait for every rank (no-op with one process)."""
    if context.distributed:
        import torch.distributed as dist

        dist.barrier()
