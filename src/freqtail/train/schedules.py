"""Learning-rate schedules as pure functions of the global step (so a resumed run needs only the step).

* ``piecewise``: ``lr * lr_decay ** (number of milestones <= epoch)``, where ``epoch = step //
  steps_per_epoch`` (the Bag-of-Tricks / TRADES / MART recipes: decay at given epochs);
* ``cosine``: ``lr_min + (lr - lr_min) * (1 + cos(pi * step / total_steps)) / 2`` per step (AugMix);
* ``constant``: ``lr``.

An optional linear warm-up multiplies the rate by ``(step + 1) / warmup_steps`` for the first
``warmup_steps = round(warmup_epochs * steps_per_epoch)`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def learning_rate(
    step: int,
    *,
    schedule: str,
    lr: float,
    steps_per_epoch: int,
    total_steps: int,
    milestones: Sequence[int] = (),
    lr_decay: float = 0.1,
    lr_min: float = 0.0,
    warmup_epochs: float = 0.0,
) -> float:
    """The learning rate of optimiser step ``step`` (0-based)."""
    if schedule == "piecewise":
        epoch = step // max(steps_per_epoch, 1)
        rate = lr * lr_decay ** sum(1 for m in milestones if epoch >= m)
    elif schedule == "cosine":
        progress = min(step / max(total_steps, 1), 1.0)
        rate = lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "constant":
        rate = lr
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    if warmup_steps > 0 and step < warmup_steps:
        rate *= (step + 1) / warmup_steps
    return rate


def schedule_from_config(config, steps_per_epoch: int, total_steps: int):
    """``step -> learning rate`` for a :class:`~freqtail.train.config.TrainConfig`."""

    def rate(step: int) -> float:
        return learning_rate(
            step,
            schedule=config.schedule,
            lr=config.lr,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            milestones=config.milestones,
            lr_decay=config.lr_decay,
            lr_min=config.lr_min,
            warmup_epochs=config.warmup_epochs,
        )

    return rate
