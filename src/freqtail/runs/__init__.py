"""The names of everything a run folder holds (:mod:`~freqtail.runs.layout`) and the rule that what
is read from one stays inside it (:mod:`~freqtail.runs.containment`), and nothing else.

A leaf every layer may import: the trainer, the evaluation, the report and the workflows name a run's
files through :class:`RunLayout`. What a run *is* (its settings, its model, its results) is owned by
:mod:`freqtail.workflows`.
"""

from __future__ import annotations

from freqtail.runs.layout import RunLayout

__all__ = ["RunLayout"]
