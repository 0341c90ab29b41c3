"""A real freqtail process killed inside a chosen write (no tests here)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from freqtail.cli import main


def killed_at_write(file_name: str, nth: int, argv: list[str]) -> None:
    """Run ``freqtail argv`` in a child process forked from this one (torch is imported already, as a
    DataLoader's workers are forked) and SIGKILL it at the ``nth`` ``os.replace`` onto ``file_name``:
    after its temporary file is complete, before it takes the file's place."""
    pid = os.fork()
    if pid == 0:  # the child: nothing of pytest's runs here, and it never returns into it
        code = 1
        try:
            real_replace, seen = os.replace, [0]

            def replace(source, destination, *args, **kwargs):
                if os.path.basename(os.fspath(destination)) == file_name:
                    seen[0] += 1
                    if seen[0] == nth:
                        os.kill(os.getpid(), signal.SIGKILL)
                return real_replace(source, destination, *args, **kwargs)

            os.replace = replace
            code = main(argv)
        finally:
            os._exit(code)
    deadline = time.monotonic() + 300  # against a hang only
    while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"freqtail {' '.join(argv)} never reached the write of {file_name}")
        time.sleep(0.05)
    status = ended[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"freqtail {' '.join(argv)} ended with status {os.waitstatus_to_exitcode(status)}, not killed"
    )
