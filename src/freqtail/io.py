"""Safe file input/output: atomic writes and defensive loading.

Writes go to a temporary file in the destination folder and are moved into place with
``os.replace`` only when complete, so a crash or Ctrl-C never leaves a half-written result.
Loading never executes code: ``.npy`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from freqtail.errors import InputError, OutputError, os_error_sentence

NPY_MAGIC = b"\x93NUMPY"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    The temporary file keeps the destination's suffix so that libraries which dispatch on the
    extension (matplotlib, numpy) write the right format. On any exception the temporary file is
    removed and the destination is left untouched.
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    except OSError as err:
        raise OutputError(_destination_sentence(dest, err)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        try:
            yield tmp
            os.replace(tmp, dest)
        except OutputError:
            raise
        except OSError as err:  # a full disk while writing, a folder where the file should go, ...
            raise OutputError(_destination_sentence(dest, err)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _temporary_pattern(dest: Path) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives the temporary files of ``dest``: ``.NAME.XXXXXXXX.tmpSUFFIX``
    (``tempfile.mkstemp``'s eight random characters)."""
    return re.compile(re.escape(f".{dest.name}.") + r"[a-z0-9_]{8}" + re.escape(f".tmp{dest.suffix}"))


def leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files of ``path`` that writes killed before their rename left beside it (a
    ``kill -9`` or a power cut; any other failure removes its own), in name order."""
    dest = Path(path)
    return _leftovers_in(dest.parent, {dest.name})


def sweep_leftover_temporaries(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the :func:`leftover_temporaries` of every path; returns what was removed.

    Each folder is listed once, however many of ``paths`` it holds (a converted copy of ImageNet
    names a million files). Call it only as the owner of those files, holding the lock under which
    they are written: a write in progress has a temporary file of the same shape, and sweeping it
    would fail that write.
    """
    names_by_folder: dict[Path, set[str]] = {}
    for path in map(Path, paths):
        names_by_folder.setdefault(path.parent, set()).add(path.name)
    removed = []
    for folder, names in names_by_folder.items():
        for leftover in _leftovers_in(folder, names):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def _leftovers_in(folder: Path, names: set[str]) -> list[Path]:
    """The temporary files in ``folder`` of destinations named ``names``, in name order."""
    if not folder.is_dir():
        return []
    suffixes = {Path(name).suffix for name in names}
    found = []
    for entry in os.scandir(folder):
        if not entry.name.startswith("."):
            continue
        for (
            suffix
        ) in suffixes:  # ".NAME" + ".XXXXXXXX.tmp" + suffix: the candidate NAME, then the exact shape
            name = entry.name[1 : len(entry.name) - len(".XXXXXXXX.tmp") - len(suffix)]
            if name in names and _temporary_pattern(folder / name).fullmatch(entry.name) and entry.is_file():
                found.append(Path(entry.path))
    return sorted(found)


def _destination_sentence(dest: Path, err: OSError) -> str:
    """One sentence naming the destination (not the temporary file) and the reason."""
    for parent in dest.parents:
        if parent.exists():
            if not parent.is_dir():  # mkdir says "File exists", which hides what is wrong
                return f"Could not write {dest}: {parent} is a file, not a folder."
            break
    return os_error_sentence(OSError(err.errno, err.strerror, str(dest)))


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before long work starts.

    Raises:
        OutputError: one sentence naming the path: a file in the way, no permission, a full or
            read-only disk.
    """
    p = Path(folder).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputError(f"The {what} {p} is a file, not a folder; choose another path.")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=".freqtail-write-test.", dir=p) as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        blocking = next((parent for parent in p.parents if parent.exists()), None)
        if blocking is not None and not blocking.is_dir():
            reason = f"{blocking} is a file, not a folder"
        else:
            reason = f"{err.filename or p}: {err.strerror or type(err).__name__}"
        raise OutputError(f"The {what} {p} cannot be written ({reason}); choose another path.") from None
    return p


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary_file)`` on a temporary file and atomically move it to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON (NaN/Inf refused) and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save ``array`` as a ``.npy`` file atomically (never pickled)."""
    return atomic_write(path, lambda handle: np.save(handle, np.asarray(array), allow_pickle=False))


def reserved_npy_memmap(path: str | os.PathLike, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` opened as a writable memory map, its disk space reserved first.

    Pages of a map the disk cannot back end the process with SIGBUS at the first write (status 135,
    no message); ``os.posix_fallocate`` makes a full disk an ``OSError`` here instead, before any
    page is written. Write into a temporary path (:func:`atomic_path`) so that nothing half-written
    looks finished.

    Raises:
        OutputError: one sentence naming ``path`` and why (no space left on the device, ...).
    """
    target = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    except OSError as err:
        del target
        raise OutputError(os_error_sentence(OSError(err.errno, err.strerror, str(path)))) from None
    return target


def check_writable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Prove that ``path`` can be written (its folder is created and writable, it is not a folder).

    Called before long work, so that a bad destination fails at once and not after the work is done.

    Raises:
        OutputError: one sentence naming the path.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"The {what} {p} is a folder; give a file name.")
    check_writable_folder(p.parent, f"folder of the {what} {p}")
    return p


#: What numpy's header parser raises on a damaged header: its text is read by ``ast.literal_eval``,
#: which fails in many ways (unbalanced brackets end in a TokenError, deep nesting in a RecursionError).
_DAMAGED_HEADER_ERRORS = (
    ValueError,
    SyntaxError,
    tokenize.TokenError,
    RecursionError,
    TypeError,
    KeyError,
    EOFError,
)

#: The .npy format versions numpy reads; 3.0 differs from 2.0 only in a UTF-8 header.
_NPY_VERSIONS = ((1, 0), (2, 0), (3, 0))


def _check_npy_header(handle: IO[bytes], p: Path, what: str) -> None:
    """Read the header at the start of ``handle`` and refuse a damaged one or one that promises more
    data than the file holds (before numpy allocates it: a damaged shape would ask for terabytes).

    Raises:
        InputError: one sentence naming the file and what is wrong.
    """
    try:
        version = np.lib.format.read_magic(handle)
        if version not in _NPY_VERSIONS:
            raise InputError(
                f"The {what} file {p} has .npy format version {version[0]}.{version[1]}, "
                "which numpy cannot read; the file is damaged."
            )
        # 2.0's reader parses 3.0 headers too: the shape and dtype are ASCII in both.
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except InputError:
        raise
    except _DAMAGED_HEADER_ERRORS as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"The {what} file {p} has a damaged .npy header ({reason[:200]}).") from None
    if dtype.hasobject:
        raise InputError(
            f"The {what} file {p} holds pickled Python objects, which freqtail refuses to load; "
            "save a plain numeric array instead."
        )
    needed = math.prod(shape) * dtype.itemsize
    held = os.fstat(handle.fileno()).st_size - handle.tell()
    if held < needed:
        raise InputError(
            f"The {what} file {p} is truncated: its header describes {needed} bytes of data "
            f"(shape {shape}, {dtype}) but it holds {held}."
        )


def load_npy(path: str | os.PathLike, what: str = "array", mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file without pickle, turning every failure into one clear sentence.

    The header is read and checked first: a damaged one, or one whose shape needs more bytes than
    the file holds, is refused before numpy allocates anything.

    Args:
        path: file to read.
        what: a short description used in error messages ("image array", "labels").
        mmap: memory-map the file instead of reading it (for large datasets).

    Raises:
        InputError: missing, unreadable, truncated, pickled (object), damaged header or not-a-npy file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"The {what} file {p} does not exist.")
    if p.is_dir():
        raise InputError(f"The {what} path {p} is a folder, not a .npy file.")
    try:
        with open(p, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
            if magic == NPY_MAGIC:
                handle.seek(0)
                _check_npy_header(handle, p, what)
    except OSError as err:
        raise InputError(f"The {what} file {p} could not be read ({err.strerror or err}).") from None
    if magic != NPY_MAGIC:
        # np.load would try to unpickle anything that is not .npy/.npz and blame pickling.
        kind = "an .npz archive; give a single .npy array" if magic.startswith(b"PK") else "not a .npy file"
        raise InputError(f"The {what} file {p} is {kind}.")
    try:
        array = np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as err:
        if "pickle" in str(err).lower() or "python objects" in str(err).lower():  # the latter: mmap=True
            raise InputError(
                f"The {what} file {p} holds pickled Python objects, which freqtail refuses to load; "
                "save a plain numeric array instead."
            ) from None
        raise InputError(f"The {what} file {p} is truncated or not a valid .npy file ({err}).") from None
    except (OSError, EOFError) as err:
        raise InputError(f"The {what} file {p} could not be read as a .npy file ({err}).") from None
    return array


def cache_dir() -> Path:
    """Root folder for freqtail's caches (embedded dataset, BaSS variants).

    ``$FREQTAIL_CACHE`` if set, else ``$XDG_CACHE_HOME/freqtail``, else ``~/.cache/freqtail``.
    """
    env = os.environ.get("FREQTAIL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "freqtail"
