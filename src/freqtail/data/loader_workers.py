"""How many DataLoader worker processes a process may start: the one owner of that rule.

A preset written for a GPU server asks for 4 workers; on a 2-core machine torch then warns twice
(its own check of the cores) and the workers compete with the training process. freqtail starts at
most as many workers as the cores this process may run on, and says so once per process.
"""

from __future__ import annotations

import os
import sys

_said: set[tuple[int, int]] = set()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def loader_workers(requested: int) -> int:
    """``requested`` (a count checked at its door, >= 0) capped at :func:`available_cores`; the first
    time a request is capped, one line on stderr names both numbers."""
    cores = available_cores()
    if requested <= cores:
        return requested
    if (requested, cores) not in _said:
        _said.add((requested, cores))
        print(
            f"freqtail: num_workers {requested} capped at {cores}, the cores this process may use.",
            file=sys.stderr,
        )
    return cores
