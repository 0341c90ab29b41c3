"""Run folders: the one owner of a run's files, settings, locks and results.

* :mod:`~freqtail.runs.layout` — the names of everything a run folder holds (imports nothing heavy;
  the trainer, the report and the demo use it too);
* :class:`RunFolder` — a trained run opened once: its settings resolved (:class:`RunSettings`), the
  model as each threat model sees it, each threat model's test data, ``results.json`` merged under a
  lock;
* :class:`ResultsStore` — a folder's ``results.json`` / ``results.md``, merged under its lock;
* :func:`evaluate_run` — clean / PGD / CW / AutoAttack / corruption numbers of a run into its folder;
* :func:`explain_sensitivity`, :func:`explain_landscape`, :func:`explain_heatmap` — the analyses of a
  run into its folder.

Example:
    >>> from freqtail.runs import RunFolder, evaluate_run
    >>> run = RunFolder.open("runs/erm-bass")
    >>> outcome = evaluate_run(run, suites="clean,pgd20", n=500)
    >>> [(r["threat_model"], r["metric"], r["accuracy"]) for r in outcome.records]
"""

from __future__ import annotations

from freqtail.runs.layout import RunLayout

# RunFolder and the run-level functions import torch and the evaluation code: they load on first use,
# so that the trainer can import the layout without importing evaluation.
_LAZY = {
    "RunFolder": "freqtail.runs.folder",
    "RunSettings": "freqtail.runs.folder",
    "ResultsStore": "freqtail.runs.store",
    "RunEvaluation": "freqtail.runs.evaluation",
    "evaluate_run": "freqtail.runs.evaluation",
    "Explanation": "freqtail.runs.explain",
    "explain_sensitivity": "freqtail.runs.explain",
    "explain_landscape": "freqtail.runs.explain",
    "explain_heatmap": "freqtail.runs.explain",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RunLayout", *sorted(_LAZY)]
