"""Exclusive locks on paths: the one lock primitive of freqtail.

A lock is an operating-system file lock (``flock``, through :class:`filelock.FileLock`) on a lock
file, plus a *holder record* beside it (``<lock file>.json``: process id, host name, start time in
UTC, command line and a free-text purpose) so that a refused caller can say in one sentence who
holds the lock and since when.

Two ways to take a lock:

- :func:`try_lock` makes one attempt; a held lock raises :class:`~freqtail.errors.LockedError`
  whose message names the holder. For long jobs, where waiting makes no sense (a training run in
  a run folder).
- :func:`exclusive` is a context manager that waits up to ``timeout`` seconds; for short critical
  sections (read, merge and write back a results file).

Guarantees, on a local filesystem (ext4, xfs, btrfs, tmpfs, APFS, ...):

- At most one holder at a time among all processes of the machine; two lock objects on the same
  path exclude each other even inside one process.
- The operating system releases the lock when the holding process ends, however it ends (SIGKILL,
  out-of-memory kill, crash): a dead process never blocks anyone. Its holder record stays behind;
  the next caller takes the lock at once, replaces the record and reports the takeover
  (:attr:`Lock.stale`, :meth:`Lock.stale_message`).
- The holder record is written atomically (:func:`freqtail.io.atomic_write_json`) after the lock
  is taken and removed before it is released, so a record found by the one who just took the lock
  always belongs to a holder that died. A refused caller may briefly see no record (the holder has
  not written it yet); the message then says "another process".
- A child made with ``fork`` (DataLoader workers) does not keep the lock alive: filelock 4 closes
  the lock's descriptor in the child, so the lock ends with its holder (tested). With filelock 3 the
  child shares the descriptor and the lock ends when the last of them has ended.

Limits:

- NFS: Linux emulates ``flock`` on NFS with byte-range locks held by the server, so processes on
  different clients exclude each other while the server's lock manager works; a client that dies
  keeps its locks until the server's lease expires (NFSv4: typically 90 s), and the holder record's
  process id means something only on its own host. Older NFS setups without a lock manager give no
  exclusion at all. Where ``flock`` is unavailable filelock falls back to a marker file with a
  warning; a dead holder's lock is then not released by the operating system.
- The lock file itself stays in place after release (removing it would let two processes lock two
  different files of the same name); it is empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import filelock

from freqtail.errors import FreqtailError, LockedError
from freqtail.io import atomic_write_json

HOLDER_FORMAT = "freqtail-lock-holder"
#: The refusal sentence when no caller-specific one is given; ``{path}`` and ``{holder}`` are filled in.
DEFAULT_REFUSAL = "The file {path} is locked by {holder}; wait for it to finish."
#: How the holder is named when its record is missing or names a process that no longer runs.
UNKNOWN_HOLDER = "another process (it has not recorded itself yet)"


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lock.

    Attributes:
        pid: process id, meaningful on ``host`` only.
        host: host name of the holder.
        since: when it took the lock, UTC, ``YYYY-MM-DDTHH:MM:SSZ``.
        command: its command line (shortened to 200 characters).
        purpose: free text, e.g. ``"training"``.
    """

    pid: int
    host: str
    since: str
    command: str
    purpose: str

    def describe(self) -> str:
        """``"process 1234 on host h since 2026-01-02T03:04:05Z (freqtail train --out runs/x)"``."""
        return f"process {self.pid} on host {self.host} since {self.since} ({self.command})"

    def to_json(self) -> dict[str, Any]:
        return {"format": HOLDER_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> Holder | None:
        """The holder in ``data``, or None if ``data`` is not a holder record."""
        if not isinstance(data, dict) or data.get("format") != HOLDER_FORMAT:
            return None
        try:
            return cls(
                int(data["pid"]),
                str(data["host"]),
                str(data["since"]),
                str(data["command"]),
                str(data["purpose"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def holder_path(lock_path: str | os.PathLike) -> Path:
    """Where the holder record of ``lock_path`` lives: ``<lock_path>.json``."""
    path = Path(lock_path)
    return path.with_name(path.name + ".json")


def read_holder(lock_path: str | os.PathLike) -> Holder | None:
    """The holder record beside ``lock_path``, or None if there is none or it cannot be read."""
    try:
        return Holder.from_json(json.loads(holder_path(lock_path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _command_line() -> str:
    argv = list(sys.argv) or ["python"]
    first = Path(argv[0]).name
    if "freqtail" in argv[0] and first in ("freqtail", "cli.py", "__main__.py"):
        first = "freqtail"
    text = shlex.join([first, *argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot be probed: assume alive)
    return True


def describe_holder(lock_path: str | os.PathLike) -> str:
    """Name whoever holds ``lock_path`` now, for a refusal (see :data:`UNKNOWN_HOLDER`)."""
    holder = live_holder(lock_path)
    return UNKNOWN_HOLDER if holder is None else holder.describe()


def live_holder(lock_path: str | os.PathLike) -> Holder | None:
    """Who holds ``lock_path`` now, read from its holder record without touching the lock (a probe
    that took the lock could make a process starting that instant fail): None when there is no record
    or it names a process of this host that no longer runs; a record from another host counts as
    live (its process cannot be probed from here)."""
    holder = read_holder(lock_path)
    if holder is None or (holder.host == socket.gethostname() and not _process_alive(holder.pid)):
        return None
    return holder


class Lock:
    """A held lock on ``path``; release it with :meth:`release` or by leaving its ``with`` block.

    Attributes:
        path: the lock file.
        holder: this process's record.
        stale: the record left by a holder that died (its lock was taken over), or None.
    """

    def __init__(self, path: Path, file_lock: Any, holder: Holder, stale: Holder | None) -> None:
        self.path = path
        self.holder = holder
        self.stale = stale
        self._file_lock = file_lock

    @property
    def held(self) -> bool:
        return bool(self._file_lock.is_locked)

    def stale_message(self) -> str | None:
        """One sentence about the takeover of a dead holder's lock, or None if there was none."""
        if self.stale is None:
            return None
        return (
            f"Took over the lock {self.path} from {self.stale.describe()}, "
            "which no longer holds it (it ended without releasing it)."
        )

    def release(self) -> None:
        """Remove the holder record, then release the lock; a second call does nothing."""
        if not self.held:
            return
        with contextlib.suppress(FileNotFoundError):
            holder_path(self.path).unlink()
        self._file_lock.release()

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lock({str(self.path)!r}, held={self.held})"


def acquire(
    path: str | os.PathLike,
    *,
    purpose: str,
    timeout: float | None = 0.0,
    refusal: str = DEFAULT_REFUSAL,
) -> Lock:
    """Take the exclusive lock on ``path`` (created if needed, with its parent folders).

    Args:
        path: the lock file, e.g. ``runs/x/.freqtail-train.lock``.
        purpose: what the holder does, recorded for refusals ("training", "merging results").
        timeout: seconds to wait for a held lock; 0 makes one attempt, None waits indefinitely.
        refusal: the sentence of the :class:`LockedError`, with ``{path}`` and ``{holder}``
            (:meth:`Holder.describe` or :data:`UNKNOWN_HOLDER`) filled in; ``{waited}`` is the
            timeout in seconds.

    Returns:
        the held :class:`Lock`; :attr:`Lock.stale` names a dead holder whose lock was taken over.

    Raises:
        LockedError: another holder kept the lock for ``timeout`` seconds.
        FreqtailError: the lock file cannot be created or locked (permissions, read-only disk).
    """
    lock_path = Path(path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        file_lock = filelock.FileLock(str(lock_path), thread_local=False)
        file_lock.acquire(timeout=-1 if timeout is None else timeout)
    except filelock.Timeout:
        holder_text = describe_holder(lock_path)
        message = refusal.format(path=lock_path, holder=holder_text, waited=f"{timeout:g}")
        raise LockedError(message, lock_path, read_holder(lock_path)) from None
    except OSError as err:
        raise FreqtailError(
            f"The lock file {lock_path} cannot be created or locked ({err.strerror or err})."
        ) from None
    try:
        stale = read_holder(lock_path)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        holder = Holder(os.getpid(), socket.gethostname(), since, _command_line(), purpose)
        atomic_write_json(holder_path(lock_path), holder.to_json())
    except BaseException:
        file_lock.release()
        raise
    return Lock(lock_path, file_lock, holder, stale)


def try_lock(path: str | os.PathLike, *, purpose: str, refusal: str = DEFAULT_REFUSAL) -> Lock:
    """One attempt at the lock on ``path``; :class:`LockedError` naming the holder if it is held.

    Example:
        >>> lock = try_lock("runs/x/.freqtail-train.lock", purpose="training",
        ...                 refusal="The run folder runs/x is being trained by {holder}.")
        >>> try:
        ...     ...  # the long job
        ... finally:
        ...     lock.release()
    """
    return acquire(path, purpose=purpose, timeout=0.0, refusal=refusal)


@contextlib.contextmanager
def exclusive(
    path: str | os.PathLike,
    *,
    purpose: str,
    timeout: float = 60.0,
    refusal: str = "The file {path} stayed locked by {holder} for {waited} s; try again when it is done.",
) -> Iterator[Lock]:
    """Hold the lock on ``path`` for a ``with`` block, waiting up to ``timeout`` seconds for it.

    Example:
        >>> with exclusive("runs/x/.results.lock", purpose="merging results.json", timeout=60):
        ...     ...  # read results.json, merge, write it back atomically

    Raises:
        LockedError: the lock stayed held for ``timeout`` seconds.
    """
    lock = acquire(path, purpose=purpose, timeout=timeout, refusal=refusal)
    try:
        yield lock
    finally:
        lock.release()


__all__ = [
    "DEFAULT_REFUSAL",
    "UNKNOWN_HOLDER",
    "Holder",
    "Lock",
    "acquire",
    "describe_holder",
    "exclusive",
    "holder_path",
    "live_holder",
    "read_holder",
    "try_lock",
]
