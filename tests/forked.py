"""Real processes forked from the test process (no tests here): a command or a process group's ranks.

A fresh ``python -m freqtail.cli`` spends about 3.5 s of CPU importing torch and torchvision before
it does anything; a fork of the test process, which has imported them already, starts in
milliseconds. A forked child is still a process of its own: its own pid, exit status, signals, file
locks and memory, so concurrency, kills and Ctrl-C are tested for real. What a fork does not test is
the interpreter's start (the console script, import-time warnings): tests of those start a fresh
Python, and so do the tests of torchrun itself.

:class:`Forked` has the part of :class:`subprocess.Popen`'s interface the tests use (``pid``,
``poll``, ``wait``, ``send_signal``, ``kill``, ``communicate``, ``returncode``); a child's standard
output and error go to anonymous files the parent reads once the child has ended.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence

from freqtail.cli import main
from freqtail.distributed import export_process_group


class Forked:
    """``target()`` in a forked child; its return value (an int, or None for 0) is the exit status.

    Args:
        target: what the child runs; SystemExit ends it with its code, any other exception with
            status 1 after its traceback on the child's standard error.
        env: variables set in the child's environment (None as a value removes the variable).
    """

    def __init__(self, target: Callable[[], int | None], *, env: Mapping[str, str | None] | None = None):
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into the test process's code
            _run_child(target, env or {}, self._out.fileno(), self._err.fileno())

    def poll(self) -> int | None:
        """The exit status (negative: the signal that ended it) once the child has ended, else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child's end (``timeout`` in seconds: a bound against a hang, as for Popen)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the child's end; its standard output and error as text."""
        self.wait(timeout)
        return _read(self._out), _read(self._err)


def _read(file) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


def _run_child(target: Callable[[], int | None], env: Mapping[str, str | None], out: int, err: int) -> None:
    code = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        # New text streams on the redirected descriptors: the test process's (pytest's capture) stay
        # untouched, and nothing the parent had buffered is written twice.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        result = target()
        code = 0 if result is None else int(result)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the child reports whatever ended it, as Python would
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)  # no atexit handlers or buffers of the test process run in the child


def forked_cli(argv: Sequence[str], *, env: Mapping[str, str | None] | None = None) -> Forked:
    """``freqtail ARGV`` (:func:`freqtail.cli.main`) in a forked child."""
    return Forked(lambda: main(list(argv)), env=env)


def free_port() -> int:
    """A TCP port free on this machine just now (for a process group's rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def forked_ranks(
    target: Callable[[], int | None], world_size: int, *, env: Mapping[str, str | None] | None = None
) -> list[Forked]:
    """``world_size`` forked children running ``target`` as the ranks of one process group on this
    machine: each child's place is described by :func:`freqtail.distributed.export_process_group`, as
    torchrun (or the grid's Slurm launcher) describes it, so the command joins the group itself."""
    port = free_port()

    def rank_target(rank: int) -> Callable[[], int | None]:
        def run() -> int | None:
            export_process_group(
                rank=rank,
                world_size=world_size,
                local_rank=rank,
                local_world_size=world_size,
                master_addr="127.0.0.1",
                master_port=port,
            )
            return target()

        return run

    return [Forked(rank_target(rank), env=env) for rank in range(world_size)]


def forked_cli_ranks(
    argv: Sequence[str], world_size: int, *, env: Mapping[str, str | None] | None = None
) -> list[Forked]:
    """``freqtail ARGV`` as the ``world_size`` ranks of one process group (:func:`forked_ranks`)."""
    return forked_ranks(lambda: main(list(argv)), world_size, env=env)
