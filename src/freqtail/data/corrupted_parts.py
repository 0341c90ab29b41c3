"""The work of writing a corrupted set, cut into units that any number of processes share.

A unit is one (corruption, severity, chunk of images): chunk ``begin .. begin + step`` of the source
images corrupted at one severity. The chunks are fixed by the image shape alone (about 16 MiB of
source images each), never by the number of processes, and every corruption seeds its draws from
the image index (``corrupt(..., start_index=begin)``), so a unit's bytes do not depend on who
computes it or in which order: the finished set is a one-process run's, byte for byte.

Unit ``k`` (in the order corruption, severity, chunk) goes to rank ``k % world_size``. Each unit is
written once, atomically, as its own part file::

    <c_dir>/.parts/<corruption>/s<severity>-<begin>.npy    uint8 (chunk, H, W, 3)

Part files are plain ``.npy`` files on the shared file system of the output folder (ranks on several
machines need one; no shared memory map is written by two processes). A part that exists with the
right shape and dtype is not computed again, so a run killed anywhere resumes from its finished
units, with any number of processes. When every unit of a corruption exists, rank 0 assembles
``<corruption>.npy`` (part by part: memory does not grow with the image count), hashing it on the way
(the SHA-256 digest of the whole file and of each severity block, :mod:`freqtail.data.cache_files`),
and removes the corruption's parts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freqtail.data.cache_files import ArrayDigest
from freqtail.data.corruptions import corrupt
from freqtail.io import atomic_path, atomic_save_npy

#: The hidden folder of part files in a corrupted-set folder.
PARTS_DIR = ".parts"
#: Source values per unit: about 16 MiB of uint8 images.
UNIT_VALUES = 1 << 24


@dataclass(frozen=True)
class Unit:
    """One part of the work: ``corruption`` at ``severity`` (block ``block`` of the output file) on
    source images ``begin .. begin + count``."""

    corruption: str
    severity: int
    block: int
    begin: int
    count: int

    def path(self, c_dir: Path) -> Path:
        return c_dir / PARTS_DIR / self.corruption / f"s{self.severity}-{self.begin:09d}.npy"


def chunk_size(image_shape: Sequence[int]) -> int:
    """Images per unit for images of ``(H, W, C)``: at least one, about :data:`UNIT_VALUES` values."""
    return max(1, UNIT_VALUES // int(np.prod(image_shape)))


def plan_units(corruptions: Sequence[str], severities: Sequence[int], n: int, step: int) -> list[Unit]:
    """Every unit of ``corruptions`` x ``severities`` x chunks of ``step`` of ``n`` images, in order."""
    return [
        Unit(name, int(severity), block, begin, min(step, n - begin))
        for name in corruptions
        for block, severity in enumerate(severities)
        for begin in range(0, n, step)
    ]


def rank_units(units: Sequence[Unit], rank: int, world_size: int) -> list[Unit]:
    """The units of ``rank`` of ``world_size`` processes: ``units[k]`` for ``k % world_size == rank``."""
    return [unit for k, unit in enumerate(units) if k % world_size == rank]


def part_is_complete(path: Path, shape: tuple[int, ...]) -> bool:
    """True if ``path`` is a uint8 ``.npy`` of exactly ``shape`` whose data is all there (a part file,
    or a corrupted set's assembled ``<corruption>.npy``)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return array.dtype == np.uint8 and array.shape == shape


def write_units(
    units: Sequence[Unit],
    images: np.ndarray,
    c_dir: Path,
    seed: int,
    on_unit: Callable[[Unit], None] | None = None,
) -> int:
    """Compute and write every unit of ``units`` whose part file is not complete yet.

    Args:
        units: the units of this process.
        images: uint8 (N, H, W, 3) source images (a memory map stays on disk).
        c_dir: the corrupted-set folder.
        seed: the corruption seed.
        on_unit: called after each unit (written or found), e.g. to advance a progress bar.

    Returns:
        the number of units computed (not found complete).
    """
    computed = 0
    for unit in units:
        path = unit.path(c_dir)
        shape = (unit.count, *images.shape[1:])
        if not part_is_complete(path, shape):
            part = np.asarray(images[unit.begin : unit.begin + unit.count])
            corrupted = corrupt(part, unit.corruption, unit.severity, seed=int(seed), start_index=unit.begin)
            atomic_save_npy(path, corrupted)
            computed += 1
        if on_unit is not None:
            on_unit(unit)
    return computed


def missing_units(units: Sequence[Unit], c_dir: Path, image_shape: Sequence[int]) -> list[Unit]:
    """The units of ``units`` without a complete part file."""
    return [unit for unit in units if not part_is_complete(unit.path(c_dir), (unit.count, *image_shape))]


@dataclass(frozen=True)
class Assembled:
    """A corruption file :func:`assemble` wrote: its path, the digest of the whole array and of each
    severity block (``{severity: digest}``, uint8 (N, H, W, 3) each, in block order)."""

    path: Path
    digest: ArrayDigest
    block_digests: dict[int, ArrayDigest]


def assemble(corruption: str, units: Sequence[Unit], c_dir: Path, full_shape: tuple[int, ...]) -> Assembled:
    """Write ``<corruption>.npy`` of ``full_shape`` atomically from the part files of its ``units``,
    then remove the corruption's parts. Returns the file written with its digests.

    The parts are appended in file order (severity block, then image chunk) after the ``.npy``
    header NumPy itself writes for that shape, with plain writes and no memory map: a full disk is
    then an ``OSError`` (one sentence) rather than the SIGBUS of a map the disk cannot back. The
    bytes are hashed as they are written (SHA-256 of the C-order bytes, as
    :func:`freqtail.data.cache_files.array_digest` hashes an array), so recording the digests costs
    no second read.
    """
    target_path = c_dir / f"{corruption}.npy"
    ordered = sorted(units, key=lambda unit: (unit.block, unit.begin))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
    whole = hashlib.sha256()
    blocks: dict[int, tuple[int, Any]] = {}  # block -> (severity, its running SHA-256)
    with atomic_path(target_path) as tmp:
        with open(tmp, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {**header, "shape": tuple(full_shape)})
            for unit in ordered:
                data = memoryview(np.ascontiguousarray(np.load(unit.path(c_dir), mmap_mode="r"))).cast("B")
                handle.write(data)
                whole.update(data)
                blocks.setdefault(unit.block, (unit.severity, hashlib.sha256()))[1].update(data)
            handle.flush()
            os.fsync(handle.fileno())
    shutil.rmtree(c_dir / PARTS_DIR / corruption, ignore_errors=True)
    dtype = np.dtype(np.uint8).str
    block_shape = (full_shape[0] // max(1, len(blocks)), *full_shape[1:])
    return Assembled(
        target_path,
        ArrayDigest(whole.hexdigest(), dtype, tuple(full_shape)),
        {severity: ArrayDigest(h.hexdigest(), dtype, block_shape) for severity, h in blocks.values()},
    )


def by_corruption(units: Sequence[Unit]) -> Iterator[tuple[str, list[Unit]]]:
    """``(corruption, its units)`` in the order of ``units``."""
    names = list(dict.fromkeys(unit.corruption for unit in units))
    for name in names:
        yield name, [unit for unit in units if unit.corruption == name]


__all__ = [
    "PARTS_DIR",
    "Assembled",
    "Unit",
    "assemble",
    "by_corruption",
    "chunk_size",
    "missing_units",
    "part_is_complete",
    "plan_units",
    "rank_units",
    "write_units",
]
