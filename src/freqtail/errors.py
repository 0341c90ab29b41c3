"""User-facing errors.

Every problem caused by the user's input (a bad file, a wrong option, a missing dataset) is raised
as a :class:`FreqtailError` whose message is one complete sentence. The command line prints that
sentence and exits non-zero without a traceback; library callers can catch the class.
"""

from __future__ import annotations


class FreqtailError(Exception):
    """An error the user can fix; ``str(err)`` is one sentence that says what and how."""


class InputError(FreqtailError, ValueError):
    """Bad input data: wrong dtype, rank, channel count, empty, or non-finite values."""


class DatasetNotFoundError(FreqtailError, FileNotFoundError):
    """A dataset is missing or damaged on disk."""


class CheckpointError(FreqtailError):
    """A checkpoint is missing, corrupt, foreign, or does not match what it is used for."""


class ConfigError(FreqtailError, ValueError):
    """A configuration key or value is unknown or invalid."""


class OutputError(FreqtailError, OSError):
    """A destination cannot be written: a missing, read-only or full disk, a file in the way."""


def os_error_sentence(err: OSError, action: str = "write") -> str:
    """One sentence for an operating-system error: what failed, on which path, and why.

    Example: ``Could not write runs/x/results.json: No space left on device.``
    """
    path = err.filename if err.filename is not None else "the destination"
    reason = err.strerror or type(err).__name__
    target = f" (to {err.filename2})" if getattr(err, "filename2", None) else ""
    return f"Could not {action} {path}{target}: {reason}."


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
