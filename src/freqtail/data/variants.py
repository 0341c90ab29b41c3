"""BaSS variants of datasets (the paper's "CIFAR10-B as a new dataset" protocol, §4.2).

* :func:`cached_bass_arrays` converts the train and test images of an array dataset (embedded,
  CIFAR-10/100) once with :func:`freqtail.bass.convert_uint8_images` and caches the result under
  ``cache_dir()/variants/<name>-<key>/``. The key hashes the source images (both splits), the BaSS
  settings and the BaSS implementation version, so a changed source, strength or implementation
  makes a new entry and an unchanged one is reused.
* :class:`FileVariantCache` does the same per image file for folder datasets (Tiny-ImageNet,
  ImageNet, Restricted-ImageNet): an image is resized to the working resolution of the augmentation
  preset first (BaSS is not resolution-invariant: BaSS-then-resize would remove much of what BaSS
  adds), converted on first read and cached as a lossless PNG keyed by its path, size, modification
  time and the resize.

Written copies of whole datasets (``freqtail bass --dataset``) are :mod:`freqtail.data.bass_copies`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from freqtail import bass
from freqtail.data.cache_files import (
    DIGESTS_KEY,
    load_array,
    read_verified_png,
    recorded_digests,
    report_rebuilt,
    save_array,
    write_verified_png,
)
from freqtail.data.embedded import SPLITS
from freqtail.errors import DamagedFileError
from freqtail.io import atomic_write_json, cache_dir

#: Layout version of the variant cache itself (bump if the cached format changes).
#: 2: every cached array's digest recorded in meta.json, every PNG's in its ``freqtail-sha256`` text.
VARIANT_FORMAT = "2"


def bass_implementation_version() -> str:
    """A string that changes whenever the BaSS implementation changes.

    ``freqtail.bass.BASS_VERSION`` if the BaSS module declares one, else a hash of the source of the
    modules that compute the conversion (``freqtail/bass/core.py`` and ``convert.py``).
    """
    declared = getattr(bass, "BASS_VERSION", None)
    if declared:
        return str(declared)
    digest = hashlib.sha256()
    folder = Path(bass.__file__).parent
    for module in ("core.py", "convert.py"):
        path = folder / module
        if path.is_file():
            digest.update(path.read_bytes())
    return "src-" + digest.hexdigest()[:12]


def _settings(strength: float) -> dict:
    return {
        "strength": float(strength),
        "profile": "amplitude",
        "bass_version": bass_implementation_version(),
        "format": VARIANT_FORMAT,
    }


def source_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the named arrays (names, shapes, dtypes and bytes), in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def convert_images(images: np.ndarray, strength: float, progress: bool) -> tuple[np.ndarray, int]:
    """BaSS of uint8 (N, H, W, C) images -> (converted, images with a degenerate channel).

    The caches and written copies of datasets convert through here."""
    # An attribute of freqtail.bass looked up at call time, so the converter can be replaced (tests
    # count its calls).
    return bass.convert_uint8_images(images, strength=strength, progress=progress)


def variant_folder(name: str, key: str) -> Path:
    return cache_dir() / "variants" / f"{name}-{key}"


def cached_bass_arrays(
    name: str, sources: dict[str, np.ndarray], strength: float = 1.0, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict]:
    """Converted copies of ``sources`` (``{split: uint8 (N, H, W, C)}``), from the cache or made now.

    ``strength`` is an already checked BaSS strength in [0, 1] (:func:`freqtail.data.build_dataset`
    checks it; :func:`freqtail.bass.convert_uint8_images` refuses a bad one too).

    Returns:
        ``({split: converted uint8 images}, meta)`` where ``meta`` holds ``key``, ``folder``,
        ``degenerate`` (per split) and ``reused`` (True when read from the cache).
    """
    settings = _settings(strength)
    key_source = source_digest(sources) + repr(sorted(settings.items()))
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    folder = variant_folder(name, key)
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        try:
            return _read_entry(folder, sources)
        except DamagedFileError as err:
            report_rebuilt(err, f"the BaSS cache entry {folder}")
    out, degenerate, digests = {}, {}, {}
    for split in sorted(sources, key=lambda s: SPLITS.index(s) if s in SPLITS else 99):
        out[split], degenerate[split] = convert_images(sources[split], strength, progress)
        digests[f"{split}_images.npy"] = save_array(folder / f"{split}_images.npy", out[split]).to_json()
    meta = {
        "dataset": name,
        "key": key,
        **settings,
        "degenerate": degenerate,
        "counts": {s: int(len(a)) for s, a in out.items()},
        DIGESTS_KEY: digests,
    }
    atomic_write_json(meta_path, meta)
    return out, {**meta, "folder": str(folder), "reused": False}


def _read_entry(folder: Path, sources: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """The converted arrays of the cache entry ``folder`` and its meta, every array checked against
    its recorded digest and against the shape of its source.

    Raises:
        DamagedFileError: ``meta.json`` unreadable or without the digests, or an array damaged.
    """
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = None
    digests = recorded_digests(meta)
    names = {split: f"{split}_images.npy" for split in sources}
    if digests is None or not set(names.values()) <= set(digests):
        raise DamagedFileError(
            f"The file {meta_path} is damaged (no digest record of its arrays).", meta_path
        )
    out = {}
    for split, file_name in names.items():
        expected = digests[file_name]
        if expected.shape != sources[split].shape or expected.dtype != np.dtype(np.uint8).str:
            raise DamagedFileError(
                f"The file {meta_path} is damaged (it records {file_name} as {expected.dtype} "
                f"{expected.shape}, but the source {split} images are uint8 {sources[split].shape}).",
                meta_path,
            )
        out[split] = load_array(folder / file_name, expected)
    return out, {**meta, "folder": str(folder), "reused": True}


class FileVariantCache:
    """Per-file BaSS conversion with an on-disk cache (``source_hook`` of folder datasets).

    Converted working-resolution images are stored losslessly as PNG under
    ``cache_dir()/variants/<name>-files-<settings key>/<xx>/<file key>.png``; the settings key hashes
    the BaSS settings and ``resize_key`` (the working resize: a cached image is the BaSS of the
    *resized* image), the file key the source's absolute path, size and modification time, so an
    edited source is converted again. Safe with several DataLoader workers (atomic writes; identical
    content).

    Args:
        name: dataset name (folder name of the cache entry).
        strength: BaSS weight exponent in [0, 1], already checked (by :func:`freqtail.data.build_dataset`).
        resize_key: :attr:`freqtail.data.augment.WorkingResize.key` of the resize applied before BaSS.
    """

    def __init__(self, name: str, strength: float = 1.0, resize_key: str = "stored") -> None:
        self.strength = float(strength)
        settings = {**_settings(self.strength), "resize": str(resize_key)}
        key = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:16]
        self.folder = cache_dir() / "variants" / f"{name}-files-{key}"

    def path_for(self, source: str) -> Path:
        stat = os.stat(source)
        key = hashlib.sha256(
            f"{os.path.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        ).hexdigest()
        return self.folder / key[:2] / f"{key[2:34]}.png"

    def __call__(self, source: str, load) -> np.ndarray:
        """The BaSS image of file ``source``: uint8 (H, W, 3) from the cache, or ``convert_images(load())``.

        ``load()`` returns the decoded file at the working resolution, uint8 (H, W, 3); it is only
        called on a cache miss.
        """
        target = self.path_for(source)
        if target.is_file():
            try:
                return read_verified_png(target)
            except DamagedFileError as err:
                report_rebuilt(err, "it")
        converted, _ = convert_images(load()[None], self.strength, progress=False)
        write_verified_png(target, converted[0])
        return converted[0]

    def __getstate__(self):  # picklable for DataLoader workers
        return self.__dict__
