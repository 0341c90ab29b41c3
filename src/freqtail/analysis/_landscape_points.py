"""The points of a loss landscape: their values, which rank computes which, and the partial files
that let an interrupted landscape resume (:mod:`freqtail.analysis._partials`, whose units are the
grid points here).

Point ``p = i * G + j`` of a ``G x G`` grid sits at ``(alphas[i], betas[j])``. Each rank of a run
writes the points it knows (those it read at the start and those it computed) to its own partial
file, ``<stem>.rank<r><suffix>`` next to the ``partial_path`` it was given
(``landscape.partial.npz`` -> ``landscape.partial.rank0.npz``, ...), atomically. A later run, with
any number of processes, reads every such file whose fingerprint (weights, data, settings) matches
and skips every point one of them holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from freqtail.analysis import _partials
from freqtail.analysis._partials import UnitValues, partial_files, rank_partial_path, remove_partials
from freqtail.analysis._partials import owned_units as owned_points

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


class PointValues(UnitValues):
    """Loss and accuracy at every point of a grid, flattened to point order (``p = i * G + j``): the
    units of :mod:`freqtail.analysis._partials` are the grid points.

    Attributes:
        loss_lfc, loss_hfc: (P,) float64 mean cross-entropy on the LFC / HFC images.
        acc_lfc, acc_hfc: (P,) float64 accuracy in [0, 1].
        done: (P,) bool, the points whose values are known; the others hold 0.
    """

    loss_lfc = property(lambda self: self.arrays["loss_lfc"])
    loss_hfc = property(lambda self: self.arrays["loss_hfc"])
    acc_lfc = property(lambda self: self.arrays["acc_lfc"])
    acc_hfc = property(lambda self: self.arrays["acc_hfc"])

    @classmethod
    def empty(cls, points: int) -> PointValues:
        """``points`` points, none done, every value 0."""
        return cls({key: np.zeros(points) for key in _VALUE_KEYS}, np.zeros(points, dtype=bool))

    @property
    def points(self) -> int:
        return self.units

    def set_point(self, point: int, loss_lfc: float, acc_lfc: float, loss_hfc: float, acc_hfc: float) -> None:
        """Record the values of one point and mark it done."""
        self.set_unit(point, loss_lfc=loss_lfc, acc_lfc=acc_lfc, loss_hfc=loss_hfc, acc_hfc=acc_hfc)

    def flat(self) -> np.ndarray:
        """(4 P,) float64: loss_lfc, loss_hfc, acc_lfc, acc_hfc one after the other."""
        return np.concatenate([self.arrays[key] for key in _VALUE_KEYS])

    @classmethod
    def from_flat(cls, flat: np.ndarray, done: np.ndarray) -> PointValues:
        """The inverse of :meth:`flat`."""
        parts = np.split(np.asarray(flat, dtype=np.float64), len(_VALUE_KEYS))
        return cls(dict(zip(_VALUE_KEYS, parts, strict=True)), np.asarray(done, dtype=bool))

    def grids(self, grid: int) -> dict[str, np.ndarray]:
        """``{"loss_lfc": (G, G), ...}``: the values back on the grid (``[i, j]`` is point ``i * G + j``)."""
        return {key: self.arrays[key].reshape(grid, grid).copy() for key in _VALUE_KEYS}


def write_partial(path: Path, fingerprint: str, values: PointValues) -> None:
    """Save ``values`` (the points this rank knows) with the run's fingerprint, atomically."""
    _partials.write_partial(path, fingerprint, values, PARTIAL_FORMAT)


def read_partials(partial_path: str | os.PathLike, fingerprint: str, points: int) -> PointValues:
    """The union of the points held by every partial file of ``partial_path`` with this fingerprint
    and ``points`` points (:func:`freqtail.analysis._partials.read_partials`)."""
    return _partials.read_partials(partial_path, fingerprint, PointValues.empty(points))
