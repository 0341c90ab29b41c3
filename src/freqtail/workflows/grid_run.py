"""The local sequential launcher of a grid: claim a cell, run it, record it, until none is left.

:func:`run_grid` opens the grid folder's manifest (:class:`~freqtail.workflows.grid_manifest.GridManifest`)
and loops: :meth:`~GridManifest.claim` -> ``cell_runner(cell, run_dir)`` -> :meth:`~GridManifest.finish`
or :meth:`~GridManifest.fail`. A failing cell is recorded with one sentence saying why and the others go
on; Ctrl-C puts the current cell back to ``pending`` (it resumes next time) and is raised again.
Several launchers (processes, machines on a shared filesystem) may run one grid at once: each cell
runs once.

A cell's pipeline is :func:`run_cell`, the one pipeline of every cell (``freqtail grid run``,
``freqtail reproduce`` and ``freqtail demo``): train -> evaluate with the grid's suites -> the
analyses the grid runs for the cell (:meth:`GridSpec.analyses_for`: eps sweeps, explanations), each
step reported as a :class:`CellStep`.

Rerunning the same call is always safe: done cells are skipped, a cell whose launcher died is taken
over (and said so), a partial run resumes from its checkpoint (:func:`run_cell`: ``train_run`` with
``resume=True``), stored evaluation numbers are skipped, explanations already written are not run
again, failed cells are retried while they have tries left (``retries``).

After every finished or failed cell the grid's table against the paper (``GRID/table.md``, ``.csv``,
``.tex``; :func:`~freqtail.workflows.grid_table.write_grid_table`) and its HTML report
(``GRID/grid-report.html`` with its figure; :func:`~freqtail.workflows.grid_report.write_grid_report`) are
rewritten; a table or report that cannot be written is one logged sentence and never fails the grid.

>>> from freqtail.workflows.grid_spec import GridSpec
>>> from freqtail.workflows.grid_run import run_grid
>>> outcome = run_grid(GridSpec.family("t1", overrides={"data_root": "~/data"}), "grids/t1")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.checks import check_int
from freqtail.distributed import DistContext
from freqtail.errors import ConfigError, FreqtailError
from freqtail.evaluate.request import EvaluationRequest
from freqtail.train.config import RUNTIME_KEYS, TrainConfig
from freqtail.workflows.evaluation import evaluate_run
from freqtail.workflows.explain import analysis_of, explain
from freqtail.workflows.grid_analyses import EpsSweep, GridAnalysis
from freqtail.workflows.grid_manifest import CellJob, CellRecord, GridManifest, GridSummary, new_launcher_id
from freqtail.workflows.grid_report import write_grid_report
from freqtail.workflows.grid_spec import GridCell, GridSpec
from freqtail.workflows.grid_table import write_grid_table
from freqtail.workflows.run_folder import RunFolder
from freqtail.workflows.torchrun_training import train_with_torchrun
from freqtail.workflows.training import TrainRequest, train_run

#: ``cell_runner(cell, run_dir)``: run one cell into its run folder; return normally when it is done,
#: raise when it failed (a :class:`~freqtail.errors.FreqtailError`'s sentence is recorded as is).
CellRunner = Callable[[GridCell, Path], Any]
#: Longest failure sentence recorded (characters).
MAX_WHY = 400


#: The first two steps of every cell's pipeline; the analyses' kinds follow (:func:`cell_steps`).
TRAIN_STEP, EVALUATE_STEP = "train", "evaluate"


@dataclass(frozen=True)
class CellStep:
    """One finished step of a cell's pipeline (:func:`run_cell`).

    Attributes:
        cell: the cell's name.
        step: ``"train"``, ``"evaluate"`` or an analysis kind (``"eps-sweep"``, ``"sensitivity"``,
            ``"landscape"``, ``"heatmap"``).
        index: the step's place in :func:`cell_steps` (0 = train).
        reused: nothing had to be computed: the run was complete, every number was stored, the
            explanation existed.
        seconds: how long the step took (wall time).
    """

    cell: str
    step: str
    index: int
    reused: bool
    seconds: float


def cell_steps(cell: GridCell, spec: GridSpec) -> tuple[str, ...]:
    """The steps :func:`run_cell` runs for ``cell``, in order: train, evaluate, each analysis' kind."""
    return (TRAIN_STEP, EVALUATE_STEP, *(entry.kind for entry in spec.analyses_for(cell.name)))


@dataclass(frozen=True)
class GridOutcome:
    """What :func:`run_grid` did.

    Attributes:
        folder: the grid folder; launcher: this launcher's id.
        finished: cells this call ran to ``done``, in order.
        failed: ``(cell, why)`` of every attempt of this call that failed.
        taken_over: one sentence per stale cell this call took over from a launcher that died.
        summary: the counts per state after the call (all cells, also those of other launchers).
        states: every cell's row after the call.
    """

    folder: Path
    launcher: str
    finished: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    taken_over: tuple[str, ...]
    summary: GridSummary
    states: tuple[CellRecord, ...]


def failure_sentence(err: BaseException) -> str:
    """One sentence saying why a cell failed: a freqtail error's own sentence, else the exception's
    type and first line (at most :data:`MAX_WHY` characters)."""
    if isinstance(err, FreqtailError):
        text = str(err).strip() or type(err).__name__
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        text = f"The cell raised {type(err).__name__}: {first}"
    text = " ".join(text.split())
    if len(text) > MAX_WHY:
        text = text[: MAX_WHY - 3] + "..."
    return text if text.endswith((".", "!", "?", "...")) else text + "."


def refresh_table(folder: Path, say: Callable[[str], None]) -> None:
    """Rewrite the grid's table (:func:`~freqtail.workflows.grid_table.write_grid_table`) and its
    HTML report (:func:`~freqtail.workflows.grid_report.write_grid_report`); an error of either is
    said in one sentence and swallowed, so neither ever fails the grid (nor stops the other)."""
    for what, write in (("table", write_grid_table), ("report", write_grid_report)):
        try:
            write(folder)
        except Exception as err:  # the table and the report are views: the grid goes on without them
            words = (str(err).strip().splitlines() or [""])[0].rstrip(".") or "no message"
            why = f"{type(err).__name__}: {words}"
            say(f"The grid {what} in {folder} was not updated ({why}); the grid goes on.")


def cell_config(cell: GridCell, runtime: Mapping[str, Any] | None = None) -> TrainConfig:
    """The config ``cell`` trains with: its own, with ``runtime`` applied to it (``{"log":
    "tensorboard"}``, the launcher's ``--log``). Only runtime keys
    (:data:`~freqtail.train.config.RUNTIME_KEYS`: how a run executes, not what it computes) may be
    given, so the cell keeps its config hash and the grid its digest.

    Raises:
        ConfigError: a key that is not a runtime key, or a bad value (one sentence).
    """
    if not runtime:
        return cell.config
    others = [key for key in runtime if key not in RUNTIME_KEYS]
    if others:
        raise ConfigError(
            f"Only runtime keys ({', '.join(RUNTIME_KEYS)}) can be set on every cell of a grid that is "
            f"run, not {others[0]}; put it in the grid spec (set:)."
        )
    return cell.config.replace(**runtime)


def run_cell(
    cell: GridCell,
    run_dir: Path,
    spec: GridSpec,
    *,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Any] = (),
    on_step: Callable[[CellStep], None] | None = None,
    runtime: Mapping[str, Any] | None = None,
    context: DistContext | None = None,
    nproc: int = 1,
) -> None:
    """The pipeline of one cell: train it into ``run_dir``, evaluate it there, run its analyses.

    Training is :func:`~freqtail.workflows.training.train_run` of :func:`cell_config` (``runtime``
    applied) with ``resume=True`` (a partial run continues exactly from its checkpoint, a complete
    one is skipped); the evaluation is :func:`~freqtail.workflows.evaluation.evaluate_run` of
    :meth:`GridSpec.evaluation_request` (``spec.suites``, numbers already in ``results.json``
    skipped); then each of :meth:`GridSpec.analyses_for` the cell (an eps sweep's budgets evaluated
    the same way; an explanation skipped when its ``<kind>.json`` exists).

    Args:
        log: one-line messages (the trainer's, and one per step); None = the trainer's default.
        callbacks: the trainer's callbacks (``on_epoch_end(trainer, record)``, ...).
        on_step: called with a :class:`CellStep` after each step (:func:`cell_steps`).
        runtime: runtime config keys applied to the cell's config (:func:`cell_config`).
        context: this process's place in a process group the caller joined (every rank calls this;
            None = one process): the evaluations are shared by the ranks, explanations run on rank 0.
        nproc: training processes: above 1, the training is the same by ``nproc`` processes under
            torchrun in a child process group
            (:func:`~freqtail.workflows.torchrun_training.train_with_torchrun`; not with ``context``,
            whose group is the caller's); the evaluation and analyses then run in this process.

    Raises:
        KeyboardInterrupt: training stopped on Ctrl-C / SIGTERM (an ``interrupted`` checkpoint was
            written; the cell resumes next time).
        FreqtailError: one sentence on what went wrong in training, evaluation or an analysis.
    """
    steps = cell_steps(cell, spec)

    def step(index: int, work: Callable[[], bool]) -> None:
        started = time.perf_counter()
        reused = bool(work())
        done = CellStep(cell.name, steps[index], index, reused, time.perf_counter() - started)
        if log is not None:
            words = "nothing new to compute" if reused else f"done in {done.seconds:.1f} s"
            log(f"{done.step}: {words}")
        if on_step is not None:
            on_step(done)

    nproc = check_int(nproc, "The training processes per cell", minimum=1, error=ConfigError)
    if nproc > 1 and context is not None:
        raise ConfigError("A cell trains either in the caller's process group or under torchrun, not both.")

    def train() -> bool:
        if nproc > 1:  # the child process group says nothing of a skip: the step counts as run
            train_with_torchrun(cell_config(cell, runtime), Path(run_dir), nproc, log=log)
            return False
        request = TrainRequest(
            cell_config(cell, runtime), Path(run_dir), resume=True, log=log, callbacks=callbacks
        )
        result = train_run(request)
        if result.status == "interrupted":
            raise KeyboardInterrupt(f"training of the grid cell {cell.name} was stopped")
        return result.status == "already-complete"

    step(0, train)
    run = RunFolder.open(run_dir)
    evaluation = spec.evaluation_request()
    step(1, lambda: evaluate_run(run, evaluation, context=context).resumed)
    for index, entry in enumerate(spec.analyses_for(cell.name), 2):
        step(index, lambda entry=entry: run_analysis(entry, run, evaluation, context))


def run_analysis(
    entry: GridAnalysis, run: RunFolder, evaluation: EvaluationRequest, context: DistContext | None = None
) -> bool:
    """Run one analysis entry of a cell on its ``run``; returns True when nothing had to be measured.

    An :class:`~freqtail.workflows.grid_analyses.EpsSweep` evaluates every budget into the run's
    ``results.json`` (stored numbers skipped: ``evaluation`` has ``resume``), shared by the ranks of
    ``context`` (None = one process). A :class:`~freqtail.workflows.grid_analyses.CellExplanation`
    explains the run unless its ``<kind>.json`` exists; in a process group rank 0 alone explains
    (explanations run in one process).
    """
    if isinstance(entry, EpsSweep):
        reused = True
        for request in entry.requests(run, evaluation):
            reused = evaluate_run(run, request, context=context).resumed and reused
        return reused
    if context is not None and not context.is_main:
        return True
    if run.output.json(entry.kind).is_file():
        return True
    explain(run, analysis_of(entry.analysis), entry.request)
    return False


def run_grid(
    spec: GridSpec,
    folder: str | os.PathLike,
    *,
    cell_runner: CellRunner | None = None,
    retries: int = 1,
    only: str | None = None,
    launcher_id: str | None = None,
    job: CellJob | None = None,
    log: Callable[[str], None] | None = print,
    runtime: Mapping[str, Any] | None = None,
) -> GridOutcome:
    """Run every claimable cell of ``spec`` in ``folder``, one after another (see the module docstring).

    Args:
        spec: the grid; folder: its folder (created; refused if it holds another grid).
        cell_runner: ``runner(cell, run_dir)`` (``run_dir`` exists, empty at the first attempt);
            None = :func:`run_cell` with ``spec``.
        retries: further tries of a failed cell after its first (counted across calls).
        only: a shell pattern on cell names (:meth:`GridSpec.cells`); None = every cell.
        launcher_id: recorded with every claimed cell; None = :func:`new_launcher_id`.
        job: the cluster job this launcher runs in, recorded with every claimed cell (None: local).
        log: receives one line per event (None = silent).
        runtime: runtime keys applied to every cell by the default runner (:func:`cell_config`).

    Returns:
        :class:`GridOutcome`.

    Raises:
        KeyboardInterrupt: after putting the current cell back to ``pending``.
        InputError: the folder holds another grid (one sentence naming the first difference).
        ConfigError: ``only`` matches no cell, or ``retries`` is not a count.
    """
    check_int(retries, "The grid's retries", minimum=0, error=ConfigError)
    say = log if log is not None else (lambda _message: None)
    names: Collection[str] | None = None if only is None else {cell.name for cell in spec.cells(only)}
    manifest = GridManifest.open(folder, spec)
    launcher = launcher_id or new_launcher_id()
    runner = cell_runner
    if runner is None:
        runner = lambda cell, run_dir: run_cell(cell, run_dir, spec, runtime=runtime)  # noqa: E731
    order = {cell.name: index for index, cell in enumerate(spec.cells(), 1)}
    total = len(order)
    finished: list[str] = []
    failed: list[tuple[str, str]] = []
    taken_over: list[str] = []

    def takeover(message: str) -> None:
        taken_over.append(message)
        say(message)

    while True:
        cell = manifest.claim(launcher, retries=retries, only=names, log=takeover, job=job)
        if cell is None:
            break
        run_dir = manifest.layout.run_dir(cell.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        tag = f"[{order[cell.name]}/{total}] {cell.name}"
        say(f"{tag}: started")
        started = time.perf_counter()
        try:
            runner(cell, run_dir)
        except Exception as err:  # the cell failed; the others go on
            why = failure_sentence(err)
            manifest.fail(cell, why, time.perf_counter() - started)
            failed.append((cell.name, why))
            say(f"{tag}: failed: {why}")
            refresh_table(manifest.layout.folder, say)
            continue
        except BaseException:  # Ctrl-C (and SystemExit): the cell resumes next time
            manifest.release(cell)
            say(f"{tag}: interrupted; it is pending again and resumes on the next run.")
            raise
        seconds = time.perf_counter() - started
        manifest.finish(cell, seconds)
        finished.append(cell.name)
        say(f"{tag}: done in {seconds:.1f} s")
        refresh_table(manifest.layout.folder, say)
    summary = manifest.summary()
    say(
        f"Grid {manifest.layout.folder}: {summary.done} of {summary.total} cells done, {summary.failed} "
        f"failed, {summary.running} running elsewhere, {summary.pending} pending."
    )
    return GridOutcome(
        folder=manifest.layout.folder,
        launcher=launcher,
        finished=tuple(finished),
        failed=tuple(failed),
        taken_over=tuple(taken_over),
        summary=summary,
        states=manifest.states(),
    )


__all__ = [
    "EVALUATE_STEP",
    "TRAIN_STEP",
    "CellRunner",
    "CellStep",
    "GridOutcome",
    "cell_config",
    "cell_steps",
    "failure_sentence",
    "refresh_table",
    "run_cell",
    "run_grid",
]
