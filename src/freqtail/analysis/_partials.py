"""Per-rank partial files that let an interrupted analysis resume: the one owner of that machinery
(the landscape's grid points, the sensitivity's global batches and the heat map's frequencies use it).

An analysis is cut into *units* (a grid point, a global batch of images, a frequency) whose values do
not depend on which process computed them or when. The values of all U units are held in a
:class:`UnitValues`: named arrays whose first axis is the unit, and a (U,) ``done`` mask. Each rank
writes the units it knows (those it read at the start and those it computed) to its own partial file,
``<stem>.rank<r><suffix>`` next to the ``partial_path`` it was given (``heatmap.partial.npz`` ->
``heatmap.partial.rank0.npz``, ...), atomically, every so often (:class:`PartialWriter`). A later
run, with any number of processes, reads every such file whose fingerprint (weights, data, settings)
matches, computes only the units none of them holds (:func:`owned_units` deals those out), and joins
every rank's units exactly (:meth:`UnitValues.gather`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from freqtail.distributed import DistContext, all_reduce_counts, all_reduce_sum
from freqtail.errors import FreqtailError
from freqtail.io import atomic_write

__all__ = [
    "FIRST_WRITE_GUESS_SECONDS",
    "WRITE_SHARE",
    "PartialWriter",
    "UnitValues",
    "owned_units",
    "partial_files",
    "rank_partial_path",
    "read_partials",
    "remove_partials",
    "resume_units",
    "run_fingerprint",
    "write_partial",
]

#: A rank writes its partial file once the units computed since its last write took at least
#: 1 / WRITE_SHARE times as long as that write did: the writes cost at most WRITE_SHARE of the
#: compute time, whatever a unit costs and however slow the disk is (an fsync'd write took 1 to
#: 12 ms on the development machine), and a crash loses at most that much compute.
WRITE_SHARE = 0.01
#: What the first write is assumed to cost until one is measured: the first write comes after
#: half a second of compute, so an analysis that takes less writes nothing unless interrupted.
FIRST_WRITE_GUESS_SECONDS = 0.005

#: Keys of a partial file that are not values.
_RESERVED = ("fingerprint", "format", "done")


@dataclass
class UnitValues:
    """The values of U units: ``arrays[name]`` of shape (U, ...) (float64, int64 or bool), the rows
    of the units not done hold 0.

    Attributes:
        arrays: the named values, first axis the unit.
        done: (U,) bool, the units whose values are known.
    """

    arrays: dict[str, np.ndarray]
    done: np.ndarray

    @classmethod
    def empty(cls, units: int, layout: Mapping[str, tuple[tuple[int, ...], type]]) -> UnitValues:
        """``units`` units, none done; ``layout[name] = (shape of one unit's value, dtype)``."""
        arrays = {name: np.zeros((units, *shape), dtype=dtype) for name, (shape, dtype) in layout.items()}
        return cls(arrays, np.zeros(units, dtype=bool))

    @property
    def units(self) -> int:
        return int(self.done.size)

    def like(self) -> UnitValues:
        """As many units with the same names, shapes and dtypes, none done."""
        return type(self)(
            {name: np.zeros_like(array) for name, array in self.arrays.items()}, np.zeros_like(self.done)
        )

    def set_unit(self, unit: int, **values: np.ndarray | float) -> None:
        """Record every value of one unit and mark it done."""
        if set(values) != set(self.arrays):
            raise ValueError(f"unit values {sorted(values)} do not match {sorted(self.arrays)}")
        for name, value in values.items():
            self.arrays[name][unit] = value
        self.done[unit] = True

    def take(self, other: UnitValues, where: np.ndarray) -> None:
        """Copy ``other``'s values of the units ``where`` ((U,) bool) and mark them done."""
        for name, array in self.arrays.items():
            array[where] = other.arrays[name][where]
        self.done |= where

    def gather(self, contributes: np.ndarray, context: DistContext, what: str) -> UnitValues:
        """Every rank's contributed units ((U,) bool ``contributes``) on every rank, exactly: each
        unit is contributed by exactly one rank and the others add 0 (x + 0 == x; integers in int64).

        Raises:
            FreqtailError: a unit contributed by no rank or by several (a bug; ``what`` names the analysis).
        """
        counts = all_reduce_counts(contributes.astype(np.int64), context)
        if not np.all(counts == 1):
            raise FreqtailError(
                f"The {what}'s processes did not compute every unit exactly once ({int(counts.sum())} "
                f"results for {counts.size} units); this is a bug in freqtail."
            )
        total = {}
        for name, array in self.arrays.items():
            mine = np.where(contributes.reshape(-1, *[1] * (array.ndim - 1)), array, 0)
            if array.dtype.kind == "f":
                summed = np.asarray(all_reduce_sum(mine.astype(np.float64).ravel().tolist(), context))
            else:
                summed = all_reduce_counts(mine.astype(np.int64).ravel(), context)
            total[name] = summed.reshape(array.shape).astype(array.dtype)
        return type(self)(total, counts == 1)


def run_fingerprint(model: nn.Module, tensors: tuple[torch.Tensor, ...], settings: tuple) -> str:
    """A digest of the model's weights and buffers, the (CPU) ``tensors`` (images, labels) and the
    settings' ``repr``: a partial file is resumed only if all match."""
    digest = hashlib.sha256(repr(settings).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def owned_units(pending: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """The units ``rank`` computes: every ``world_size``-th of the sorted ``pending`` units, from
    position ``rank`` on.

    Units of an analysis cost about the same, so dealing them out like cards gives every rank the
    same share to within one unit; dealing the *pending* units (not all of them) keeps that true on
    a rerun after one rank died, whose unfinished units are then shared by all. In a fresh run (all
    units pending) rank ``r`` computes the units ``u`` with ``u % world_size == r``.
    """
    return np.sort(np.asarray(pending, dtype=np.int64))[rank::world_size]


def rank_partial_path(partial_path: str | os.PathLike, rank: int) -> Path:
    """The partial file of ``rank``: ``<stem>.rank<rank><suffix>`` beside ``partial_path``."""
    path = Path(partial_path)
    return path.with_name(f"{path.stem}.rank{int(rank)}{path.suffix}")


def partial_files(partial_path: str | os.PathLike) -> list[Path]:
    """Every rank's partial file of ``partial_path`` (whatever number of processes wrote them), by rank."""
    path = Path(partial_path)
    pattern = re.compile(re.escape(path.stem) + r"\.rank(\d+)" + re.escape(path.suffix))
    if not path.parent.is_dir():
        return []
    found = []
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_file():
            found.append((int(match.group(1)), candidate))
    return [candidate for _, candidate in sorted(found)]


def write_partial(path: Path, fingerprint: str, values: UnitValues, layout_format: int) -> None:
    """Save ``values`` (the units this rank knows) with the run's fingerprint, atomically."""
    arrays = dict(values.arrays)
    arrays.update(fingerprint=np.asarray(fingerprint), format=np.int64(layout_format), done=values.done)
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def _read_one(path: Path, fingerprint: str, template: UnitValues) -> UnitValues | None:
    """The values in one partial file, or None if it is unreadable, of another run or another layout."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["fingerprint"]) != fingerprint:
                return None
            arrays = {name: archive[name] for name in template.arrays}
            done = archive["done"]
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    if done.shape != template.done.shape or any(
        arrays[name].shape != array.shape or arrays[name].dtype.kind != array.dtype.kind
        for name, array in template.arrays.items()
    ):
        return None
    return type(template)(arrays, done.astype(bool))


def read_partials(partial_path: str | os.PathLike, fingerprint: str, template: UnitValues) -> UnitValues:
    """The union of the units held by every partial file of ``partial_path`` with this fingerprint
    and ``template``'s names and shapes (files of other runs and unreadable files are ignored). A unit
    in several files has the same values in each (it was computed the same way), so which file it is
    taken from does not matter."""
    merged = template.like()
    for path in partial_files(partial_path):
        values = _read_one(path, fingerprint, template)
        if values is not None:
            merged.take(values, values.done & ~merged.done)
    return merged


def remove_partials(partial_path: str | os.PathLike) -> None:
    """Delete every rank's partial file and a single-file partial of an older layout at ``partial_path``.

    A file that cannot be deleted is left: it is harmless (a rerun finds every unit done).
    """
    for path in [*partial_files(partial_path), Path(partial_path)]:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def resume_units(
    partial_path: Path | None, fingerprint: str, template: UnitValues, context: DistContext
) -> tuple[UnitValues, np.ndarray]:
    """``(values, agreed)``: the units of the partial files this rank read (``template`` itself when
    ``partial_path`` is None) and the (U,) bool units *every* rank read.

    Call it on every rank (a collective). It also makes every rank finish reading before any rank
    writes, so all read the same files. Only agreed units should be skipped (rank 0 contributes them
    to :meth:`UnitValues.gather`); any other unit is computed again, so ranks that see different
    folders still agree.
    """
    values = read_partials(partial_path, fingerprint, template) if partial_path is not None else template
    agreed = all_reduce_counts(values.done.astype(np.int64), context) == context.world_size
    return values, agreed


class PartialWriter:
    """Writes this rank's partial file after a unit when the compute since the last write is worth
    it (:data:`WRITE_SHARE`), and on :meth:`flush`. ``path`` None: writes nothing."""

    def __init__(self, path: Path | None, fingerprint: str, values: UnitValues, layout_format: int):
        self.path, self.fingerprint, self.values = path, fingerprint, values
        self.layout_format = layout_format
        self.compute_seconds = 0.0
        self.write_seconds = FIRST_WRITE_GUESS_SECONDS  # then the time the last write took
        self.unsaved = 0

    def unit_done(self, seconds: float) -> None:
        """A unit's values are in ``values``; it took ``seconds`` to compute."""
        self.unsaved += 1
        self.compute_seconds += seconds
        if self.compute_seconds * WRITE_SHARE >= self.write_seconds:
            self.flush()

    def flush(self) -> None:
        if self.path is None or not self.unsaved:
            return
        start = time.perf_counter()
        write_partial(self.path, self.fingerprint, self.values, self.layout_format)
        self.write_seconds = time.perf_counter() - start
        self.compute_seconds, self.unsaved = 0.0, 0
