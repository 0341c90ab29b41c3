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
from freqtail.data.corruptions import CORRUPTIONS, check_corruption_name, check_severity, corrupt
from freqtail.errors import ConfigError, DatasetNotFoundError, InputError
from freqtail.images import check_uint8_images
from freqtail.io import atomic_path, atomic_save_npy, atomic_write_json, load_npy

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


def _file_has_shape(path: Path, shape: tuple[int, ...]) -> bool:
    """True if ``path`` is a uint8 .npy file of exactly ``shape`` and the full data size."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return array.dtype == np.uint8 and array.shape == shape


def write_corrupted_set(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | os.PathLike,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    seed: int = 0,
    progress: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a corrupted copy of a test set in the CIFAR-10-C layout (resumable).

    Args:
        images: uint8 (N, H, W, 3) source images; a memory-mapped array stays on disk (it is read
            in chunks of about 16 MiB, and each output file is filled through a memory map, so
            memory does not grow with N).
        labels: int (N,) labels.
        out_dir: destination folder (created).
        corruptions: names from :data:`~freqtail.data.corruptions.CORRUPTIONS`; default all 19.
        severities: which severities to write, in block order; default 1..5.
        seed: corruption seed (see :func:`~freqtail.data.corruptions.corrupt`).
        progress: show a progress bar on stderr.
        meta: JSON-serialisable description of the source stored under ``"source"`` in
            ``meta.json`` (e.g. ``{"dataset": "cifar10", "split": "test", "bass": None,
            "classes": [...]}``; ``"classes"`` is used by :func:`load_corrupted_set`).

    Every file is written atomically. Running again with the same source and settings skips the
    corruptions already finished (so an interrupted run resumes), and adds any new corruptions
    asked for. A folder written with other settings or from other images is refused.

    Returns:
        ``{"out_dir", "written", "skipped", "num_images", "severities", "seed", "seconds"}``.

    Raises:
        InputError: bad images, labels, names or severities. ConfigError: the folder holds a
        different set.
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
    if out.exists() and not out.is_dir():
        raise InputError(f"The output path {out} exists and is not a folder.")
    old = _read_meta(out) if out.is_dir() else None
    if old is None:
        foreign = (
            sorted(p.name for p in out.glob("*.npy") if p.name != CLEAN_FILE and not p.name.startswith("."))
            if out.is_dir()
            else []
        )
        if foreign:
            raise ConfigError(
                f"The folder {out} already holds .npy files ({', '.join(foreign[:3])}) without a freqtail "
                "meta.json; choose an empty --out folder."
            )
        done: list[str] = []
    else:
        for key in _RESUME_KEYS:
            if old.get(key) != settings[key]:
                raise ConfigError(
                    f"The folder {out} already holds a corrupted set made with other settings "
                    f"({key.replace('_', ' ')} {old.get(key)!r}, not {settings[key]!r}); "
                    "choose another output folder or delete it."
                )
        done = [x for x in old.get("corruptions", []) if x in CORRUPTIONS]

    record = dict(settings)
    record["freqtail_version"] = __version__
    record["source"] = dict(meta or {})
    record["corruptions"] = done
    out.mkdir(parents=True, exist_ok=True)
    tiled_labels = np.tile(labels.astype(np.int64), len(levels))
    labels_path = out / LABELS_FILE
    try:
        existing_labels = load_npy(labels_path, "labels", mmap=True) if labels_path.exists() else None
    except InputError:  # damaged: rewrite it
        existing_labels = None
    if existing_labels is None or not np.array_equal(existing_labels, tiled_labels):
        atomic_save_npy(labels_path, tiled_labels)
    atomic_write_json(out / META_FILE, record)

    full_shape = (len(levels) * n, h, w, c)
    skipped = [x for x in names if x in done and _file_has_shape(out / f"{x}.npy", full_shape)]
    todo = [x for x in names if x not in skipped]
    step = max(1, _CHUNK_VALUES // (h * w * c))
    with tqdm(
        total=len(todo) * len(levels) * n, unit="img", disable=not progress, desc="corrupt", smoothing=0.1
    ) as bar:
        for name in todo:
            bar.set_description(name)
            with atomic_path(out / f"{name}.npy") as tmp:
                target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=full_shape)
                for block, severity in enumerate(levels):
                    for begin in range(0, n, step):
                        part = np.asarray(images[begin : begin + step])
                        result = corrupt(part, name, severity, seed=int(seed), start_index=begin)
                        target[block * n + begin : block * n + begin + len(part)] = result
                        bar.update(len(part))
                target.flush()
                del target
            done = [x for x in CORRUPTIONS if x in done or x == name]
            record["corruptions"] = done
            atomic_write_json(out / META_FILE, record)
    return {
        "out_dir": str(out),
        "written": todo,
        "skipped": skipped,
        "num_images": n,
        "severities": levels,
        "seed": int(seed),
        "seconds": round(time.perf_counter() - start, 3),
    }


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
