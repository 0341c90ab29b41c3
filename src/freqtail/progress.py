"""Progress of long work on the console: a bar on a terminal, plain lines elsewhere, never silence.

Every stage of long work (an evaluation suite's batches, AutoAttack's attacks, corruption cells,
analysis points) reports through :func:`progress_bar`:

* with progress asked for (``enabled``) and standard error a terminal: a tqdm bar (tqdm is the
  library for it);
* otherwise (``--no-progress``, a log file, a pipe, a CI job): one line per finished step, written
  to standard error, but only once at least :data:`QUIET_SECONDS` have passed since the last line
  (so short work stays silent and a log holds no bar redraws); a stage that took that long ends
  with a line saying it is done.

:meth:`StepLines.say` and ``tqdm.write`` take messages within a stage (AutoAttack's "robust accuracy
after APGD-CE ..."), under the same rule. tqdm has no line-per-step mode for non-terminals, hence this
small class.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

from tqdm.auto import tqdm

from freqtail.formatting import count, duration

#: Seconds of work after which a non-terminal console gets its next line.
QUIET_SECONDS = 10.0
#: Plurals of the step names that are not name + "s".
PLURALS = {"batch": "batches"}
#: Where progress lines go instead of a stream, while :func:`progress_to` is in force.
_LINES_TO: ContextVar[Callable[[str], None] | None] = ContextVar("freqtail_progress_lines", default=None)


@contextlib.contextmanager
def progress_to(write_line: Callable[[str], None]) -> Iterator[None]:
    """Inside, progress is given as lines to ``write_line`` (no bars), whatever standard error is: the
    demo, whose steps print into its log file, shows them on its own console this way."""
    token = _LINES_TO.set(write_line)
    try:
        yield
    finally:
        _LINES_TO.reset(token)


class StepLines:
    """tqdm's small interface (``update``, ``write``, iteration, context manager) as plain lines.

    Args:
        total: steps expected (None: unknown).
        desc: what the steps are of, e.g. ``"pgd-20 standard"``.
        unit: the name of one step (``"batch"``, ``"point"``).
        stream: where lines go (standard error by default).
        clock: seconds (monotonic); a test passes its own.
        quiet_seconds: the shortest time between two lines.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "step",
        *,
        iterable: Iterable[Any] | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self.total, self.desc, self.unit, self.iterable = total, desc, unit, iterable
        self.stream = stream if stream is not None else sys.stderr
        self.clock, self.quiet = clock, quiet_seconds
        self.n = 0
        self.started = self.last = clock()
        self.spoke = False

    def _due(self) -> bool:
        return self.clock() - self.last >= self.quiet

    def _line(self, text: str) -> None:
        write_line = _LINES_TO.get()
        if write_line is not None:
            write_line(text)
        else:
            print(text, file=self.stream, flush=True)
        self.last, self.spoke = self.clock(), True

    def _elapsed(self) -> str:
        return duration(self.clock() - self.started)

    def _steps(self, number: int) -> str:
        return count(number, self.unit, PLURALS.get(self.unit))

    def update(self, count: int = 1) -> None:
        """``count`` more steps finished; a line if one is due."""
        self.n += count
        if self._due():
            done = self._steps(self.n) if self.total is None else f"{self.n}/{self._steps(self.total)}"
            self._line(f"{self.desc}: {done} done ({self._elapsed()})")

    def say(self, message: str) -> None:
        """A message within the stage; written if a line is due."""
        if self._due():
            self._line(f"{self.desc}: {message} ({self._elapsed()})")

    write = say

    def set_description(self, desc: str) -> None:
        """Name what the following steps are of (tqdm's ``set_description``)."""
        self.desc = desc

    def set_postfix_str(self, text: str) -> None:
        """What runs now (tqdm's ``set_postfix_str``): said if a line is due."""
        self.say(text)

    def close(self) -> None:
        """The stage is over: a last line if it ever spoke or took long enough to."""
        if self.spoke or self._due():
            self._line(f"{self.desc}: done, {self._steps(self.n)} in {self._elapsed()}")

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> StepLines:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "step",
    enabled: bool = True,
    leave: bool = True,
    stream: TextIO | None = None,
):
    """A tqdm bar where it can be seen (``enabled`` and a terminal), else :class:`StepLines`.

    Use it like tqdm: ``for x in progress_bar(items, desc=...)`` or ``with progress_bar(total=n, desc=...)
    as bar: bar.update(1)``. ``enabled=False`` (``--no-progress``) still writes the rate-limited
    lines; processes that must say nothing (ranks other than 0) use :func:`silent`.
    """
    stream = stream if stream is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if enabled and _LINES_TO.get() is None and getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=stream)
    return StepLines(total, desc, unit, iterable=iterable, stream=stream)


def silent(
    iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = ""
):
    """tqdm's interface with no output at all (other ranks than 0)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True)
