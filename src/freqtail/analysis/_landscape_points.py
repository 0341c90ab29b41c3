"""The points of a loss landscape: their values, which rank computes which, and the partial files
that let an interrupted landscape resume.

Point ``p = i * G + j`` of a ``G x G`` grid sits at ``(alphas[i], betas[j])``. Each rank of a run
writes the points it knows (those it read at the start and those it computed) to its own partial
file, ``<stem>.rank<r><suffix>`` next to the ``partial_path`` it was given
(``landscape.partial.npz`` -> ``landscape.partial.rank0.npz``, ...), atomically. A later run, with
any number of processes, reads every such file whose fingerprint (weights, data, settings) matches
and skips every point one of them holds.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from freqtail.io import atomic_write

#: Version of the partial-file layout; part of the fingerprint, so files of another layout (the
#: row-wise ``rows_done`` files of layout 1) are never resumed.
PARTIAL_FORMAT = 2

__all__ = [
    "PARTIAL_FORMAT",
    "PointValues",
    "owned_points",
    "partial_files",
    "rank_partial_path",
    "read_partials",
    "remove_partials",
    "write_partial",
]

_VALUE_KEYS = ("loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc")


@dataclass
class PointValues:
    """Loss and accuracy at every point of a grid, flattened to point order (``p = i * G + j``).

    Attributes:
        loss_lfc, loss_hfc: (P,) float64 mean cross-entropy on the LFC / HFC images.
        acc_lfc, acc_hfc: (P,) float64 accuracy in [0, 1].
        done: (P,) bool, the points whose values are known; the others hold 0.
    """

    loss_lfc: np.ndarray
    loss_hfc: np.ndarray
    acc_lfc: np.ndarray
    acc_hfc: np.ndarray
    done: np.ndarray

    @classmethod
    def empty(cls, points: int) -> PointValues:
        """``points`` points, none done, every value 0."""
        return cls(*(np.zeros(points) for _ in _VALUE_KEYS), done=np.zeros(points, dtype=bool))

    @property
    def points(self) -> int:
        return int(self.done.size)

    def set_point(self, point: int, loss_lfc: float, acc_lfc: float, loss_hfc: float, acc_hfc: float) -> None:
        """Record the values of one point and mark it done."""
        self.loss_lfc[point], self.acc_lfc[point] = loss_lfc, acc_lfc
        self.loss_hfc[point], self.acc_hfc[point] = loss_hfc, acc_hfc
        self.done[point] = True

    def take(self, other: PointValues, where: np.ndarray) -> None:
        """Copy ``other``'s values at the points ``where`` ((P,) bool) and mark them done."""
        for key in _VALUE_KEYS:
            getattr(self, key)[where] = getattr(other, key)[where]
        self.done |= where

    def flat(self) -> np.ndarray:
        """(4 P,) float64: loss_lfc, loss_hfc, acc_lfc, acc_hfc one after the other."""
        return np.concatenate([getattr(self, key) for key in _VALUE_KEYS])

    @classmethod
    def from_flat(cls, flat: np.ndarray, done: np.ndarray) -> PointValues:
        """The inverse of :meth:`flat`."""
        parts = np.split(np.asarray(flat, dtype=np.float64), len(_VALUE_KEYS))
        return cls(*parts, done=np.asarray(done, dtype=bool))

    def grids(self, grid: int) -> dict[str, np.ndarray]:
        """``{"loss_lfc": (G, G), ...}``: the values back on the grid (``[i, j]`` is point ``i * G + j``)."""
        return {key: getattr(self, key).reshape(grid, grid).copy() for key in _VALUE_KEYS}


def owned_points(pending: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """The points ``rank`` computes: every ``world_size``-th of the sorted ``pending`` points, from
    position ``rank`` on.

    Every point costs the same (the same images through the same model), so dealing them out like
    cards gives every rank the same share to within one point; dealing the *pending* points (not
    the whole grid) keeps that true on a rerun after one rank died, whose unfinished points are then
    shared by all. In a fresh run (all points pending) rank ``r`` computes the points ``p`` with
    ``p % world_size == r``.
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


def write_partial(path: Path, fingerprint: str, values: PointValues) -> None:
    """Save ``values`` (the points this rank knows) with the run's fingerprint, atomically."""
    arrays = {key: getattr(values, key) for key in _VALUE_KEYS}
    arrays.update(fingerprint=np.asarray(fingerprint), format=np.int64(PARTIAL_FORMAT), done=values.done)
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def _read_one(path: Path, fingerprint: str, points: int) -> PointValues | None:
    """The values in one partial file, or None if it is unreadable or of another run."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["fingerprint"]) != fingerprint:
                return None
            values = PointValues(*(archive[key] for key in _VALUE_KEYS), done=archive["done"].astype(bool))
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    if any(getattr(values, key).shape != (points,) for key in (*_VALUE_KEYS, "done")):
        return None
    return values


def read_partials(partial_path: str | os.PathLike, fingerprint: str, points: int) -> PointValues:
    """The union of the points held by every partial file of ``partial_path`` with this fingerprint
    (files of other runs and unreadable files are ignored). A point in several files has the same
    values in each (it was computed the same way), so which file it is taken from does not matter."""
    merged = PointValues.empty(points)
    for path in partial_files(partial_path):
        values = _read_one(path, fingerprint, points)
        if values is not None:
            merged.take(values, values.done & ~merged.done)
    return merged


def remove_partials(partial_path: str | os.PathLike) -> None:
    """Delete every rank's partial file and a single-file partial of the older layout at ``partial_path``.

    A file that cannot be deleted is left: it is harmless (a rerun finds every point done).
    """
    for path in [*partial_files(partial_path), Path(partial_path)]:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
