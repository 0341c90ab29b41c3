"""Cached arrays are verified, never trusted: written with their digest, checked when read back.

Every array freqtail caches or writes for itself to read back (the embedded dataset, the BaSS
variant caches, the BaSS-converted copies of ``freqtail bass --dataset``, the -C sets of ``freqtail
corrupt`` and ``evaluate --generate-c`` and their part files) goes through this module:

* :func:`save_array` writes an ``.npy`` file atomically and returns its :class:`ArrayDigest`
  (SHA-256 of the array's bytes in C order, with its dtype and shape). The caller stores
  ``digest.to_json()`` in the entry's description (``meta.json``, written last, under
  :data:`DIGESTS_KEY`), so a description never names an array that is not complete.
* :func:`load_array` reads the file back and checks it against the recorded digest; any difference
  (a changed byte, a truncated or zeroed file, another dtype or shape) raises
  :class:`~freqtail.errors.DamagedFileError`, one sentence naming the file. The caller then rebuilds
  where it has the source (:func:`report_rebuilt` says so in one line) or lets the error refuse.

Every read is checked, not only the first one after a write: damage that keeps the file's size and
modification time (a disk or copy error, a restored timestamp) must be caught as well, and hashing
is cheap beside what a cached array is read for (SHA-256 runs at about 1.8 GB/s on one core here,
~0.08 s for CIFAR-10's 184 MB of images; ``benchmarks/data_speed.py`` measures it). Memory-mapped
arrays are hashed in chunks of :data:`CHUNK_BYTES`, so a check does not read a large file into memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from freqtail.errors import DamagedFileError, FreqtailError, InputError
from freqtail.io import atomic_path, atomic_save_npy, atomic_write_json, load_npy

#: Key of the ``{file name: digest}`` mapping in a cache entry's ``meta.json``.
DIGESTS_KEY = "arrays"
#: File of :func:`write_digest_file` in a folder of files that cannot carry their own digest.
DIGEST_FILE = "freqtail-digests.json"
DIGEST_FILE_FORMAT = "freqtail-digests"
#: PNG text key holding the SHA-256 of a PNG's pixels (uint8 (H, W, 3), C order).
PNG_DIGEST_KEY = "freqtail-sha256"
#: Bytes hashed per step (memory-mapped arrays are read this much at a time).
CHUNK_BYTES = 1 << 24
#: The logger of the one-line notes that a damaged cache file was rebuilt (a bare Python prints its
#: WARNING records to stderr as the message alone).
logger = logging.getLogger("freqtail.cache")


@dataclass(frozen=True)
class ArrayDigest:
    """What an array was when it was written: SHA-256 of its bytes in C order, dtype and shape.

    ``dtype`` is NumPy's ``dtype.str`` (``"|u1"`` for uint8, ``"<i8"`` for little-endian int64).
    """

    sha256: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"sha256": self.sha256, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, value: object) -> ArrayDigest | None:
        """The digest recorded as :meth:`to_json` wrote it, or None if ``value`` is not one."""
        if not isinstance(value, Mapping):
            return None
        sha256, dtype, shape = value.get("sha256"), value.get("dtype"), value.get("shape")
        if not (isinstance(sha256, str) and len(sha256) == 64 and isinstance(dtype, str)):
            return None
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            return None
        return cls(sha256, dtype, tuple(shape))


def array_digest(array: np.ndarray) -> ArrayDigest:
    """The :class:`ArrayDigest` of ``array`` (any dtype and shape; a memory map is read in chunks)."""
    array = np.asanyarray(array)
    digest = hashlib.sha256()
    if array.ndim == 0 or array.size == 0:
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    else:
        rows = max(1, CHUNK_BYTES // max(1, array[0].nbytes))
        for start in range(0, len(array), rows):
            chunk = np.ascontiguousarray(array[start : start + rows])
            digest.update(chunk.reshape(-1).view(np.uint8))
    return ArrayDigest(digest.hexdigest(), array.dtype.str, tuple(int(n) for n in array.shape))


def save_array(path: str | os.PathLike, array: np.ndarray) -> ArrayDigest:
    """Write ``array`` to the ``.npy`` file ``path`` atomically; returns its digest to record."""
    array = np.asarray(array)
    atomic_save_npy(path, array)
    return array_digest(array)


def recorded_digests(meta: object) -> dict[str, ArrayDigest] | None:
    """The ``{file name: digest}`` recorded in a cache entry's description, or None if it has none.

    A malformed record counts as none: the entry cannot be verified.
    """
    if not isinstance(meta, Mapping) or not isinstance(meta.get(DIGESTS_KEY), Mapping):
        return None
    digests = {str(name): ArrayDigest.from_json(value) for name, value in meta[DIGESTS_KEY].items()}
    if any(value is None for value in digests.values()):
        return None
    return digests  # type: ignore[return-value]


def write_digest_file(folder: str | os.PathLike, digests: Mapping[str, ArrayDigest]) -> Path:
    """Record ``{name: digest}`` in ``folder/``:data:`DIGEST_FILE` (atomically), for files whose own
    format has no room for them (pickled CIFAR batches). Names are the caller's (``"test_batch:images"``)."""
    record = {"format": DIGEST_FILE_FORMAT, DIGESTS_KEY: {k: v.to_json() for k, v in digests.items()}}
    return atomic_write_json(Path(folder) / DIGEST_FILE, record)


def read_digest_file(folder: str | os.PathLike) -> dict[str, ArrayDigest] | None:
    """The digests :func:`write_digest_file` recorded in ``folder``, or None if it recorded none.

    Raises:
        DamagedFileError: the digest file exists but is not one.
    """
    path = Path(folder) / DIGEST_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        record = None
    digests = recorded_digests(record)
    if digests is None or record.get("format") != DIGEST_FILE_FORMAT:
        raise DamagedFileError(f"The file {path} is damaged (it is not a freqtail digest record).", path)
    return digests


def check_array(array: np.ndarray, expected: ArrayDigest, path: str | os.PathLike, advice: str = "") -> None:
    """Raise :class:`~freqtail.errors.DamagedFileError` unless ``array`` (read from ``path``) is
    what ``expected`` recorded; ``advice`` ends the sentence ("delete it and run again")."""
    array = np.asanyarray(array)
    shape = tuple(int(n) for n in array.shape)
    if array.dtype.str != expected.dtype or shape != expected.shape:
        found = f"{array.dtype} {shape}, not {np.dtype(expected.dtype)} {expected.shape} as written"
        raise DamagedFileError(_sentence(path, f"it holds {found}", advice), path)
    if array_digest(array).sha256 != expected.sha256:
        reason = "its bytes differ from the SHA-256 digest recorded when it was written"
        raise DamagedFileError(_sentence(path, reason, advice), path)


def load_array(
    path: str | os.PathLike, expected: ArrayDigest, advice: str = "", mmap: bool = False
) -> np.ndarray:
    """Read the ``.npy`` file ``path`` and check it against ``expected``.

    Args:
        path: the file.
        expected: its digest, recorded when it was written.
        advice: what to do about a damaged file, the end of the error's sentence.
        mmap: memory-map the file (read-only) instead of reading it; it is still hashed in full.

    Raises:
        DamagedFileError: missing, unreadable, truncated, or not the array that was written.
    """
    if not Path(path).is_file():
        tail = f"; {advice.rstrip('.')}" if advice else ""
        raise DamagedFileError(f"The file {Path(path)} is missing (it was recorded as written){tail}.", path)
    try:
        array = load_npy(path, what="cached array", mmap=mmap)
    except InputError:
        reason = "it is no longer a complete .npy array"
        raise DamagedFileError(_sentence(path, reason, advice), path) from None
    check_array(array, expected, path, advice)
    return array


def report_rebuilt(err: FreqtailError, what: str) -> None:
    """Say in one line that ``what`` was rebuilt because of ``err`` (WARNING on :data:`logger`):
    the error's sentence, then "rebuilt WHAT"."""
    logger.warning("%s; rebuilt %s.", str(err).rstrip("."), what)


def write_verified_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Save uint8 (H, W, 3) ``image`` as a lossless PNG atomically, its pixels' SHA-256 in the text
    chunk :data:`PNG_DIGEST_KEY`."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_DIGEST_KEY, array_digest(image).sha256)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", pnginfo=info)


def read_verified_png(path: str | os.PathLike) -> np.ndarray:
    """The uint8 (H, W, 3) pixels of a PNG :func:`write_verified_png` wrote, checked against its digest.

    Raises:
        DamagedFileError: undecodable, without the digest, or pixels that differ from it.
    """
    try:
        with Image.open(path) as png:
            recorded = png.info.get(PNG_DIGEST_KEY)
            pixels = np.array(png.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises SyntaxError for a broken chunk
        reason = f"it cannot be decoded as a PNG: {str(err).rstrip('.')}"
        raise DamagedFileError(_sentence(path, reason, ""), path) from None
    check_png_digest(path, pixels, recorded, required=True)
    return pixels


def check_png_digest(path: str | os.PathLike, pixels: np.ndarray, recorded: object, required: bool) -> None:
    """Check ``pixels`` (uint8 (H, W, 3), decoded from the PNG ``path``) against ``recorded``, the
    digest in its text (``image.info.get(PNG_DIGEST_KEY)`` of the opened PNG).

    Args:
        required: a PNG without the digest is damaged (a cache file); else it passes unchecked (an
            image of a dataset folder, which may come from anywhere).

    Raises:
        DamagedFileError: a required digest missing, or pixels that differ from it.
    """
    if recorded is None:
        if required:
            raise DamagedFileError(_sentence(path, f"it has no {PNG_DIGEST_KEY} digest", ""), path)
        return
    if array_digest(pixels).sha256 != recorded:
        reason = "its pixels differ from the SHA-256 digest recorded when it was written"
        raise DamagedFileError(_sentence(path, reason, ""), path)


def _sentence(path: str | os.PathLike, reason: str, advice: str) -> str:
    tail = f"; {advice.rstrip('.')}" if advice else ""
    return f"The file {Path(path)} is damaged ({reason}){tail}."
