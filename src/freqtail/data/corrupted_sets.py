"""Corrupted test sets in the CIFAR-10-C layout: writing them (resumably) and reading them.

Layout of a ``-C`` folder (the published CIFAR-10-C / CIFAR-100-C, and what freqtail writes)::

    <dir>/<corruption>.npy   uint8 (S * N, H, W, 3): S severity blocks of the same N images
    <dir>/labels.npy         int (S * N,): the N labels repeated S times
    <dir>/meta.json          freqtail only: severities, seed, source, versions, finished corruptions

The published sets have no ``meta.json`` and hold severities 1..5 in order; freqtail's may hold
any listed subset, in the listed order, and say so in ``meta.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from freqtail import __version__
from freqtail.checks import check_int
from freqtail.data.arrays import ArrayDataset
from freqtail.data.corrupted_parts import (
    PARTS_DIR,
    assemble,
    by_corruption,
    chunk_size,
    missing_units,
    part_is_complete,
    plan_units,
    rank_units,
    write_units,
)
from freqtail.data.corruptions import CORRUPTIONS, check_corruption_name, check_severity
from freqtail.distributed import (
    DistContext,
    all_reduce_counts,
    barrier,
    raise_together,
    run_on_main_and_share,
)
from freqtail.errors import ConfigError, DatasetNotFoundError, InputError
from freqtail.images import check_uint8_images
from freqtail.io import atomic_save_npy, atomic_write_json, load_npy, sweep_leftover_temporaries
from freqtail.locks import Lock, try_lock

META_FILE = "meta.json"
LABELS_FILE = "labels.npy"
CLEAN_FILE = "clean.npy"  # the uncorrupted source images, written by `freqtail corrupt` (not by the library)
FORMAT = "freqtail-corrupted-set"
# Also versions the corruption outputs: a folder written with another version is not resumed.
# 2: glass_blur copies instead of swapping and spatter calls OpenCV, as the original script.
FORMAT_VERSION = 3  # 3: every corruption computes and truncates in the original script's precision
DEFAULT_SEVERITIES = (1, 2, 3, 4, 5)
# Settings that must agree for a folder to be resumed (everything else may change).
_RESUME_KEYS = (
    "format",
    "format_version",
    "num_images",
    "image_shape",
    "severities",
    "seed",
    "source_digest",
)
_HOW_TO_GET = (
    "download CIFAR-10-C (zenodo.org/records/2535967) or CIFAR-100-C (zenodo.org/records/3555552) and unpack "
    "it there, or generate one with `freqtail corrupt --dataset NAME --out DIR`"
)
_CHUNK_VALUES = 1 << 24  # source images read per step: about 16 MiB


def _check_severities(severities: Sequence[int]) -> list[int]:
    values = [check_severity(s) for s in severities]
    if not values:
        raise InputError("At least one corruption severity is needed.")
    if len(set(values)) != len(values):
        raise InputError(f"Corruption severities must not repeat, got {values}.")
    return values


def _source_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """BLAKE2b of the source images and labels, read in chunks (memory-mapped sources stay on disk)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((images.shape, str(images.dtype))).encode())
    step = max(1, _CHUNK_VALUES // int(np.prod(images.shape[1:])))
    for begin in range(0, len(images), step):
        digest.update(np.ascontiguousarray(images[begin : begin + step]).tobytes())
    digest.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return digest.hexdigest()


def _read_meta(c_dir: Path) -> dict[str, Any] | None:
    path = c_dir / META_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetNotFoundError(f"The corrupted-set description {path} is damaged ({err}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetNotFoundError(f"The file {path} is not a freqtail corrupted-set description.")
    return meta


def write_corrupted_set(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | os.PathLike,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    seed: int = 0,
    progress: bool = True,
    meta: Mapping[str, Any] | None = None,
    context: DistContext | None = None,
) -> dict[str, Any]:
    """Write a corrupted copy of a test set in the CIFAR-10-C layout (resumable; shared by processes).

    Args:
        images: uint8 (N, H, W, 3) source images; a memory-mapped array stays on disk (it is read
            in chunks of about 16 MiB, and each output file is assembled chunk by chunk, so memory
            does not grow with N).
        labels: int (N,) labels.
        out_dir: destination folder (created).
        corruptions: names from :data:`~freqtail.data.corruptions.CORRUPTIONS`; default all 19.
        severities: which severities to write, in block order; default 1..5.
        seed: corruption seed (see :func:`~freqtail.data.corruptions.corrupt`).
        progress: show a progress bar on stderr.
        meta: JSON-serialisable description of the source stored under ``"source"`` in
            ``meta.json`` (e.g. ``{"dataset": "cifar10", "split": "test", "bass": None,
            "classes": [...]}``; ``"classes"`` is used by :func:`load_corrupted_set`).
        context: this process's place among the processes sharing the work (torchrun,
            :func:`freqtail.distributed.init_distributed`); None = one process. Every process calls
            this with the same arguments; the (corruption, severity, image chunk) units are shared
            round robin (:mod:`freqtail.data.corrupted_parts`), rank 0 alone writes the folder's
            files (``meta.json`` records ``world_size``), and the set is one process's byte for byte.

    Every file is written atomically. Running again with the same source and settings skips the
    corruptions already finished and the units already written (so an interrupted run resumes,
    with any number of processes), and adds any new corruptions asked for. A folder written with
    other settings or from other images is refused. Rank 0 holds the folder's lock
    (:data:`WRITE_LOCK`) while the set is written and first sweeps what killed writes left.

    Returns:
        ``{"out_dir", "written", "skipped", "num_images", "severities", "seed", "world_size", "units",
        "units_computed", "seconds"}``: ``units`` of (corruption, severity, image chunk) to write,
        ``units_computed`` of them computed by this call (by all processes; the others were found).

    Raises:
        InputError: bad images, labels, names or severities. ConfigError: the folder holds a
        different set. LockedError: another process writes the folder.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    images = check_uint8_images(images, what="source images", allow_single=False)
    n, h, w, c = images.shape
    if c != 3:
        raise InputError(f"Corruptions need RGB images with 3 channels, but the source images have {c}.")
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"The labels must be an integer array with one label per image ({n}), not {labels.dtype} "
            f"of shape {labels.shape}."
        )
    names = list(CORRUPTIONS) if corruptions is None else [check_corruption_name(x) for x in corruptions]
    if not names:
        raise InputError("At least one corruption name is needed.")
    names = list(dict.fromkeys(names))
    levels = _check_severities(severities)
    seed = check_int(seed, "The corruption seed", minimum=0)
    try:
        json.dumps(dict(meta or {}), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(f"The corrupted-set meta must be JSON-serialisable ({err}).") from None
    settings = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "num_images": n,
        "image_shape": [h, w, c],
        "severities": levels,
        "seed": int(seed),
        "source_digest": _source_digest(images, labels),
    }
    context = context or DistContext()
    full_shape = (len(levels) * n, h, w, c)

    def decide() -> dict[str, Any]:
        """Rank 0, holding the folder's lock: check the folder, sweep, write labels and meta, plan."""
        held.append(try_lock(out / WRITE_LOCK, purpose="writing a corrupted set", refusal=_LOCKED))
        done = _prepare_folder(out, settings)
        record.update(settings, freqtail_version=__version__, source=dict(meta or {}), corruptions=done)
        record["world_size"] = context.world_size
        atomic_write_json(out / META_FILE, record)  # first: a folder with labels but no meta is foreign
        _write_labels(out / LABELS_FILE, np.tile(labels.astype(np.int64), len(levels)))
        skipped = [x for x in names if x in done and part_is_complete(out / f"{x}.npy", full_shape)]
        return {"skipped": skipped, "done": done, "source_digest": settings["source_digest"]}

    held: list[Lock] = []
    record: dict[str, Any] = {}
    try:
        decision = run_on_main_and_share(decide, context)
        if decision["source_digest"] != settings["source_digest"]:
            failure: Exception | None = InputError(
                f"Process {context.rank} sees other source images than process 0 (digest "
                f"{settings['source_digest']}, not {decision['source_digest']}); give every process the same "
                "data."
            )
        else:
            failure = None
        raise_together(failure, context)
        todo = [x for x in names if x not in decision["skipped"]]
        units = plan_units(todo, levels, n, chunk_size((h, w, c)))
        mine = rank_units(units, context.rank, context.world_size)
        show = progress and context.is_main
        done = list(decision["done"])
        pending = dict(by_corruption(units))  # corruption -> its units, until assembled
        computed = 0

        def finish(name: str) -> None:
            """Rank 0: assemble ``name`` from the parts (all there) and record it as finished."""
            nonlocal done
            assemble(name, pending.pop(name), out, full_shape)
            done = [x for x in CORRUPTIONS if x in done or x == name]
            record["corruptions"] = done
            atomic_write_json(out / META_FILE, record)

        with tqdm(total=sum(u.count for u in mine), unit="img", disable=not show, desc="corrupt") as bar:
            for unit in mine:
                bar.set_description(unit.corruption)
                computed += write_units([unit], images, out, seed, _advance(bar))
                # Rank 0 assembles a corruption as soon as its parts are all there (with one process:
                # after its last unit, so each corruption is usable once done); the rest at the end.
                if context.is_main and not missing_units(pending[unit.corruption], out, (h, w, c)):
                    finish(unit.corruption)
        barrier(context)

        def finish_the_rest() -> list[str]:
            for name in list(pending):
                missing = missing_units(pending[name], out, (h, w, c))
                if missing:
                    raise InputError(
                        f"{len(missing)} part(s) of {name} in {out / PARTS_DIR} are missing or damaged after "
                        "every process finished; run the same command again to redo them."
                    )
                finish(name)
            parts = out / PARTS_DIR
            if parts.is_dir() and not any(parts.iterdir()):
                parts.rmdir()
            return done

        run_on_main_and_share(finish_the_rest, context)
        (computed,) = all_reduce_counts([computed], context)
    finally:
        for lock in held:
            lock.release()
    return {
        "out_dir": str(out),
        "written": todo,
        "skipped": decision["skipped"],
        "num_images": n,
        "severities": levels,
        "seed": int(seed),
        "world_size": context.world_size,
        "units": len(units),
        "units_computed": int(computed),
        "seconds": round(time.perf_counter() - start, 3),
    }


#: The lock a writer of a corrupted-set folder holds (rank 0 of its processes), and its refusal.
WRITE_LOCK = ".freqtail-corrupt.lock"
_LOCKED = "The corrupted-set folder {path} is being written by {holder}; wait for it or choose another --out."


def _advance(bar: Any):
    """A unit callback that advances ``bar`` by the unit's images."""
    return lambda unit: bar.update(unit.count)


def _prepare_folder(out: Path, settings: Mapping[str, Any]) -> list[str]:
    """Check that ``out`` holds nothing or this set, sweep what killed writes left; the finished
    corruptions. Called holding :data:`WRITE_LOCK`."""
    if out.exists() and not out.is_dir():
        raise InputError(f"The output path {out} exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    sweep_leftover_temporaries(
        [out / META_FILE, out / LABELS_FILE, *(out / f"{name}.npy" for name in CORRUPTIONS)]
    )
    for leftover in (out / PARTS_DIR).glob("*/.*.tmp.npy"):
        leftover.unlink(missing_ok=True)
    old = _read_meta(out)
    if old is None:
        arrays = (p.name for p in out.glob("*.npy") if not p.name.startswith("."))
        foreign = sorted(name for name in arrays if name != CLEAN_FILE)
        if foreign:
            raise ConfigError(
                f"The folder {out} already holds .npy files ({', '.join(foreign[:3])}) without a freqtail "
                "meta.json; choose an empty --out folder."
            )
        return []
    for key in _RESUME_KEYS:
        if old.get(key) != settings[key]:
            raise ConfigError(
                f"The folder {out} already holds a corrupted set made with other settings "
                f"({key.replace('_', ' ')} {old.get(key)!r}, not {settings[key]!r}); "
                "choose another output folder or delete it."
            )
    return [x for x in old.get("corruptions", []) if x in CORRUPTIONS]


def _write_labels(path: Path, tiled: np.ndarray) -> None:
    try:
        existing = load_npy(path, "labels", mmap=True) if path.exists() else None
    except InputError:  # damaged: rewrite it
        existing = None
    if existing is None or not np.array_equal(existing, tiled):
        atomic_save_npy(path, tiled)


def _require_dir(c_dir: str | os.PathLike) -> Path:
    path = Path(c_dir)
    if not path.is_dir():
        raise DatasetNotFoundError(f"No corrupted test set folder at {path}; {_HOW_TO_GET}.")
    return path


def available_corruptions(c_dir: str | os.PathLike) -> list[str]:
    """Names of the corruptions present in a ``-C`` folder, in the paper's order.

    Raises:
        DatasetNotFoundError: the folder does not exist.
    """
    path = _require_dir(c_dir)
    return [name for name in CORRUPTIONS if (path / f"{name}.npy").is_file()]


def corrupted_set_info(c_dir: str | os.PathLike) -> dict[str, Any]:
    """Describe a ``-C`` folder: ``{"corruptions", "severities", "meta"}`` (``meta`` None if published).

    Severities come from ``meta.json`` when present, else they are the published 1..5.
    """
    path = _require_dir(c_dir)
    meta = _read_meta(path)
    severities = list(meta["severities"]) if meta else list(DEFAULT_SEVERITIES)
    return {"corruptions": available_corruptions(path), "severities": severities, "meta": meta}


def _load(path: Path, what: str) -> np.ndarray:
    try:
        return load_npy(path, what, mmap=True)
    except InputError as err:
        raise DatasetNotFoundError(str(err)) from None


def load_corrupted_set(
    c_dir: str | os.PathLike, corruption: str, severity: int, classes: Sequence[str] | None = None
) -> ArrayDataset:
    """The images of one corruption at one severity from a ``-C`` folder, as an :class:`ArrayDataset`.

    Works on the published CIFAR-10-C / CIFAR-100-C folders (no ``meta.json``: severities 1..5)
    and on folders written by :func:`write_corrupted_set`. Images stay memory-mapped.

    Args:
        c_dir: the folder.
        corruption: a file name stem, e.g. ``"gaussian_noise"``.
        severity: 1..5 (must be one the folder holds).
        classes: class names; default the ``"classes"`` recorded in ``meta.json``, else "0", "1", ...

    Raises:
        DatasetNotFoundError: missing folder, corruption file or labels, or damaged files.
        InputError: a severity the folder does not hold.
    """
    severity = check_severity(severity)
    path = _require_dir(c_dir)
    meta = _read_meta(path)
    severities = list(meta["severities"]) if meta else list(DEFAULT_SEVERITIES)
    if severity not in severities:
        raise InputError(
            f"The corrupted set at {path} holds severities {', '.join(map(str, severities))}, not {severity}."
        )
    file = path / f"{corruption}.npy"
    if not file.is_file():
        present = available_corruptions(path)
        listing = ", ".join(present) if present else "none"
        raise DatasetNotFoundError(
            f"The corrupted set at {path} has no {corruption}.npy (present: {listing}); {_HOW_TO_GET}."
        )
    labels_file = path / LABELS_FILE
    if not labels_file.is_file():
        raise DatasetNotFoundError(f"The corrupted set at {path} has no {LABELS_FILE}; {_HOW_TO_GET}.")
    images = _load(file, f"{corruption} images")
    labels = _load(labels_file, "corruption labels")
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise DatasetNotFoundError(
            f"The file {file} must hold uint8 images of shape (S*N, H, W, C), "
            f"not {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(images) or len(images) % len(severities):
        raise DatasetNotFoundError(
            f"The corrupted set at {path} is inconsistent: {file.name} holds {len(images)} images and "
            f"{LABELS_FILE} {labels.shape} labels for {len(severities)} severities."
        )
    per_block = len(images) // len(severities)
    block = severities.index(severity)
    part = slice(block * per_block, (block + 1) * per_block)
    block_labels = np.asarray(labels[part]).astype(np.int64)
    if classes is None:
        recorded = (meta or {}).get("source", {}).get("classes")
        if recorded:
            classes = [str(x) for x in recorded]
        else:
            classes = [str(i) for i in range(int(np.asarray(labels).max()) + 1)]
    return ArrayDataset(
        images[part], block_labels, classes, name=f"{path.name}/{corruption}/severity-{severity}"
    )
