"""The expected training time, said once after the first measured steps.

A ResNet-18 PGD-AT step takes about 50 s on a CPU, and a preset has 110 epochs: a person should read
that before waiting, not infer it from a progress bar. The first step of a process is left out of the
measurement (it builds caches and, with ``compile``, compiles).
"""

from __future__ import annotations

import time

from freqtail.formatting import duration

#: Steps measured after the first one before the forecast is said.
MEASURED_STEPS = 3


class StepForecast:
    """Times the steps of one process's loop; :meth:`after_step` returns the forecast line once."""

    def __init__(self, first_step: int, total_steps: int, clock=time.perf_counter) -> None:
        self.first_step = first_step
        self.total_steps = total_steps
        self.clock = clock
        self.started: float | None = None
        self.said = False

    def after_step(self, global_step: int) -> str | None:
        """Call after each optimiser step with the number of steps done; the line, or None."""
        if self.said:
            return None
        done_here = global_step - self.first_step
        if done_here == 1:
            self.started = self.clock()
            return None
        if done_here < 1 + MEASURED_STEPS or self.started is None:
            return None
        self.said = True
        per_step = (self.clock() - self.started) / (done_here - 1)
        left = self.total_steps - global_step
        if left <= 0:
            return None
        return (
            f"Measured {per_step:.2f} s a step: about {duration(per_step * left)} for the {left} steps left."
        )
