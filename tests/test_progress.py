"""Progress on a console that is not a terminal (``--no-progress``, a log, CI): a line per finished step,
at most one per 10 s of work, so short work stays silent and long work never is. A fake clock stands
in for the work, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import io

from tqdm.auto import tqdm

from freqtail.progress import QUIET_SECONDS, StepLines, progress_bar, progress_to, silent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_short_work_says_nothing_and_long_work_a_line_at_most_every_ten_seconds():
    stream, clock = io.StringIO(), Clock()
    with StepLines(10, "pgd-20 standard", "batch", stream=stream, clock=clock) as steps:
        for _ in range(10):
            clock.now += 0.5  # 5 s in all: below QUIET_SECONDS
            steps.update(1)
    assert stream.getvalue() == ""

    stream, clock = io.StringIO(), Clock()
    with StepLines(10, "pgd-20 standard", "batch", stream=stream, clock=clock) as steps:
        for _ in range(10):
            clock.now += 4.0  # a batch every 4 s: lines after batches 3 (12 s), 6 (24 s) and 9 (36 s)
            steps.update(1)
            if steps.n == 5:
                steps.say("running apgd-t")  # within 10 s of the last line: not written
    assert QUIET_SECONDS == 10.0
    assert stream.getvalue().splitlines() == [
        "pgd-20 standard: 3/10 batches done (12 s)",
        "pgd-20 standard: 6/10 batches done (24 s)",
        "pgd-20 standard: 9/10 batches done (36 s)",
        "pgd-20 standard: done, 10 batches in 40 s",
    ]


def test_a_message_is_written_when_a_line_is_due_and_iteration_counts_steps():
    stream, clock = io.StringIO(), Clock()
    steps = StepLines(None, "autoattack-standard", "batch", iterable=range(2), stream=stream, clock=clock)
    for item in steps:
        clock.now += 11.0
        steps.say(f"robust accuracy after APGD-CE: {item}")
    assert stream.getvalue().splitlines() == [
        "autoattack-standard: robust accuracy after APGD-CE: 0 (11 s)",
        "autoattack-standard: robust accuracy after APGD-CE: 1 (22 s)",
        "autoattack-standard: done, 2 batches in 22 s",  # it spoke, so it says when it is done
    ]


def test_a_terminal_gets_a_bar_other_consoles_lines_and_other_ranks_nothing():
    assert isinstance(progress_bar(total=3, desc="x", stream=Terminal()), tqdm)
    assert isinstance(progress_bar(total=3, desc="x", enabled=False, stream=Terminal()), StepLines)
    assert isinstance(progress_bar(total=3, desc="x", stream=io.StringIO()), StepLines)
    assert progress_bar(range(4), desc="x", stream=io.StringIO()).total == 4
    quiet = silent(range(3))
    assert list(quiet) == [0, 1, 2] and quiet.disable


def test_inside_progress_to_lines_go_to_the_given_writer_and_no_bar_is_drawn():
    """The demo prints its steps into its log; progress_to brings their progress lines to its console."""
    lines, stream, clock = [], Terminal(), Clock()
    with progress_to(lines.append):
        assert isinstance(progress_bar(total=2, desc="x", stream=stream), StepLines)
        steps = StepLines(2, "pgd-20-ce standard", "batch", stream=stream, clock=clock)
        clock.now = 12.0
        steps.update(1)
    assert lines == ["pgd-20-ce standard: 1/2 batches done (12 s)"] and stream.getvalue() == ""
    assert isinstance(progress_bar(total=2, desc="x", stream=stream), tqdm)  # outside again: a bar
