"""The work of writing a corrupted set, cut into units that any number of processes share.

A unit is one (corruption, severity, chunk of images): chunk ``begin .. begin + step`` of the source
images corrupted at one severity. The chunks are fixed by the image shape alone (about 16 MiB of
source images each), never by the number of processes, and every corruption seeds its draws from
the image index (``corrupt(..., start_index=begin)``), so a unit's bytes do not depend on who
computes it or in which order: the finished set is a one-process run's, byte for byte.

The units still to compute are shared by cost, not by position (:func:`share_units`): corruptions
differ about tenfold in cost per image, so a round robin could deal one process the expensive ones.
Every process computes the same shares from the same list (the pending units, which rank 0 finds
before anyone writes and shares), with no further communication. Each unit is written once,
atomically, as its own part file, then the digest of its array (:mod:`freqtail.data.cache_files`)::

    <c_dir>/.parts/<corruption>/s<severity>-<begin>.npy    uint8 (chunk, H, W, 3)
    <c_dir>/.parts/<corruption>/s<severity>-<begin>.json   its ArrayDigest, written after it

Part files are plain ``.npy`` files on the shared file system of the output folder (ranks on several
machines need one; no shared memory map is written by two processes). A part whose digest record
exists and whose file has the recorded shape is not computed again, so a run killed anywhere resumes
from its finished units, with any number of processes. When every unit of a corruption exists, one
process assembles ``<corruption>.npy`` (:func:`assemble`; part by part: memory does not grow with
the image count), checking each part against its digest and hashing the file on the way (the SHA-256
digest of the whole file and of each severity block), and removes the corruption's parts. A part
whose bytes changed since it was written (it may have waited on disk for a resumed run) is removed
and refused, so the set's digests are those of what the corruptions computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freqtail.data.cache_files import ArrayDigest, save_array
from freqtail.data.corruptions import corrupt
from freqtail.errors import DamagedFileError
from freqtail.io import atomic_path, atomic_write_json

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

    def digest_path(self, c_dir: Path) -> Path:
        """The record of the part's :class:`~freqtail.data.cache_files.ArrayDigest`, written after it."""
        return self.path(c_dir).with_suffix(".json")


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


#: Relative cost of corrupting one 32x32 image: microseconds per image on one thread, averaged over
#: severities 1-5 (1e6 / the images per second of docs/benchmarks.md, "Corruptions: speed",
#: ``benchmarks/corruption_speed.py``). Only the ratios matter: they decide how units are shared,
#: never what they hold. A unit of other images costs this times its pixels per 32 x 32.
IMAGE_COST_US: dict[str, float] = {
    "gaussian_noise": 58,
    "shot_noise": 206,
    "impulse_noise": 62,
    "speckle_noise": 50,
    "defocus_blur": 43,
    "glass_blur": 118,
    "motion_blur": 261,
    "zoom_blur": 311,
    "gaussian_blur": 45,
    "snow": 176,
    "frost": 28,
    "fog": 43,
    "brightness": 265,
    "spatter": 168,
    "contrast": 43,
    "elastic_transform": 548,
    "pixelate": 55,
    "jpeg_compression": 138,
    "saturate": 260,
}
#: What a process pays once before its first unit of a corruption, in the same microseconds for 32 x 32
#: images: frost builds its textures (:func:`freqtail.data.corruptions.textures.frost_sheets`: 0.2-0.3 s
#: measured for 32 x 32 images, whose sheets are 192 x 192; they grow with the image area).
SETUP_COST_US: dict[str, float] = {"frost": 300_000}
_REFERENCE_PIXELS = 32 * 32


def lpt_shares(
    costs: Sequence[float],
    world_size: int,
    kinds: Sequence[str] | None = None,
    setup_costs: Mapping[str, float] | None = None,
) -> list[list[int]]:
    """Share items among ``world_size`` processes by cost, longest processing time first (LPT).

    An item of kind ``k`` also costs ``setup_costs[k]`` on a process that holds no item of that kind
    yet. Two greedy schedules are made, and the one whose heaviest load is lighter is returned (ties:
    the first): the items one by one, and the same with the items of each kind that has a setup cost
    kept together as one bundle (its setup then paid once). In each, the groups, the most costly first
    (ties: the earliest item first), go to the process whose load they raise least (ties: the lowest
    rank).

    Args:
        costs: the cost of each item, >= 0 (any unit).
        world_size: the number of processes, >= 1.
        kinds: the kind of each item (default: none has a setup cost).
        setup_costs: ``{kind: cost}`` paid once per process by its first item of that kind.

    Returns:
        ``shares[rank]``: the indices of the items of each rank, ascending. Deterministic: every process
        computes the same shares from the same arguments. The heaviest load is at most that of the
        one-by-one schedule, which is at most its mean load (setups included) plus the largest item
        with its setup (the bound of greedy list scheduling).
    """
    setup_costs = setup_costs or {}
    kinds = list(kinds) if kinds is not None else [""] * len(costs)
    singles = [[k] for k in range(len(costs))]
    bundled_kinds = [kind for kind in dict.fromkeys(kinds) if setup_costs.get(kind, 0.0) > 0]
    bundles = [[k for k in range(len(costs)) if kinds[k] == kind] for kind in bundled_kinds]
    bundled = [[k] for k in range(len(costs)) if kinds[k] not in bundled_kinds] + bundles
    schedules = [
        _greedy(singles, costs, kinds, setup_costs, world_size, order_by_setups=False),
        _greedy(bundled, costs, kinds, setup_costs, world_size, order_by_setups=True),
    ]
    _, shares = min(schedules, key=lambda schedule: max(schedule[0]))
    return [sorted(share) for share in shares]


def _greedy(
    groups: Sequence[Sequence[int]],
    costs: Sequence[float],
    kinds: Sequence[str],
    setup_costs: Mapping[str, float],
    world_size: int,
    order_by_setups: bool,
) -> tuple[list[float], list[list[int]]]:
    """One greedy schedule of :func:`lpt_shares`: ``(loads, shares)``, each group on one process, the
    groups ordered by their cost (with their setups if ``order_by_setups``: bundles)."""

    def setups(group: Sequence[int]) -> set[str]:
        return {kinds[k] for k in group if setup_costs.get(kinds[k], 0.0) > 0}

    def weight(group: Sequence[int]) -> float:
        setup = sum(setup_costs[x] for x in setups(group)) if order_by_setups else 0.0
        return sum(costs[k] for k in group) + setup

    loads = [0.0] * world_size
    held: list[set[str]] = [set() for _ in range(world_size)]
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for group in sorted(groups, key=lambda group: (-weight(group), min(group))):
        work = sum(costs[k] for k in group)
        raised = [
            load + work + sum(setup_costs[x] for x in setups(group) - kinds_held)
            for load, kinds_held in zip(loads, held, strict=True)
        ]
        rank = min(range(world_size), key=lambda r: (raised[r], r))
        loads[rank] = raised[rank]
        held[rank] |= setups(group)
        shares[rank].extend(group)
    return loads, shares


def unit_cost(unit: Unit, image_shape: Sequence[int]) -> float:
    """The estimated cost of ``unit`` on images of ``(H, W, C)``, in microseconds (:data:`IMAGE_COST_US`)."""
    return IMAGE_COST_US[unit.corruption] * unit.count * _area(image_shape)


def share_units(units: Sequence[Unit], world_size: int, image_shape: Sequence[int]) -> list[list[Unit]]:
    """The units of each of ``world_size`` processes (``shares[rank]``, each in the order of ``units``),
    balanced by estimated cost (:func:`lpt_shares` with :func:`unit_cost` and :data:`SETUP_COST_US`).

    The shares depend on ``units`` alone (and the image shape), never on the process or on timing, so
    every process computes the same ones; give it the units still to compute, as every process sees
    them (a unit another process has meanwhile written must not change them).
    """
    area = _area(image_shape)
    setups = {name: cost * area for name, cost in SETUP_COST_US.items()}
    costs = [unit_cost(unit, image_shape) for unit in units]
    shares = lpt_shares(costs, world_size, [unit.corruption for unit in units], setups)
    return [[units[k] for k in share] for share in shares]


def _area(image_shape: Sequence[int]) -> float:
    """Pixels of an ``(H, W, ...)`` image per 32 x 32."""
    return int(image_shape[0]) * int(image_shape[1]) / _REFERENCE_PIXELS


def recorded_part(unit: Unit, c_dir: Path, image_shape: Sequence[int]) -> ArrayDigest | None:
    """The digest recorded for ``unit``'s part if the record and the part file are complete (a uint8
    ``.npy`` of the unit's shape, all its data there), else None. Reads headers only."""
    shape = (unit.count, *(int(n) for n in image_shape))
    try:
        digest = ArrayDigest.from_json(json.loads(unit.digest_path(c_dir).read_text(encoding="utf-8")))
        array = np.load(unit.path(c_dir), mmap_mode="r", allow_pickle=False)
    except (OSError, UnicodeDecodeError, ValueError, EOFError):
        return None
    if digest is None or digest.shape != shape or digest.dtype != np.dtype(np.uint8).str:
        return None
    return digest if array.dtype == np.uint8 and array.shape == shape else None


def write_units(
    units: Sequence[Unit],
    images: np.ndarray,
    c_dir: Path,
    seed: int,
    on_unit: Callable[[Unit], None] | None = None,
) -> int:
    """Compute and write every unit of ``units`` whose part file is not complete yet (the part, then
    the record of its digest).

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
        if recorded_part(unit, c_dir, images.shape[1:]) is None:
            part = np.asarray(images[unit.begin : unit.begin + unit.count])
            corrupted = corrupt(part, unit.corruption, unit.severity, seed=int(seed), start_index=unit.begin)
            atomic_write_json(unit.digest_path(c_dir), save_array(unit.path(c_dir), corrupted).to_json())
            computed += 1
        if on_unit is not None:
            on_unit(unit)
    return computed


def missing_units(units: Sequence[Unit], c_dir: Path, image_shape: Sequence[int]) -> list[Unit]:
    """The units of ``units`` without a complete part file and its digest record."""
    return [unit for unit in units if recorded_part(unit, c_dir, image_shape) is None]


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
    no second read. Each part is checked against the digest recorded when it was written.

    Raises:
        DamagedFileError: a part without its record or whose bytes differ from it (the part and its
            record are removed first, so the same command run again computes it again).
    """
    target_path = c_dir / f"{corruption}.npy"
    ordered = sorted(units, key=lambda unit: (unit.block, unit.begin))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
    whole = hashlib.sha256()
    blocks: dict[int, tuple[int, Any]] = {}  # block -> (severity, its running SHA-256)
    try:
        with atomic_path(target_path) as tmp:
            with open(tmp, "wb") as handle:
                np.lib.format.write_array_header_1_0(handle, {**header, "shape": tuple(full_shape)})
                for unit in ordered:
                    expected = recorded_part(unit, c_dir, full_shape[1:])
                    data = memoryview(np.ascontiguousarray(np.load(unit.path(c_dir), mmap_mode="r"))).cast(
                        "B"
                    )
                    if expected is None or hashlib.sha256(data).hexdigest() != expected.sha256:
                        raise _DamagedPart(unit)  # not an OSError, which atomic_path words as a failed write
                    handle.write(data)
                    whole.update(data)
                    blocks.setdefault(unit.block, (unit.severity, hashlib.sha256()))[1].update(data)
                handle.flush()
                os.fsync(handle.fileno())
    except _DamagedPart as damaged:
        _refuse_part(damaged.unit, c_dir)
    shutil.rmtree(c_dir / PARTS_DIR / corruption, ignore_errors=True)
    dtype = np.dtype(np.uint8).str
    block_shape = (full_shape[0] // max(1, len(blocks)), *full_shape[1:])
    return Assembled(
        target_path,
        ArrayDigest(whole.hexdigest(), dtype, tuple(full_shape)),
        {severity: ArrayDigest(h.hexdigest(), dtype, block_shape) for severity, h in blocks.values()},
    )


class _DamagedPart(Exception):
    def __init__(self, unit: Unit) -> None:
        super().__init__(unit)
        self.unit = unit


def _refuse_part(unit: Unit, c_dir: Path) -> None:
    """Remove a part that is not what was written (and its record); raise the refusal."""
    path = unit.path(c_dir)
    path.unlink(missing_ok=True)
    unit.digest_path(c_dir).unlink(missing_ok=True)
    raise DamagedFileError(
        f"The part file {path} is damaged (its bytes differ from the SHA-256 digest recorded when it was "
        "written); it was removed: run the same command again to compute it again.",
        path,
    )


def by_corruption(units: Sequence[Unit]) -> Iterator[tuple[str, list[Unit]]]:
    """``(corruption, its units)`` in the order of ``units``."""
    names = list(dict.fromkeys(unit.corruption for unit in units))
    for name in names:
        yield name, [unit for unit in units if unit.corruption == name]


__all__ = [
    "IMAGE_COST_US",
    "PARTS_DIR",
    "SETUP_COST_US",
    "Assembled",
    "Unit",
    "assemble",
    "by_corruption",
    "chunk_size",
    "lpt_shares",
    "missing_units",
    "plan_units",
    "recorded_part",
    "share_units",
    "unit_cost",
    "write_units",
]
