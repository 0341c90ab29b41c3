"""The names of everything a run folder holds: the one place they are spelled.

A run folder (``runs/NAME/``) is written by ``freqtail train`` and grows with every evaluation and
explanation of that run::

    runs/NAME/
      config.yaml              the training configuration          (freqtail train)
      metrics.jsonl            one JSON record per epoch           (freqtail train)
      checkpoints/             weights, optimiser state, pointers  (freqtail train)
      tensorboard/             TensorBoard event files per epoch   (freqtail train, log: tensorboard)
      .freqtail-train.lock     held while a training process runs in the folder
      results.json             every evaluated number with its settings (freqtail evaluate)
      results.md               the same as paper-style tables
      .results.lock            held while a process merges into results.json
      eval-cache/              generated -C sets, AutoAttack progress (resumable)
      sensitivity.json/.npz    freqtail sensitivity (sensitivity.partial.rank<r>.npz while it runs)
      landscape.json/.npz      freqtail landscape (landscape.partial.rank<r>.npz while it runs)
      heatmap.json/.npz        freqtail heatmap (heatmap.partial.rank<r>.npz while it runs)
      spectrum.json, bass.json dataset facts (freqtail spectrum --json, the demo)
      figures/*.png            every figure
      report.html, report.md   freqtail report

A grid folder (:mod:`freqtail.workflows.grid_manifest`) holds one ordinary run folder per cell and,
at its top, the grid's manifest and locks::

    GRID/
      grid.json                the spec and every cell's state (format ``freqtail-grid``)
      .grid.lock               held while a process reads, changes and writes grid.json
      .grid-cells/NAME.lock    held by the launcher running cell NAME (ends with its process)
      table.md/.csv/.tex       the grid's cells against the paper's tables (rewritten per cell)
      grid-report.html         the table and the measured-vs-published figure in one page
      measured-vs-published.png/.svg  that figure as files
      .slurm/                  Slurm job scripts, logs and submitit's pickles (--launcher slurm)
      NAME/                    the cell's run folder

A demo folder (``freqtail demo``) holds the four run folders and, at its top, the demo's own
summary ``demo-summary.json`` (every run's key numbers with their settings; never a
``results.json``, which always means one run's evaluation records).

This module only names paths (it imports nothing heavy), so every layer may use it: the trainer,
evaluation, the analyses, the report and the workflows (:class:`freqtail.workflows.RunFolder` builds
on it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
#: TensorBoard event files of a run (config key ``log: tensorboard``, :mod:`freqtail.train.tensorboard_log`).
TENSORBOARD_DIR = "tensorboard"
TRAIN_LOCK = ".freqtail-train.lock"
RESULTS_FILE = "results.json"
RESULTS_MD = "results.md"
RESULTS_LOCK = ".results.lock"
EVAL_CACHE_DIR = "eval-cache"
FIGURES_DIR = "figures"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
#: The demo's summary at the top of a demo folder (format ``freqtail-demo-summary``).
DEMO_SUMMARY_FILE = "demo-summary.json"
#: A grid folder's manifest (format ``freqtail-grid``), its lock and the folder of per-cell locks.
GRID_MANIFEST = "grid.json"
GRID_LOCK = ".grid.lock"
GRID_CELL_LOCKS_DIR = ".grid-cells"
#: A grid folder's Slurm folder (``--launcher slurm``): job scripts, job logs, submitit's pickles.
GRID_SLURM_DIR = ".slurm"
#: A grid folder's tables against the paper (:mod:`freqtail.workflows.grid_table`): Markdown, CSV, LaTeX.
GRID_TABLE_MD = "table.md"
GRID_TABLE_CSV = "table.csv"
GRID_TABLE_TEX = "table.tex"
#: A grid folder's HTML report (:mod:`freqtail.workflows.grid_report`; not the run report's name, since a
#: demo folder is a grid folder with a run report of its own) and
#: its figure of measured against published accuracy, as PNG (embedded in the page) and SVG.
GRID_REPORT_HTML = "grid-report.html"
GRID_FIGURE_PNG = "measured-vs-published.png"
GRID_FIGURE_SVG = "measured-vs-published.svg"
#: Analyses whose results a run folder holds as ``<kind>.json`` (+ ``<kind>.npz`` for the first three).
ANALYSES = ("sensitivity", "landscape", "heatmap")
#: Dataset facts a folder may hold as ``<kind>.json``.
DATA_FACTS = ("spectrum", "bass")
#: Figure key -> file name under ``figures/`` (the PNG, which the report embeds; the analyses also write
#: ``.pdf`` and ``.svg`` beside it unless told otherwise, :mod:`freqtail.report.figure_formats`).
FIGURES = {
    "spectrum": "spectrum.png",
    "bass_examples": "bass_examples.png",
    "sensitivity": "sensitivity.png",
    "long_tail": "long_tail.png",
    "landscape": "landscape.png",
    "landscape_3d": "landscape_3d.png",
    "heatmap": "heatmap.png",
}


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (nothing is created or read here).

    Attributes:
        folder: the run folder.
    """

    folder: Path

    @classmethod
    def of(cls, folder: str | os.PathLike) -> RunLayout:
        return cls(Path(folder).expanduser())

    @property
    def config(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.folder / METRICS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.folder / CHECKPOINTS_DIR

    @property
    def tensorboard(self) -> Path:
        """The folder of the run's TensorBoard event files (:data:`TENSORBOARD_DIR`)."""
        return self.folder / TENSORBOARD_DIR

    @property
    def train_lock(self) -> Path:
        return self.folder / TRAIN_LOCK

    @property
    def results(self) -> Path:
        return self.folder / RESULTS_FILE

    @property
    def results_md(self) -> Path:
        return self.folder / RESULTS_MD

    @property
    def results_lock(self) -> Path:
        return self.folder / RESULTS_LOCK

    @property
    def eval_cache(self) -> Path:
        return self.folder / EVAL_CACHE_DIR

    @property
    def figures(self) -> Path:
        return self.folder / FIGURES_DIR

    @property
    def report_html(self) -> Path:
        return self.folder / REPORT_HTML

    @property
    def report_md(self) -> Path:
        return self.folder / REPORT_MD

    @property
    def demo_summary(self) -> Path:
        """A demo folder's summary (:data:`DEMO_SUMMARY_FILE`)."""
        return self.folder / DEMO_SUMMARY_FILE

    def figure(self, key: str) -> Path:
        """The file of figure ``key`` (one of :data:`FIGURES`)."""
        return self.figures / FIGURES[key]

    def json(self, kind: str) -> Path:
        """``<kind>.json`` of an analysis (:data:`ANALYSES`) or dataset fact (:data:`DATA_FACTS`)."""
        if kind not in ANALYSES and kind not in DATA_FACTS:
            raise ValueError(f"unknown run-folder JSON kind {kind!r}")
        return self.folder / f"{kind}.json"

    def arrays(self, kind: str) -> Path:
        """``<kind>.npz``: the raw arrays of an analysis (:data:`ANALYSES`)."""
        if kind not in ANALYSES:
            raise ValueError(f"unknown analysis {kind!r}")
        return self.folder / f"{kind}.npz"

    @property
    def landscape_partial(self) -> Path:
        """The base name of the per-rank partial files of a landscape still being computed
        (``landscape.partial.rank<r>.npz``, :func:`freqtail.analysis.loss_landscape`'s ``partial_path``)."""
        return self.partial("landscape")

    def partial(self, kind: str) -> Path:
        """The base name of the per-rank partial files of an analysis still being computed
        (``<kind>.partial.rank<r>.npz``: the ``partial_path`` of :func:`freqtail.analysis.loss_landscape`,
        :func:`~freqtail.analysis.fourier_heatmap` and :func:`~freqtail.analysis.frequency_sensitivity`)."""
        if kind not in ANALYSES:
            raise ValueError(f"unknown analysis {kind!r}")
        return self.folder / f"{kind}.partial.npz"

    def markers(self) -> tuple[Path, ...]:
        """Files and folders any of which makes a folder a run folder (for the report)."""
        return (
            self.config,
            self.metrics,
            self.results,
            self.demo_summary,
            self.checkpoints,
            *(self.json(kind) for kind in (*DATA_FACTS, *ANALYSES)),
        )


@dataclass(frozen=True)
class GridLayout:
    """The paths of one grid folder (nothing is created or read here).

    Attributes:
        folder: the grid folder; each cell's run folder is ``folder/<cell name>/``.
    """

    folder: Path

    @classmethod
    def of(cls, folder: str | os.PathLike) -> GridLayout:
        return cls(Path(folder).expanduser())

    @property
    def manifest(self) -> Path:
        """``grid.json`` (:data:`GRID_MANIFEST`)."""
        return self.folder / GRID_MANIFEST

    @property
    def lock(self) -> Path:
        """The lock held around every read-modify-write of the manifest (:data:`GRID_LOCK`)."""
        return self.folder / GRID_LOCK

    @property
    def table_md(self) -> Path:
        """The grid's table against the paper as Markdown (:data:`GRID_TABLE_MD`)."""
        return self.folder / GRID_TABLE_MD

    @property
    def table_csv(self) -> Path:
        """The same as CSV, one row per cell and column (:data:`GRID_TABLE_CSV`)."""
        return self.folder / GRID_TABLE_CSV

    @property
    def table_tex(self) -> Path:
        """The same as a LaTeX (booktabs) fragment (:data:`GRID_TABLE_TEX`)."""
        return self.folder / GRID_TABLE_TEX

    @property
    def report_html(self) -> Path:
        """The grid's self-contained HTML report (:data:`GRID_REPORT_HTML`)."""
        return self.folder / GRID_REPORT_HTML

    @property
    def figure_png(self) -> Path:
        """The report's figure of measured against published accuracy as PNG (:data:`GRID_FIGURE_PNG`)."""
        return self.folder / GRID_FIGURE_PNG

    @property
    def figure_svg(self) -> Path:
        """The same figure as SVG (:data:`GRID_FIGURE_SVG`)."""
        return self.folder / GRID_FIGURE_SVG

    @property
    def slurm(self) -> Path:
        """Where the Slurm launcher keeps job scripts, job logs and submitit's pickles
        (:data:`GRID_SLURM_DIR`)."""
        return self.folder / GRID_SLURM_DIR

    def run_dir(self, cell: str) -> Path:
        """The run folder of cell ``cell``."""
        return self.folder / cell

    def cell_lock(self, cell: str) -> Path:
        """The lock a launcher holds while it runs cell ``cell`` (released by the OS when it dies)."""
        return self.folder / GRID_CELL_LOCKS_DIR / f"{cell}.lock"
