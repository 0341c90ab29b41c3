"""User-facing errors.

Every problem caused by the user's input (a bad file, a wrong option, a missing dataset) is raised
as a :class:`FreqtailError` whose message is one complete sentence. The command line prints that
sentence and exits non-zero without a traceback; library callers can catch the class.
"""

from __future__ import annotations

import errno
import resource
import shutil
from pathlib import Path

#: Clearer words than the C library's for the write failures a user meets most.
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "file too large for this process's file-size limit",
}
#: Free bytes below which a short write is put down to a full disk.
_NEARLY_FULL = 1 << 20


class FreqtailError(Exception):
    """An error the user can fix; ``str(err)`` is one sentence that says what and how."""


class InputError(FreqtailError, ValueError):
    """Bad input data: wrong dtype, rank, channel count, empty, or non-finite values."""


class DatasetNotFoundError(FreqtailError, FileNotFoundError):
    """A dataset is missing or damaged on disk."""


class DamagedFileError(DatasetNotFoundError):
    """A file freqtail wrote for itself (a cache entry, a converted copy) differs from what it wrote:
    missing, truncated, or bytes that do not match the digest recorded with it (``path``)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class CheckpointError(FreqtailError):
    """A checkpoint is missing, corrupt, foreign, or does not match what it is used for."""


class ConfigError(FreqtailError, ValueError):
    """A configuration key or value is unknown or invalid."""


class OutputError(FreqtailError, OSError):
    """A destination cannot be written: a missing, read-only or full disk, a file in the way."""


def os_error_sentence(err: OSError, action: str = "write") -> str:
    """One sentence for an operating-system error: what failed, on which path, and why.

    Example: ``Could not write runs/x/results.json: no space left on the device.``
    """
    path = err.filename if err.filename is not None else "the destination"
    reason = (
        _REASONS.get(err.errno) or err.strerror or _short_write_reason(err.filename) or type(err).__name__
    )
    target = f" (to {err.filename2})" if getattr(err, "filename2", None) else ""
    return f"Could not {action} {path}{target}: {reason}."


def _short_write_reason(path: object) -> str | None:
    """Why a write came up short when the error carries no errno: NumPy's ``tofile`` (``np.save``)
    reports only "N requested and M written", since C's ``fwrite`` leaves the reason in ``errno``,
    which it does not pass on. The two causes a user can fix are told apart by looking: a finite
    file-size limit on this process, or a (nearly) full disk at the path."""
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft_limit != resource.RLIM_INFINITY:
        return f"{_REASONS[errno.EFBIG]} ({soft_limit} bytes)"
    folder = Path(str(path)).parent if path is not None else None
    while folder is not None and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free if folder is not None else None
    except OSError:
        return None
    return _REASONS[errno.ENOSPC] if free is not None and free < _NEARLY_FULL else None


class LockedError(FreqtailError):
    """A path is locked by another process (:mod:`freqtail.locks`); the message names the holder.

    Attributes:
        path: the lock file.
        holder: the holder's record (:class:`freqtail.locks.Holder`), or None when it is unknown.
    """

    def __init__(self, message: str, path=None, holder=None) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder
