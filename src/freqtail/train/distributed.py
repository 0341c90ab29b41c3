"""torchrun support: process group setup, rank-0 helpers and exact metric reduction.

``freqtail train`` started by ``torchrun --nproc_per_node N`` sees ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment and joins the process group (NCCL on CUDA, gloo on CPU).
Without them it runs as one process and every helper here is a no-op.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from freqtail.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``device`` and the backend (or None)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
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


def init_distributed(device_choice: str = "auto") -> DistInfo:
    """Join the torchrun process group if the environment describes one; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, device, None)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, dist.get_backend())


def shutdown(info: DistInfo) -> None:
    """Leave the process group (if this module's caller joined one)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def _tensor_device(info: DistInfo) -> torch.device:
    return info.device if info.backend == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a list of numbers over all ranks (float64, so integer counts up to 2**53 stay exact)."""
    if not info.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_tensor_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_tensor_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def broadcast_json(obj, info: DistInfo):
    """Rank 0's JSON-serialisable ``obj`` on every rank (sent as UTF-8 bytes, never pickled)."""
    if not info.enabled:
        return obj
    device = _tensor_device(info)
    payload = json.dumps(obj).encode("utf-8") if info.is_main else b""
    length = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    buffer = torch.zeros(int(length.item()), dtype=torch.uint8, device=device)
    if info.is_main:
        buffer.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(buffer, src=0)
    return json.loads(buffer.cpu().numpy().tobytes().decode("utf-8"))


def broadcast_module_state(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers (e.g. BatchNorm running statistics) to every rank."""
    if not info.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
