"""A real freqtail process killed inside a chosen write (no tests here)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from forked import Forked
from freqtail.cli import main


def killed_at_write(file_name: str, nth: int, argv: list[str]) -> None:
    """Run ``freqtail argv`` in a child process forked from this one (tests/forked.py) and SIGKILL it
    at the ``nth`` ``os.replace`` onto ``file_name``: after its temporary file is complete, before it
    takes the file's place."""

    def run_until_the_write() -> int:
        real_replace, seen = os.replace, [0]

        def replace(source, destination, *args, **kwargs):
            if os.path.basename(os.fspath(destination)) == file_name:
                seen[0] += 1
                if seen[0] == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(source, destination, *args, **kwargs)

        os.replace = replace  # in the child only
        return main(argv)

    child = Forked(run_until_the_write)
    try:
        code = child.wait(timeout=300)  # against a hang only
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        pytest.fail(f"freqtail {' '.join(argv)} never reached the write of {file_name}")
    if code != -signal.SIGKILL:
        _, err = child.communicate()
        pytest.fail(f"freqtail {' '.join(argv)} ended with status {code}, not killed: {err[-2000:]}")
