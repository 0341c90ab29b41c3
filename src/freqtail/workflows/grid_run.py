"""The local sequential launcher of a grid: claim a cell, run it, record it, until none is left.

:func:`run_grid` opens the grid folder's manifest (:class:`~freqtail.workflows.grid_manifest.GridManifest`)
and loops: :meth:`~GridManifest.claim` -> ``cell_runner(cell, run_dir)`` -> :meth:`~GridManifest.finish`
or :meth:`~GridManifest.fail`. A failing cell is recorded with one sentence saying why and the others go
on; Ctrl-C puts the current cell back to ``pending`` (it resumes next time) and is raised again.
Several launchers (processes, machines on a shared filesystem) may run one grid at once: each cell
runs once.

Rerunning the same call is always safe: done cells are skipped, a cell whose launcher died is taken
over (and said so), a partial run resumes from its checkpoint (:func:`run_cell`: ``train_run`` with
``resume=True``), stored evaluation numbers are skipped, failed cells are retried while they have
tries left (``retries``).

After every finished or failed cell the grid's table against the paper (``GRID/table.md``, ``.csv``,
``.tex``; :func:`~freqtail.workflows.grid_table.write_grid_table`) is rewritten; a table that cannot
be written is one logged sentence and never fails the grid.

>>> from freqtail.workflows.grid_spec import GridSpec
>>> from freqtail.workflows.grid_run import run_grid
>>> outcome = run_grid(GridSpec.family("t1", overrides={"data_root": "~/data"}), "grids/t1")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.checks import check_int
from freqtail.errors import ConfigError, FreqtailError
from freqtail.workflows.evaluation import evaluate_run
from freqtail.workflows.grid_manifest import CellRecord, GridManifest, GridSummary, new_launcher_id
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
    """Rewrite the grid's table (:func:`~freqtail.workflows.grid_table.write_grid_table`); any error
    is said in one sentence and swallowed, so a table never fails the grid."""
    try:
        write_grid_table(folder)
    except Exception as err:  # the table is a view: the grid goes on without it
        words = (str(err).strip().splitlines() or [""])[0].rstrip(".") or "no message"
        say(f"The grid table in {folder} was not updated ({type(err).__name__}: {words}); the grid goes on.")


def run_cell(
    cell: GridCell,
    run_dir: Path,
    spec: GridSpec,
    *,
    log: Callable[[str], None] | None = None,
    nproc: int = 1,
) -> None:
    """The real pipeline of one cell: train it into ``run_dir``, then evaluate it there.

    Training is :func:`~freqtail.workflows.training.train_run` with ``resume=True`` (a partial run
    continues exactly from its checkpoint, a complete one is skipped); with ``nproc`` > 1 it is the
    same training by ``nproc`` processes under torchrun in a child process group
    (:func:`~freqtail.workflows.torchrun_training.train_with_torchrun`). The evaluation then runs in
    this process: :func:`~freqtail.workflows.evaluation.evaluate_run` of
    :meth:`GridSpec.evaluation_request` (``spec.suites``, numbers already in ``results.json`` skipped).

    Raises:
        KeyboardInterrupt: training stopped on Ctrl-C / SIGTERM (an ``interrupted`` checkpoint was
            written; the cell resumes next time).
        FreqtailError: one sentence on what went wrong in training (on any rank) or evaluation.
    """
    nproc = check_int(nproc, "The training processes per cell", minimum=1, error=ConfigError)
    if nproc > 1:
        train_with_torchrun(cell.config, Path(run_dir), nproc, log=log)
    else:
        result = train_run(TrainRequest(cell.config, Path(run_dir), resume=True, log=log))
        if result.status == "interrupted":
            raise KeyboardInterrupt(f"training of the grid cell {cell.name} was stopped")
    evaluate_run(RunFolder.open(run_dir), spec.evaluation_request())


def run_grid(
    spec: GridSpec,
    folder: str | os.PathLike,
    *,
    cell_runner: CellRunner | None = None,
    retries: int = 1,
    only: str | None = None,
    launcher_id: str | None = None,
    log: Callable[[str], None] | None = print,
) -> GridOutcome:
    """Run every claimable cell of ``spec`` in ``folder``, one after another (see the module docstring).

    Args:
        spec: the grid; folder: its folder (created; refused if it holds another grid).
        cell_runner: ``runner(cell, run_dir)`` (``run_dir`` exists, empty at the first attempt);
            None = :func:`run_cell` with ``spec``.
        retries: further tries of a failed cell after its first (counted across calls).
        only: a shell pattern on cell names (:meth:`GridSpec.cells`); None = every cell.
        launcher_id: recorded with every claimed cell; None = :func:`new_launcher_id`.
        log: receives one line per event (None = silent).

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
    runner = cell_runner if cell_runner is not None else (lambda cell, run_dir: run_cell(cell, run_dir, spec))
    order = {cell.name: index for index, cell in enumerate(spec.cells(), 1)}
    total = len(order)
    finished: list[str] = []
    failed: list[tuple[str, str]] = []
    taken_over: list[str] = []

    def takeover(message: str) -> None:
        taken_over.append(message)
        say(message)

    while True:
        cell = manifest.claim(launcher, retries=retries, only=names, log=takeover)
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


__all__ = ["CellRunner", "GridOutcome", "failure_sentence", "refresh_table", "run_cell", "run_grid"]
