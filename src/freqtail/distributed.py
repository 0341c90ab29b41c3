"""One distributed setup for training and evaluation: the process group, this process's device,
and exact reductions across processes.

A command started by ``torchrun --nproc_per_node N`` sees ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment: :func:`init_distributed` joins the process group (NCCL on CUDA,
gloo on CPU) and picks this process's device. Without them it runs as one process and every helper
here is a no-op. ``freqtail train`` and ``freqtail evaluate`` both start here; what each one shards
(the trainer's sampler, the evaluation's global batches) lives with them.

A launcher that starts every rank itself (a Slurm job step with one task per rank: the grid's Slurm
launcher) describes each rank's place with :func:`export_process_group` in the same variables, so
there is one way in.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from freqtail import errors
from freqtail.checks import check_int
from freqtail.errors import ConfigError, FreqtailError

T = TypeVar("T")

#: The variables that describe a process group (torchrun's names): :func:`init_distributed` reads
#: ``WORLD_SIZE`` and ``LOCAL_RANK``, the ``env://`` rendezvous of ``init_process_group`` the others.
GROUP_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, its ``local_rank`` on
    the machine and the process group's backend (None when there is no process group)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA (this process's local GPU) if available, else CPU; otherwise the named device."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except (RuntimeError, ValueError):
        raise ConfigError(f"Unknown device {choice!r}; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("The config asks for CUDA but no CUDA device is available; use device: cpu.")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(device_choice: str | torch.device | None = "auto") -> DistContext:
    """Join the torchrun process group if the environment describes one; pick this process's device.

    Args:
        device_choice: ``"auto"`` / None (``cuda:LOCAL_RANK`` when CUDA is available, else the CPU),
            ``"cpu"``, ``"cuda"``, ``"cuda:K"`` or a ``torch.device``. An already initialised process
            group is kept.
    """
    device_choice = "auto" if device_choice is None else str(device_choice)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Not at the module's top: it costs about 1 s, and only a process that joins a group needs
        # it. torch._dynamo (which torchvision imports) takes a reference to the backend of a
        # process group that exists when it is first imported; that backend then outlives
        # destroy_process_group and is torn down at the process's exit, where gloo's threads
        # sometimes abort it (SIGABRT, "terminate called without an active exception"). Imported
        # before the group exists, it holds none. (import_module: an ``import torch._dynamo`` here
        # would make ``torch`` a local name of this function.)
        importlib.import_module("torch._dynamo")

        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), device, local_rank, dist.get_backend())


def export_process_group(
    *, rank: int, world_size: int, local_rank: int, local_world_size: int, master_addr: str, master_port: int
) -> None:
    """Describe this process's place in a process group in its environment (:data:`GROUP_VARIABLES`),
    as torchrun does for the processes it starts, so that :func:`init_distributed` joins the group.

    Args:
        rank: this process's rank, ``0 <= rank < world_size``; local_rank: its rank on this machine.
        world_size: the number of processes; local_world_size: those on this machine.
        master_addr, master_port: where rank 0 listens for the rendezvous (a host name, a TCP port).

    Raises:
        ConfigError: a value out of range (one sentence).
    """
    world_size = check_int(world_size, "The process group's size", minimum=1, error=ConfigError)
    rank = check_int(rank, "The process's rank", minimum=0, maximum=world_size - 1, error=ConfigError)
    local_world_size = check_int(
        local_world_size, "The processes per machine", minimum=1, maximum=world_size, error=ConfigError
    )
    local_rank = check_int(
        local_rank, "The process's local rank", minimum=0, maximum=local_world_size - 1, error=ConfigError
    )
    master_port = check_int(master_port, "The rendezvous port", minimum=1, maximum=65535, error=ConfigError)
    if not (isinstance(master_addr, str) and master_addr.strip()):
        raise ConfigError(f"The rendezvous host must be a host name, not {master_addr!r}.")
    values = (master_addr, master_port, rank, world_size, local_rank, local_world_size)
    os.environ.update({name: str(value) for name, value in zip(GROUP_VARIABLES, values, strict=True)})


def shutdown(context: DistContext) -> None:
    """Leave the process group (if this module's caller joined one)."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device_choice: str | torch.device | None = "auto") -> Iterator[DistContext]:
    """:func:`init_distributed` for the ``with`` block, leaving the group at its end only if this call
    joined it: a script that runs several commands in one group (joined once, as each start costs
    seconds) keeps it across them.

    Yields:
        The :class:`DistContext` of this process (rank 0 of 1 outside torchrun).
    """
    joined_here = not (dist.is_available() and dist.is_initialized())
    context = init_distributed(device_choice)
    try:
        yield context
    finally:
        if joined_here:
            shutdown(context)


def _tensor_device(context: DistContext) -> torch.device:
    """Where collective tensors live: the GPU under NCCL, the CPU under gloo."""
    return context.device if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float], context: DistContext) -> list[float]:
    """Sum a list of numbers over all ranks (float64, so integer counts up to 2**53 stay exact)."""
    if not context.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_tensor_device(context))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def any_rank(flag: bool, context: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not context.distributed:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_tensor_device(context))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def broadcast_json(obj, context: DistContext, source: int = 0):
    """Rank ``source``'s JSON-serialisable ``obj`` on every rank (sent as UTF-8 bytes, never pickled)."""
    if not context.distributed:
        return obj
    device = _tensor_device(context)
    sending = context.rank == source
    payload = json.dumps(obj).encode("utf-8") if sending else b""
    length = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(length, src=source)
    buffer = torch.zeros(int(length.item()), dtype=torch.uint8, device=device)
    if sending:
        buffer.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(buffer, src=source)
    return json.loads(buffer.cpu().numpy().tobytes().decode("utf-8"))


def all_gather_json(obj, context: DistContext) -> list:
    """Every rank's JSON-serialisable ``obj``, by rank, on every rank (one :func:`broadcast_json` per
    rank: the payloads are small records, and JSON keeps them from being unpickled)."""
    if not context.distributed:
        return [obj]
    return [
        broadcast_json(obj if context.rank == source else None, context, source)
        for source in range(context.world_size)
    ]


def broadcast_module_state(module: torch.nn.Module, context: DistContext) -> None:
    """Copy rank 0's parameters and buffers (e.g. BatchNorm running statistics) to every rank."""
    if not context.distributed:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def barrier(context: DistContext) -> None:
    if context.distributed:
        dist.barrier()


def all_reduce_counts(counts: Sequence[int] | np.ndarray, context: DistContext) -> np.ndarray:
    """Sum integer counts over all ranks (exact: int64 ``all_reduce``); unchanged with one process."""
    array = np.asarray(counts, dtype=np.int64)
    if not context.distributed:
        return array
    tensor = torch.as_tensor(array, dtype=torch.int64, device=_tensor_device(context))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def global_batches(indices: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``indices`` cut into consecutive batches of ``batch_size`` (the last may be shorter): the
    *global* batches of a sharded pass, the same for every number of processes."""
    batch_size = check_int(batch_size, "The batch size", minimum=1, error=ConfigError)
    array = np.asarray(indices, dtype=np.int64)
    return [array[start : start + batch_size] for start in range(0, len(array), batch_size)]


def rank_batches(batches: Sequence[np.ndarray], context: DistContext) -> list[tuple[int, np.ndarray]]:
    """``(global batch number, indices)`` of the batches this rank takes: batch ``b`` goes to rank
    ``b % world_size`` (round robin), so batch 0 is always rank 0's."""
    return [(b, batch) for b, batch in enumerate(batches) if b % context.world_size == context.rank]


def _error_message(err: BaseException, rank: int) -> dict[str, str]:
    """Rank ``rank``'s error as JSON: a :class:`FreqtailError`'s class and sentence, anything else
    as a FreqtailError naming the rank."""
    if isinstance(err, FreqtailError):
        return {"error": str(err), "kind": type(err).__name__}
    return {"error": f"Rank {rank} failed: {type(err).__name__}: {err}", "kind": "FreqtailError"}


def _shared_error(message: dict[str, str]) -> FreqtailError:
    """The error :func:`_error_message` describes (its FreqtailError class, else FreqtailError)."""
    kind = getattr(errors, message["kind"], None)
    if not (isinstance(kind, type) and issubclass(kind, FreqtailError)):
        kind = FreqtailError
    return kind(message["error"])


def raise_together(failure: Exception | None, context: DistContext) -> None:
    """Make every rank raise when any rank failed, so that none waits for it in a later collective.

    Every rank calls this at the same point with the error it caught since the last collective
    (None if it did not fail). If any rank failed, each failing rank raises its own error and every
    other rank raises the error of the lowest failing rank: a :class:`FreqtailError` subclass as that
    class with the same sentence, anything else as ``FreqtailError("Rank R failed: <Type>: <message>")``.
    So each process ends with one sentence (exit status 2 from the command line) and torchrun stops
    with status 2, instead of a rank waiting forever or failing on a closed connection. With one
    process this raises ``failure`` if it is not None.
    """
    if not context.distributed:
        if failure is not None:
            raise failure
        return
    lowest = torch.tensor(
        [context.world_size if failure is None else context.rank],
        dtype=torch.int64,
        device=_tensor_device(context),
    )
    dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
    source = int(lowest.item())
    if source == context.world_size:
        return
    message = _error_message(failure, source) if context.rank == source else None
    message = broadcast_json(message, context, source=source)
    if failure is not None:
        raise failure
    raise _shared_error(message)


def run_on_every_rank(work: Callable[[], T], context: DistContext) -> T:
    """``work()`` on every rank; if it raises an ``Exception`` on any rank, every rank raises
    (:func:`raise_together`). Interruptions (Ctrl-C) are not caught."""
    failure: Exception | None = None
    result = None
    try:
        result = work()
    except Exception as err:  # noqa: BLE001 - re-raised by raise_together, after telling the others
        if not context.distributed:
            raise
        failure = err
    raise_together(failure, context)
    return result


def run_on_main_and_share(work: Callable[[], Any], context: DistContext) -> Any:
    """Run ``work`` on rank 0 and give every rank its JSON result, or make every rank raise its error.

    A rank that waits in a collective for a rank 0 that has stopped would wait forever; so rank 0
    broadcasts either ``work()``'s result (JSON-serialisable) or its error, and every rank raises the
    same error: a :class:`FreqtailError` subclass as that class with the same sentence, anything else
    as ``FreqtailError("Rank 0 failed: <Type>: <message>")`` (rank 0 itself re-raises the original).
    An interruption on rank 0 (Ctrl-C: a ``BaseException`` that is no ``Exception``) is re-raised
    there at once. With one process this is ``work()``.
    """
    if not context.distributed:
        return work()
    failure: Exception | None = None
    message: dict[str, Any] | None = None
    if context.is_main:
        try:
            message = {"result": work()}
        except Exception as err:  # noqa: BLE001 - re-raised below, after telling the other ranks
            failure = err
            message = _error_message(err, 0)
    message = broadcast_json(message, context)
    if failure is not None:
        raise failure
    if "error" in message:
        raise _shared_error(message)
    return message["result"]


def main_first(build: Callable[[], T], context: DistContext) -> T:
    """``build()`` on rank 0 first (it fills caches: datasets, downloaded weights), then on the others.

    A failure on rank 0 is raised on every rank (:func:`run_on_main_and_share`).
    """
    if not context.distributed:
        return build()
    built: list[T] = []
    run_on_main_and_share(lambda: built.append(build()), context)
    return built[0] if context.is_main else build()
