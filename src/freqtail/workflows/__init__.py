"""The orchestration floor: the only library package that knows a run as a whole.

Above ``train``, ``evaluate``, ``analysis`` and ``report`` (which never import it), below the command
line (``freqtail ...``), which parses options into the requests here and prints what comes back:

* :mod:`~freqtail.workflows.run_folder` — :class:`RunFolder`: a trained run opened once, its settings
  resolved (:class:`RunSettings`), the model as each threat model sees it, each threat model's test
  data, ``results.json`` merged under a lock (:class:`ResultsStore`);
* :mod:`~freqtail.workflows.run_model` — :func:`load_model_from_run`: a model rebuilt from a run
  folder, a checkpoint or bare weights (the one "bare weights?" rule);
* :mod:`~freqtail.workflows.training` — :func:`train_run`: a :class:`TrainRequest` trained into a run
  folder (the run-directory policy: fresh / resume / force, the folder's lock);
* :mod:`~freqtail.workflows.evaluation` — :func:`evaluate_run`: an
  :class:`~freqtail.evaluate.EvaluationRequest` evaluated on a run, into its folder;
* :mod:`~freqtail.workflows.explain` — :func:`explain`: one template for the sensitivity, landscape
  and heat-map analyses of a run (their options and :class:`ExplainRequest`, checked without torch:
  :mod:`~freqtail.workflows.explain_options`);
* :mod:`~freqtail.workflows.demo` — ``freqtail demo``: the whole pipeline on the embedded dataset, a
  four-cell grid run by :func:`run_grid`;
* :mod:`~freqtail.workflows.grid_spec` — :class:`GridSpec`: an experiment grid (a base and a product
  of axes and/or explicit cells, or a preset family of the paper), each :class:`GridCell` a validated
  config with a readable name;
* :mod:`~freqtail.workflows.grid_analyses` — :class:`EpsSweep`, :class:`CellExplanation`: what a cell
  runs after its evaluation (an eps sweep, an explanation), checked when the spec is built;
* :mod:`~freqtail.workflows.grid_manifest` — :class:`GridManifest`: the grid folder's ``grid.json``
  (every cell's state), claimed and updated under the grid's lock, stale cells taken over;
* :mod:`~freqtail.workflows.grid_run` — :func:`run_grid`: the local sequential launcher (claim, run
  the cell's pipeline :func:`run_cell`: train, evaluate, analyses; record, until nothing is left),
  rewriting the grid's table and report after each cell;
* :mod:`~freqtail.workflows.grid_devices` — :func:`~freqtail.workflows.grid_devices.plan_devices`:
  which GPUs each launcher process gets (``--gpus``, ``--jobs``, ``--nproc-per-cell``);
* :mod:`~freqtail.workflows.torchrun_training` — a run folder trained by K processes under torchrun
  as a child process group (what ``run_cell(..., nproc=K)`` does);
* :mod:`~freqtail.workflows.grid_table` — :func:`grid_table` / :func:`write_grid_table`: the grid's
  cells beside the paper's published Tables 1, 3 and 4 and Figure 3's measured values
  (``GRID/table.md``, ``.csv``, ``.tex``);
* :mod:`~freqtail.workflows.grid_report` — :func:`write_grid_report`: the grid's self-contained
  ``GRID/grid-report.html``, the table and a figure of measured against published accuracy.
* :mod:`~freqtail.workflows.grid_slurm` — :func:`~freqtail.workflows.grid_slurm.submit_grid`: the
  Slurm launcher (one job array per submission, through submitit, the ``slurm`` extra; not imported
  here, so that the package works without it) and its array task
  :mod:`~freqtail.workflows.grid_slurm_task`.

Example:
    >>> from freqtail.evaluate import EvaluationRequest
    >>> from freqtail.workflows import RunFolder, evaluate_run
    >>> run = RunFolder.open("runs/erm-bass")
    >>> outcome = evaluate_run(run, EvaluationRequest(suites="clean,pgd20", n=500))
    >>> [(r["threat_model"], r["metric"], r["accuracy"]) for r in outcome.records]
"""

from __future__ import annotations

from freqtail.lazy_exports import keep_exports, lazy_attributes

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "RunEvaluation": "evaluation",
    "evaluate_run": "evaluation",
    "ExplainRequest": "explain",
    "Explanation": "explain",
    "HeatmapAnalysis": "explain",
    "LandscapeAnalysis": "explain",
    "SensitivityAnalysis": "explain",
    "explain": "explain",
    "CellExplanation": "grid_analyses",
    "EpsSweep": "grid_analyses",
    "CellRecord": "grid_manifest",
    "CellState": "grid_manifest",
    "GridManifest": "grid_manifest",
    "GridSummary": "grid_manifest",
    "GridReport": "grid_report",
    "write_grid_report": "grid_report",
    "CellStep": "grid_run",
    "GridOutcome": "grid_run",
    "run_cell": "grid_run",
    "run_grid": "grid_run",
    "CellSpec": "grid_spec",
    "GridCell": "grid_spec",
    "GridSpec": "grid_spec",
    "grid_table": "grid_table",
    "write_grid_table": "grid_table",
    "ResultsStore": "results_store",
    "RunFolder": "run_folder",
    "RunSettings": "run_folder",
    "state_digest": "run_folder",
    "is_bare_weights": "run_model",
    "load_model_from_run": "run_model",
    "TrainRequest": "training",
    "train_run": "training",
}

__all__ = sorted(_EXPORTS)

keep_exports(__name__, ("explain", "grid_table"))  # the functions, not their submodules of the same name


# Lazy (PEP 562): the command line checks explanation options and grid specs with torch-free modules
# of this package (freqtail.workflows.explain_options, grid_spec) before torch is imported, and
# importing either runs this package first.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
