"""Which GPUs each launcher process of a local grid run gets: ``--gpus``, ``--jobs``, ``--nproc-per-cell``.

The local launcher runs ``jobs`` cells at once, one per launcher process. ``--gpus 0,1,2,3`` splits
the listed GPUs into groups of ``nproc_per_cell`` (in the order given) and gives launcher process
``i`` group ``i`` as its ``CUDA_VISIBLE_DEVICES``; a cell then trains with ``nproc_per_cell``
processes, one per GPU of its group (``LOCAL_RANK`` k -> ``cuda:k`` of the group). How the options
combine (:func:`plan_devices`):

* ``jobs`` defaults to the number of groups with ``--gpus`` (one cell per group at once), else to 1;
  fewer jobs than groups leave the last groups unused; more jobs than groups are refused, since two
  cells would share a GPU;
* the GPU ids are PyTorch's indices of the devices this process sees (``0`` to
  ``torch.cuda.device_count() - 1``): an id not below that count is refused before anything starts.
  When ``CUDA_VISIBLE_DEVICES`` is already set, id ``k`` is its ``k``-th entry
  (:meth:`DevicePlan.environment` passes the entries on, so the children see the same devices);
* without ``--gpus`` every launcher process sees every device (and ``nproc_per_cell`` processes run
  on the CPU with gloo where there is no GPU).

Example (hand-checked): ``plan_devices("0,1,2,3", None, 2, 4)`` -> groups ``((0, 1), (2, 3))``,
jobs 2; launcher process 1 gets ``CUDA_VISIBLE_DEVICES=2,3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from freqtail.checks import check_int
from freqtail.errors import ConfigError

#: The environment variable CUDA reads the visible devices from.
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class DevicePlan:
    """How the launcher processes of one local grid run share the GPUs.

    Attributes:
        groups: one tuple of GPU ids per launcher process (``len(groups) == jobs``), each of
            ``nproc_per_cell`` ids; ``()`` without ``--gpus`` (every process sees every device).
        jobs: launcher processes, that is cells running at once.
        nproc_per_cell: training processes of each cell (torchrun's ``--nproc-per-node``).
    """

    groups: tuple[tuple[int, ...], ...]
    jobs: int
    nproc_per_cell: int

    def environment(self, index: int, inherited: str | None = None) -> dict[str, str]:
        """The environment variables launcher process ``index`` (0-based) is started with.

        ``inherited``: this process's ``CUDA_VISIBLE_DEVICES`` (None = unset): GPU id ``k`` then means
        its ``k``-th entry. Without ``--gpus``: ``{}`` (the process inherits this one's devices).
        """
        if not self.groups:
            return {}
        entries = _entries(inherited)
        names = [entries[gpu] if entries is not None else str(gpu) for gpu in self.groups[index]]
        return {VISIBLE_DEVICES: ",".join(names)}

    def describe(self, jobs: int | None = None) -> list[str]:
        """Lines saying where the cells run (none for one process per cell without ``--gpus``);
        ``jobs``: the launcher processes actually started (fewer when there are fewer cells)."""
        jobs = self.jobs if jobs is None else jobs
        processes = (
            f"each cell trains with {self.nproc_per_cell} processes under torchrun"
            if self.nproc_per_cell > 1
            else "each cell trains in its launcher process"
        )
        if not self.groups:
            return (
                [f"Devices: {processes}; every process sees every device."] if self.nproc_per_cell > 1 else []
            )
        given = "; ".join(
            f"launcher {index + 1} gets GPU {','.join(map(str, group))}"
            for index, group in enumerate(self.groups[:jobs])
        )
        return [f"Devices: {given}; {processes}."]


def _entries(inherited: str | None) -> list[str] | None:
    if inherited is None or not inherited.strip():
        return None
    return [entry.strip() for entry in inherited.split(",")]


def parse_gpu_ids(text: str) -> tuple[int, ...]:
    """``"0,1,3"`` -> ``(0, 1, 3)``: comma-separated distinct non-negative integers, in the order given.

    Raises:
        ConfigError: an empty list or item, an item that is no integer, a negative or repeated id.
    """
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise ConfigError("--gpus needs a comma-separated list of GPU ids such as 0,1; it is empty.")
    ids: list[int] = []
    for item in items:
        if not re.fullmatch(r"-?[0-9]+", item):
            raise ConfigError(
                f"--gpus {text!r}: {item!r} is no GPU id; write the ids as non-negative integers "
                "separated by commas, e.g. --gpus 0,1."
            )
        gpu = int(item)
        if gpu < 0:
            raise ConfigError(f"--gpus {text!r}: the GPU id {gpu} is negative; GPU ids start at 0.")
        if gpu in ids:
            raise ConfigError(f"--gpus {text!r} names GPU {gpu} twice; give each GPU once.")
        ids.append(gpu)
    return tuple(ids)


def group_gpus(ids: tuple[int, ...], per_group: int) -> tuple[tuple[int, ...], ...]:
    """Consecutive groups of ``per_group`` ids: ``((0, 1), (2, 3))`` for ``(0, 1, 2, 3)`` and 2.

    Raises:
        ConfigError: ``len(ids)`` is not a multiple of ``per_group``.
    """
    if len(ids) % per_group:
        raise ConfigError(
            f"--gpus lists {len(ids)} GPUs, which do not split into groups of --nproc-per-cell "
            f"{per_group}; list a multiple of {per_group} GPUs."
        )
    return tuple(ids[start : start + per_group] for start in range(0, len(ids), per_group))


def _check_present(ids: tuple[int, ...], device_count: int) -> None:
    missing = [gpu for gpu in ids if gpu >= device_count]
    if not missing:
        return
    if device_count == 0:
        raise ConfigError(
            f"--gpus asks for {len(ids)} GPU{'s' if len(ids) != 1 else ''}, but PyTorch sees no GPU "
            "on this machine (torch.cuda.device_count() is 0); leave --gpus out to run on the CPU."
        )
    raise ConfigError(
        f"--gpus names GPU {missing[0]}, but PyTorch sees {device_count} GPU"
        f"{'s' if device_count != 1 else ''} here (ids 0 to {device_count - 1})."
    )


def plan_devices(gpus: str | None, jobs: int | None, nproc_per_cell: int, device_count: int) -> DevicePlan:
    """The :class:`DevicePlan` of the options ``--gpus``, ``--jobs`` and ``--nproc-per-cell``.

    Args:
        gpus: the ``--gpus`` text (``"0,1"``) or None.
        jobs: ``--jobs`` or None (then one per GPU group with ``gpus``, else 1).
        nproc_per_cell: ``--nproc-per-cell`` (a positive integer).
        device_count: the GPUs this process sees (``torch.cuda.device_count()``); read only with ``gpus``.

    Raises:
        ConfigError: one sentence on a bad list (:func:`parse_gpu_ids`), GPUs that are not there,
            GPUs that do not split into groups of ``nproc_per_cell``, or more jobs than groups.
    """
    nproc_per_cell = check_int(nproc_per_cell, "--nproc-per-cell", minimum=1, error=ConfigError)
    if jobs is not None:
        jobs = check_int(jobs, "The launcher count --jobs", minimum=1, error=ConfigError)
    if gpus is None:
        return DevicePlan((), 1 if jobs is None else jobs, nproc_per_cell)
    ids = parse_gpu_ids(gpus)
    _check_present(ids, check_int(device_count, "The GPU count", minimum=0, error=ConfigError))
    groups = group_gpus(ids, nproc_per_cell)
    if jobs is None:
        jobs = len(groups)
    if jobs > len(groups):
        raise ConfigError(
            f"--jobs {jobs} would run {jobs} cells at once on {len(groups)} GPU group"
            f"{'s' if len(groups) != 1 else ''} ({len(ids)} GPU{'s' if len(ids) != 1 else ''} of --gpus in "
            f"groups of "
            f"--nproc-per-cell {nproc_per_cell}); give at most --jobs {len(groups)} or more GPUs."
        )
    return DevicePlan(groups[:jobs], jobs, nproc_per_cell)


__all__ = ["VISIBLE_DEVICES", "DevicePlan", "group_gpus", "parse_gpu_ids", "plan_devices"]
