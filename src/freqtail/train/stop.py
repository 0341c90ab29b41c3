"""Stop requests: SIGINT / SIGTERM become a polite stop at the end of the current optimiser step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class StopRequest:
    """Turns SIGINT / SIGTERM into a polite stop: finish the step, write a checkpoint, return.

    A second Ctrl-C raises KeyboardInterrupt at once (the last epoch's checkpoint stays on disk).
    Handlers are only installed in the main thread and are restored on exit.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.requested = False
        self._log = log
        self._previous: dict[int, Any] = {}

    def request(self) -> None:
        self.requested = True

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self._log(f"{name}: stopping after this step and writing a checkpoint (Ctrl-C again aborts at once).")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
