"""What a grid folder's cells are doing: the manifest's rows plus each cell's training progress.

:func:`grid_status` reads the manifest without the spec
(:func:`~freqtail.workflows.grid_manifest.read_states`) and, for each cell, the last record of its
run folder's ``metrics.jsonl`` (through :func:`freqtail.train.checkpointing.metrics_lines`): the epoch
reached, the epochs the cell trains, the last test accuracy and the measured seconds per epoch (the
mean ``epoch_time`` of its records), from which the training time left follows:
``seconds_per_epoch * (epochs - epoch)``. The estimate covers training only (a cell's evaluation comes
after it) and is absent until a cell has finished an epoch. Nothing is written; a grid being run by
launchers may be read at any time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.formatting import duration
from freqtail.train.checkpointing import metrics_lines
from freqtail.workflows.grid_manifest import CellRecord, CellState, GridSummary, read_states


@dataclass(frozen=True)
class CellStatus:
    """One cell's row of a status view.

    Attributes:
        record: the manifest's row (state, holder, attempts, why, timings).
        epoch: the last epoch in its ``metrics.jsonl`` (None before the first one).
        epochs: the epochs the cell trains (None for a run counted in ``steps``).
        test_acc: the last recorded test accuracy (None while unknown).
        seconds_per_epoch: the mean ``epoch_time`` of its ``metrics.jsonl`` records, seconds (None
            before the first epoch).
    """

    record: CellRecord
    epoch: int | None
    epochs: int | None
    test_acc: float | None
    seconds_per_epoch: float | None = None

    @property
    def seconds_left(self) -> float | None:
        """Training seconds left at the measured speed: ``seconds_per_epoch * (epochs - epoch)`` for a
        cell that is not done or failed (None when unknown, 0 once every epoch is trained)."""
        if self.record.state in (CellState.DONE, CellState.FAILED):
            return None
        if self.seconds_per_epoch is None or self.epoch is None or self.epochs is None:
            return None
        return self.seconds_per_epoch * max(self.epochs - self.epoch, 0)

    @property
    def since(self) -> str | None:
        """When the cell's current state began: the claim while running, else the last finish."""
        record = self.record
        if record.holder is not None:
            return record.holder.since
        return record.timings.finished or record.timings.started

    def line(self) -> str:
        """``NAME  STATE  on HOST (pid N) since T, attempts A, epoch E/T, test_acc X[, why: ...]``, with
        ``slurm job J, log L`` after the host when a cluster job runs (or ran, or is to run) the cell."""
        record = self.record
        parts = [f"{record.name}  {record.state.value}"]
        details = []
        if record.holder is not None:
            details.append(f"on {record.holder.host} (pid {record.holder.pid})")
        if record.job is not None:
            details.append(f"{record.job.scheduler} job {record.job.job_id}, log {record.job.stdout}")
        if self.since is not None:
            details.append(f"since {self.since}")
        details.append(f"attempts {record.attempts}")
        if self.epoch is not None:
            details.append(f"epoch {self.epoch}/{self.epochs if self.epochs is not None else '?'}")
        if self.test_acc is not None:
            details.append(f"test_acc {self.test_acc:.4f}")
        left = self.seconds_left
        if left is not None:
            details.append(f"training left {duration(left)} at {self.seconds_per_epoch:.1f} s/epoch")
        if record.state is CellState.FAILED and record.why:
            details.append(f"why: {record.why}")
        return "  ".join(parts) + "  " + ", ".join(details)

    def to_json(self) -> dict[str, Any]:
        record = self.record
        holder = record.holder
        return {
            "name": record.name,
            "state": record.state.value,
            "run_dir": str(record.run_dir),
            "host": None if holder is None else holder.host,
            "pid": None if holder is None else holder.pid,
            "launcher": None if holder is None else holder.launcher,
            "job_id": None if record.job is None else record.job.job_id,
            "log": None if record.job is None else str(record.job.stdout),
            "error_log": None if record.job is None else str(record.job.stderr),
            "since": self.since,
            "attempts": record.attempts,
            "why": record.why,
            "seconds": record.timings.seconds,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "test_acc": self.test_acc,
            "seconds_per_epoch": self.seconds_per_epoch,
            "seconds_left": self.seconds_left,
        }


@dataclass(frozen=True)
class GridStatus:
    """A grid folder's status: ``folder``, one :class:`CellStatus` per cell and the counts per state."""

    folder: Path
    cells: tuple[CellStatus, ...]
    summary: GridSummary

    @property
    def seconds_left(self) -> float | None:
        """The summed training time left of the cells with a measured speed (None when none has one);
        cells that have not trained an epoch yet are not counted (their speed is not measured)."""
        left = [cell.seconds_left for cell in self.cells if cell.seconds_left is not None]
        return sum(left) if left else None

    @property
    def settled(self) -> bool:
        """Every cell is done or failed (nothing runs or waits)."""
        return self.summary.running == 0 and self.summary.pending == 0

    def totals_line(self) -> str:
        s = self.summary
        line = (
            f"Grid {self.folder}: {s.total} cells, {s.done} done, {s.running} running, {s.failed} failed, "
            f"{s.pending} pending"
        )
        if self.seconds_left is not None:
            line += f"; about {duration(self.seconds_left)} of training left in the cells that have started"
        return line + "."

    def to_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "folder": str(self.folder),
            "cells": [cell.to_json() for cell in self.cells],
            "summary": {
                "total": s.total,
                "done": s.done,
                "running": s.running,
                "failed": s.failed,
                "pending": s.pending,
            },
            "seconds_left": self.seconds_left,
        }


def _records(run_dir: Path) -> list[dict[str, Any]]:
    """The complete records of a run folder's ``metrics.jsonl`` (a torn last line is left out)."""
    records = []
    for line in metrics_lines(run_dir):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def cell_status(record: CellRecord) -> CellStatus:
    """A manifest row with its cell's training progress and measured speed."""
    records = _records(record.run_dir)
    last = records[-1] if records else {}
    epochs = _number(record.config.get("epochs")) if record.config.get("steps") is None else None
    epoch = _number(last.get("epoch"))
    times = [t for t in (_number(r.get("epoch_time")) for r in records) if t is not None]
    return CellStatus(
        record,
        None if epoch is None else int(epoch),
        None if epochs is None else int(epochs),
        _number(last.get("test_acc")),
        sum(times) / len(times) if times else None,
    )


def grid_status(folder: str | os.PathLike) -> GridStatus:
    """The status of the grid in ``folder``.

    Raises:
        InputError: ``folder`` is not a grid folder, or its manifest is damaged (one sentence).
    """
    records = read_states(folder)
    counts = {state: 0 for state in CellState}
    for record in records:
        counts[record.state] += 1
    summary = GridSummary(
        counts[CellState.PENDING], counts[CellState.RUNNING], counts[CellState.DONE], counts[CellState.FAILED]
    )
    return GridStatus(Path(folder).expanduser(), tuple(cell_status(r) for r in records), summary)


__all__ = ["CellStatus", "GridStatus", "cell_status", "duration", "grid_status"]
