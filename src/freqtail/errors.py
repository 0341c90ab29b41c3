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
