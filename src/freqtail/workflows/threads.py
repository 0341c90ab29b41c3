"""The torch thread count a command computes with: one owner for setting and stating it.

float sums change order with the number of threads, so a trained model's numbers move with it (the
demo's key numbers by a few points); and on a busy 2-core machine torch's default of one thread per
core made the demo about ten times slower than one thread. The demo therefore pins one thread unless
asked for more.
"""

from __future__ import annotations

import os

import torch

from freqtail.data.loader_workers import available_cores

#: The demo's default: the README's numbers and times are measured with it.
DEMO_THREADS = 1


def use_threads(threads: int | str) -> int:
    """Compute with ``threads`` torch threads (an int >= 1, or "all": every core this process may use),
    here and in the processes this one starts (``OMP_NUM_THREADS``); returns the count."""
    count = available_cores() if threads == "all" else int(threads)
    torch.set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)
    return count
