"""CIFAR-10 and CIFAR-100 in the standard "python version" layout, read without executing code.

Expected layout under ``root`` (the folder the official archives unpack into; ``root`` may also be
the inner folder itself)::

    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/train, test, meta

Each batch is a pickled dict with ``data`` (uint8 (N, 3072): 1024 red, 1024 green, 1024 blue values,
row-major 32 x 32) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). Files are read with the
restricted unpickler of :mod:`freqtail.data.safe_pickle`. :func:`write_cifar_batches` writes the same
layout (plain pickles of dicts, lists and arrays) for converted variants and tests.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import utils as torchvision_utils

from freqtail.data.cache_files import DIGEST_FILE, check_array, read_digest_file
from freqtail.data.safe_pickle import safe_load_pickle
from freqtail.errors import DamagedFileError, DatasetNotFoundError
from freqtail.io import atomic_write_bytes


@dataclass(frozen=True)
class CifarLayout:
    """File names of one CIFAR variant."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    archive_url: str
    archive_name: str
    archive_md5: str


CIFAR_LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        num_classes=10,
        archive_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive_name="cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": CifarLayout(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
        archive_url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive_name="cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}


def _how_to_get(name: str) -> str:
    layout = CIFAR_LAYOUTS[name]
    return (
        f"download and unpack {layout.archive_url} there (or run 'freqtail download {name} --data-root DIR')"
    )


def cifar_folder(name: str, root: str | os.PathLike | None) -> Path:
    """The ``cifar-10-batches-py`` / ``cifar-100-python`` folder under ``root`` (or ``root`` itself)."""
    layout = CIFAR_LAYOUTS[name]
    if root is None:
        raise DatasetNotFoundError(
            f"The {name} dataset needs a data root: pass --data-root DIR (root=DIR) where DIR holds "
            f"{layout.folder}/; {_how_to_get(name)}."
        )
    root = Path(root).expanduser()
    if (root / layout.meta_file).is_file() and root.name == layout.folder:
        return root
    return root / layout.folder


def _read_batch(path: Path, name: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_load_pickle(path, what=f"{name} batch file")
    if not isinstance(batch, dict):
        raise DatasetNotFoundError(
            f"The {name} batch file {path} is damaged (it holds no dict); download it again."
        )
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DatasetNotFoundError(
            f"The {name} batch file {path} is damaged: 'data' must be a uint8 array of shape (N, 3072), "
            f"found {type(data).__name__} {shape}; download it again."
        )
    stored = labels
    try:
        labels = np.asarray(stored)  # no dtype: int64 would truncate 1.5 and parse "3"
    except (TypeError, ValueError):  # a ragged list
        labels = np.zeros((0, 0))
    if labels.ndim == 1 and len(labels) == len(data) and labels.dtype.kind not in "iu" and len(labels):
        values = stored.tolist() if isinstance(stored, np.ndarray) else list(stored)
        example = next(v for v in values if not isinstance(v, int) or isinstance(v, bool))
        raise DatasetNotFoundError(
            f"The {name} batch file {path} is damaged: {label_key!r} must hold integer labels, found "
            f"{example!r}; download it again."
        )
    labels = labels.astype(np.int64)
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetNotFoundError(
            f"The {name} batch file {path} is damaged: {label_key!r} must list one label per image "
            f"({len(data)} images); download it again."
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar_classes(name: str, folder: Path) -> list[str]:
    """Class names from the meta file (``label_names`` / ``fine_label_names``)."""
    layout = CIFAR_LAYOUTS[name]
    meta = safe_load_pickle(folder / layout.meta_file, what=f"{name} meta file")
    if isinstance(meta, dict):
        meta = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in meta.items()}
    names = meta.get(layout.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise DatasetNotFoundError(
            f"The {name} meta file {folder / layout.meta_file} is damaged (no {layout.names_key!r} list); "
            "download it again."
        )
    classes = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    if len(classes) != layout.num_classes or len(set(classes)) != len(classes):
        raise DatasetNotFoundError(
            f"The {name} meta file {folder / layout.meta_file} is damaged: its {layout.names_key!r} lists "
            f"{len(classes)} names ({len(set(classes))} different) where {name} has {layout.num_classes} "
            "classes; download it again."
        )
    return classes


def load_cifar(
    name: str, split: str, root: str | os.PathLike | None, download: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load one split of CIFAR-10 (``name="cifar10"``) or CIFAR-100 (``"cifar100"``, fine labels).

    Args:
        split: "train" or "test".
        root: folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/`` (or that folder).
        download: fetch and unpack the official archive first if the folder is missing
            (torchvision's downloader, MD5-checked; needs network access).

    Returns:
        ``(images uint8 (N, 32, 32, 3), labels int64 (N,), class names)``.

    A folder with the digest record of a converted copy (``freqtail-digests.json``, written by
    :func:`freqtail.data.bass_copies.write_bass_dataset`) has every batch checked against it.

    Raises:
        DatasetNotFoundError: missing folder or file (one sentence: what, where, how to get it),
            truncated, damaged or unsafe file; :class:`~freqtail.errors.DamagedFileError` (a
            subclass) where a converted copy's batch differs from its recorded digest.
    """
    layout = CIFAR_LAYOUTS[name]
    folder = cifar_folder(name, root)
    if download and not folder.is_dir():
        torchvision_utils.download_and_extract_archive(
            layout.archive_url, str(folder.parent), filename=layout.archive_name, md5=layout.archive_md5
        )
    files = layout.train_files if split == "train" else layout.test_files
    missing = [f for f in (*files, layout.meta_file) if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"The {name} dataset was not found: expected {', '.join(missing)} in {folder}; "
            f"{_how_to_get(name)}."
        )
    classes = read_cifar_classes(name, folder)
    parts = [_read_batch(folder / f, name, layout.label_key) for f in files]
    digests = read_digest_file(folder)  # recorded by `freqtail bass --dataset` in the copies it writes
    if digests is not None:
        advice = f"write the copy again with `freqtail bass --dataset {name} --out DIR`"
        for file_name, (images, labels) in zip(files, parts, strict=True):
            for part, array in (("images", images), ("labels", labels)):
                expected = digests.get(f"{file_name}:{part}")
                if expected is None:
                    raise DamagedFileError(
                        f"The file {folder / DIGEST_FILE} is damaged (no digest for {file_name}); {advice}.",
                        folder / DIGEST_FILE,
                    )
                check_array(array, expected, folder / file_name, advice)
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DatasetNotFoundError(
            f"The {name} dataset in {folder} is damaged: labels range over {labels.min()}..{labels.max()} "
            f"but there are {len(classes)} classes; download it again."
        )
    return images, labels, classes


def _dump(obj) -> bytes:
    # Protocol 2, like the official files: readable by any Python and by the restricted unpickler.
    return pickle.dumps(obj, protocol=2)


def write_cifar_batches(
    name: str,
    out_root: str | os.PathLike,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
) -> Path:
    """Write CIFAR data in the official python layout under ``out_root/<folder>/`` (atomically per file).

    Args:
        splits: ``{"train": (images uint8 (N, 32, 32, 3), labels (N,)), "test": (...)}``; the train split
            of CIFAR-10 is cut into 5 equal batches like the original.
        classes: class names for the meta file.

    Returns:
        the written folder (``cifar-10-batches-py`` or ``cifar-100-python``).
    """
    layout = CIFAR_LAYOUTS[name]
    folder = Path(out_root) / layout.folder
    for split, (images, labels) in splits.items():
        files = layout.train_files if split == "train" else layout.test_files
        data = np.ascontiguousarray(
            np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
        )
        labels = [int(v) for v in labels]
        chunks = np.array_split(np.arange(len(data)), len(files))
        for file_name, index in zip(files, chunks, strict=True):
            batch = {
                "batch_label": f"{split} batch {file_name}",
                layout.label_key: [labels[i] for i in index],
                "data": data[index],
                "filenames": [f"{split}_{i:06d}.png" for i in index],
            }
            atomic_write_bytes(folder / file_name, _dump(batch))
    meta = {layout.names_key: list(classes)}
    if name == "cifar10":
        meta.update(num_cases_per_batch=len(splits.get("train", ([], []))[1]) // 5, num_vis=3072)
    atomic_write_bytes(folder / layout.meta_file, _dump(meta))
    return folder
