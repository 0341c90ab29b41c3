"""The grid folder's manifest, ``GRID/grid.json``: the spec and the state of every cell; its one owner.

A grid folder (names in :mod:`freqtail.runs.layout`, :class:`~freqtail.runs.layout.GridLayout`)
holds one ordinary run folder per cell (``GRID/<cell name>/``) and the manifest::

    {"format": "freqtail-grid", "version": 1,
     "digest": "<GridSpec.digest()>", "spec": {<GridSpec.to_mapping()>},
     "cells": [{"name", "config_hash", "config" (the comparable keys), "run_dir" (relative),
                "state": "pending" | "running" | "done" | "failed", "attempts",
                "holder": {"launcher", "host", "pid", "since"} while running, else null,
                "why": one sentence when failed, else null,
                "timings": {"started", "finished" (UTC, YYYY-MM-DDTHH:MM:SSZ), "seconds"},
                "job": {"scheduler": "slurm", "job_id", "stdout", "stderr" (relative)} or null}, ...]}

``job`` names the cluster job that runs the cell, or is to run it (``--launcher slurm``): recorded at
submission for the cells that wait for it, replaced by the job that claims the cell, cleared by a
local launcher's claim, kept after the cell ends (where it ran, its logs). A manifest written before
the field existed reads as null.

Concurrency: every read-modify-write of ``grid.json`` holds the grid's lock (``GRID/.grid.lock``,
:func:`freqtail.locks.exclusive`) and writes the file atomically, so launchers on one machine (and on
a shared filesystem whose ``flock`` works, :mod:`freqtail.locks`) never lose an update and never
claim the same cell. A launcher running a cell also holds that cell's lock
(``GRID/.grid-cells/<name>.lock``) from :meth:`GridManifest.claim` to :meth:`~GridManifest.finish`,
:meth:`~GridManifest.fail` or :meth:`~GridManifest.release`; the operating system releases it when
the launcher dies however it dies (SIGKILL, out of memory), so a ``running`` cell whose lock is free
is stale: the next claim takes it over and says so.

``attempts`` counts the times a cell was started (a release, e.g. on Ctrl-C, takes its attempt
back); a ``failed`` cell is claimed again while ``attempts <= retries`` (``retries`` further tries
after the first).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from freqtail.errors import FreqtailError, InputError, LockedError
from freqtail.io import atomic_write_json, check_writable_folder
from freqtail.locks import Lock, exclusive, try_lock
from freqtail.runs.existence import check_grid_folder
from freqtail.runs.layout import GRID_CELL_LOCKS_DIR, GRID_LOCK, GRID_SLURM_DIR, GridLayout
from freqtail.workflows.grid_spec import GridCell, GridSpec

MANIFEST_FORMAT = "freqtail-grid"
MANIFEST_VERSION = 1
#: Seconds a manifest update waits for another launcher's update to finish.
LOCK_TIMEOUT = 60.0


class CellState(str, Enum):
    """Where a cell stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class CellHolder:
    """The launcher running a cell.

    Attributes:
        launcher: the launcher's id (:func:`new_launcher_id` unless the caller chose one).
        host: its host name; pid: its process id (meaningful on ``host`` only).
        since: when it claimed the cell, UTC, ``YYYY-MM-DDTHH:MM:SSZ``.
    """

    launcher: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        return f"launcher {self.launcher} (process {self.pid} on host {self.host} since {self.since})"


@dataclass(frozen=True)
class CellTimings:
    """When a cell's last attempt ran: ``started`` / ``finished`` in UTC (``YYYY-MM-DDTHH:MM:SSZ``),
    ``seconds`` as measured by the launcher (None while unknown)."""

    started: str | None = None
    finished: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class CellJob:
    """The cluster job that runs a cell (or is to run it).

    Attributes:
        job_id: the scheduler's id; ``<array job>_<index>`` for a task of a job array.
        stdout, stderr: the job's log files (absolute; stored relative to the grid folder).
        scheduler: the scheduler that runs it (``"slurm"``).
    """

    job_id: str
    stdout: Path
    stderr: Path
    scheduler: str = "slurm"

    def to_json(self, folder: Path) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "job_id": self.job_id,
            "stdout": Path(os.path.relpath(self.stdout, folder)).as_posix(),
            "stderr": Path(os.path.relpath(self.stderr, folder)).as_posix(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> CellJob:
        """Raises KeyError / TypeError on a damaged record (the caller says so in a sentence)."""
        return cls(
            str(data["job_id"]),
            folder / str(data["stdout"]),
            folder / str(data["stderr"]),
            str(data["scheduler"]),
        )


@dataclass(frozen=True)
class CellRecord:
    """One cell's row of the manifest (a status view's row).

    Attributes:
        name: the cell's name; run_dir: its run folder (absolute).
        config_hash: sha256 of the cell's comparable config; config: those keys and values.
        state: :class:`CellState`; attempts: starts so far (see the module docstring).
        holder: the running launcher, else None; why: the last failure (one sentence), else None.
        timings: :class:`CellTimings` of the last attempt.
        job: the cluster job that runs (or ran, or is to run) the cell, else None.
    """

    name: str
    run_dir: Path
    config_hash: str
    config: dict[str, Any]
    state: CellState
    attempts: int = 0
    holder: CellHolder | None = None
    why: str | None = None
    timings: CellTimings = CellTimings()
    job: CellJob | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config_hash": self.config_hash,
            "config": self.config,
            "run_dir": self.name,
            "state": self.state.value,
            "attempts": self.attempts,
            "holder": None if self.holder is None else vars(self.holder).copy(),
            "why": self.why,
            "timings": vars(self.timings).copy(),
            "job": None if self.job is None else self.job.to_json(self.run_dir.parent),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> CellRecord:
        """Raises KeyError / TypeError / ValueError on a damaged row (the caller says so in a sentence)."""
        holder = data["holder"]
        timings = data["timings"]
        job = data.get("job")  # absent from manifests written before the field
        return cls(
            name=str(data["name"]),
            run_dir=folder / str(data["run_dir"]),
            config_hash=str(data["config_hash"]),
            config=dict(data["config"]),
            state=CellState(data["state"]),
            attempts=int(data["attempts"]),
            holder=None
            if holder is None
            else CellHolder(
                str(holder["launcher"]), str(holder["host"]), int(holder["pid"]), str(holder["since"])
            ),
            why=None if data["why"] is None else str(data["why"]),
            timings=CellTimings(timings["started"], timings["finished"], timings["seconds"]),
            job=None if job is None else CellJob.from_json(job, folder),
        )


@dataclass(frozen=True)
class GridSummary:
    """How many cells are in each state."""

    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running + self.done + self.failed


def new_launcher_id() -> str:
    """``host:pid:random`` — unique per launcher (the random part tells two launchers of one process
    apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def spec_difference(stored: dict[str, Any], spec: GridSpec, where: Path) -> str:
    """One sentence naming the first difference between a stored grid and ``spec``."""
    theirs = stored.get("spec") or {}
    mine = spec.to_mapping()
    head = f"The grid in {where}"
    tail = "; choose another folder or run that grid's own spec."
    if theirs.get("base") != mine["base"]:
        return f"{head} has base {_show(theirs.get('base'))}, this spec base {_show(mine['base'])}{tail}"
    for group, verb in (("axes", "has axis"), ("set", "sets"), ("evaluation", "has evaluation option")):
        old, new = theirs.get(group) or {}, mine[group]
        for key in [*old, *(k for k in new if k not in old)]:
            if old.get(key) != new.get(key):
                left = f"{key} = {_show(old[key])}" if key in old else f"no {key}"
                right = f"{key} = {_show(new[key])}" if key in new else f"no {key}"
                return f"{head} {verb} {left}, this spec {right}{tail}"
    old_cells, new_cells = theirs.get("cells") or [], mine["cells"]
    for index, (old, new) in enumerate(zip(old_cells, new_cells, strict=False)):
        if old != new:
            return f"{head} has explicit cell {index + 1} = {_show(old)}, this spec {_show(new)}{tail}"
    if len(old_cells) != len(new_cells):
        return f"{head} has {len(old_cells)} explicit cells, this spec {len(new_cells)}{tail}"
    if list(theirs.get("suites") or []) != mine["suites"]:
        return (
            f"{head} runs the suites {', '.join(theirs.get('suites') or [])}, this spec "
            f"{', '.join(mine['suites'])}{tail}"
        )
    old_analyses, new_analyses = theirs.get("analyses") or [], mine["analyses"]
    if old_analyses != new_analyses:
        return (
            f"{head} runs the analyses {_show(old_analyses)} after each evaluation, this spec "
            f"{_show(new_analyses)}{tail}"
        )
    rows = {row.get("name"): row for row in stored.get("cells") or [] if isinstance(row, dict)}
    for cell in spec.cells():
        row = rows.get(cell.name)
        if row is None:
            return f"{head} has no cell {cell.name}, which this spec has{tail}"
        if row.get("config_hash") != cell.config_hash:
            old_config, new_config = row.get("config") or {}, cell.config.comparable()
            keys = [k for k in new_config if old_config.get(k) != new_config[k]]
            return (
                f"{head} trains its cell {cell.name} with another configuration than this spec "
                f"(differing keys: {', '.join(keys) or 'unknown'}){tail}"
            )
    extra = [name for name in rows if name not in {cell.name for cell in spec.cells()}]
    return f"{head} has the cell {extra[0] if extra else '?'}, which this spec has not{tail}"


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest's JSON, its format and version checked (one InputError sentence otherwise)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"The grid manifest {path} cannot be read ({type(err).__name__}); restore it or choose "
            "another folder."
        ) from None
    if not (
        isinstance(data, dict)
        and data.get("format") == MANIFEST_FORMAT
        and isinstance(data.get("cells"), list)
        and isinstance(data.get("digest"), str)
    ):
        raise InputError(f"The file {path} is not a {MANIFEST_FORMAT} manifest; choose another folder.")
    if data.get("version") != MANIFEST_VERSION:
        raise InputError(
            f"The grid manifest {path} has version {data.get('version')!r}; this freqtail reads "
            f"version {MANIFEST_VERSION}."
        )
    return data


def _rows(data: dict[str, Any], layout: GridLayout) -> list[CellRecord]:
    """The manifest's cell rows (one InputError sentence on a damaged row)."""
    try:
        return [CellRecord.from_json(row, layout.folder) for row in data["cells"]]
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"The grid manifest {layout.manifest} has a damaged cell row ({type(err).__name__}: "
            f"{err}); restore it or choose another folder."
        ) from None


def read_states(folder: str | os.PathLike) -> tuple[CellRecord, ...]:
    """Every cell's row of the grid in ``folder``, in the spec's order, read without its spec (a
    table or a status view of a grid; the file is written atomically, so no lock is taken).

    Raises:
        InputError: the folder holds no grid manifest, or a damaged one (one sentence).
    """
    layout = check_grid_folder(folder)
    return tuple(_rows(_read_manifest(layout.manifest), layout))


def read_family(folder: str | os.PathLike) -> str | None:
    """The preset family (``t1``, ``t3``, ``t4``, ``fig3``) the grid in ``folder`` was built from, or
    None for a researcher's own grid (see :func:`read_states` for the errors)."""
    layout = GridLayout.of(folder)
    read_states(layout.folder)  # the same refusal of a folder that holds no grid
    family = (_read_manifest(layout.manifest).get("spec") or {}).get("family")
    return family if isinstance(family, str) else None


def read_base(folder: str | os.PathLike) -> str | None:
    """The base (a preset name or a config YAML) of the grid in ``folder``'s spec, or None for a grid
    of explicit cells or a preset family (see :func:`read_states` for the errors)."""
    layout = GridLayout.of(folder)
    read_states(layout.folder)
    base = (_read_manifest(layout.manifest).get("spec") or {}).get("base")
    return base if isinstance(base, str) else None


class GridManifest:
    """The manifest of one grid folder, opened for one spec (use :meth:`open`).

    Attributes:
        layout: the folder's paths; spec: the :class:`~freqtail.workflows.grid_spec.GridSpec`.
    """

    def __init__(self, layout: GridLayout, spec: GridSpec) -> None:
        self.layout = layout
        self.spec = spec
        self._cells = {cell.name: cell for cell in spec.cells()}
        self._held: dict[str, tuple[Lock, str]] = {}  # cell name -> (its cell lock, the launcher)

    # ------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, folder: str | os.PathLike, spec: GridSpec, *, adopt: bool = False) -> GridManifest:
        """Open the grid in ``folder`` for ``spec``, creating the folder and its manifest if needed.

        ``adopt=True`` creates the manifest even if the folder holds other files: for a caller that owns
        the folder and has checked it (``freqtail demo --force`` keeps a user's own files in its folder).

        Raises:
            InputError: the folder holds another grid (the sentence names the first difference), a
                damaged manifest, or other files and no grid.
            OutputError: the folder cannot be written.
        """
        layout = GridLayout.of(folder)
        check_writable_folder(layout.folder, "grid folder")
        manifest = cls(layout, spec)
        with manifest._locked():
            if layout.manifest.exists():
                stored = manifest._read()
                if stored["digest"] != spec.digest():
                    raise InputError(spec_difference(stored, spec, layout.folder))
            else:
                ours = {GRID_LOCK, GRID_LOCK + ".json", GRID_CELL_LOCKS_DIR, GRID_SLURM_DIR}
                others = sorted(p.name for p in layout.folder.iterdir() if p.name not in ours)
                if others and not adopt:
                    raise InputError(
                        f"The folder {layout.folder} holds {others[0]} but no grid manifest; choose an "
                        "empty or new folder for the grid."
                    )
                rows = [
                    CellRecord(
                        cell.name,
                        layout.run_dir(cell.name),
                        cell.config_hash,
                        cell.config.comparable(),
                        CellState.PENDING,
                    )
                    for cell in spec.cells()
                ]
                manifest._write([row.to_json() for row in rows])
        return manifest

    # ---------------------------------------------------------------------------- file handling
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive(
            self.layout.lock,
            purpose="updating grid.json",
            timeout=LOCK_TIMEOUT,
            refusal="The grid manifest lock {path} stayed held by {holder} for {waited} s; try again.",
        ):
            yield

    def _read(self) -> dict[str, Any]:
        return _read_manifest(self.layout.manifest)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_json(
            self.layout.manifest,
            {
                "format": MANIFEST_FORMAT,
                "version": MANIFEST_VERSION,
                "digest": self.spec.digest(),
                "spec": self.spec.to_mapping(),
                "cells": rows,
            },
        )

    def _records(self, data: dict[str, Any]) -> list[CellRecord]:
        return _rows(data, self.layout)

    @contextlib.contextmanager
    def _editing(self) -> Iterator[list[CellRecord]]:
        """The rows, under the grid lock; changes made to the list are written back atomically."""
        with self._locked():
            rows = self._records(self._read())
            yield rows
            self._write([row.to_json() for row in rows])

    # ---------------------------------------------------------------------------------- claiming
    def _take_cell_lock(self, name: str, launcher_id: str) -> Lock | None:
        try:
            lock = try_lock(self.layout.cell_lock(name), purpose=f"running grid cell {name} ({launcher_id})")
        except LockedError:
            return None
        return lock

    def claim(
        self,
        launcher_id: str,
        *,
        retries: int = 1,
        only: Collection[str] | None = None,
        log: Callable[[str], None] | None = None,
        job: CellJob | None = None,
    ) -> GridCell | None:
        """Atomically pick the next cell to run and mark it ``running`` by ``launcher_id``.

        In order: the first ``pending`` cell; a ``running`` cell whose launcher died (its cell lock is
        free: it is taken over, and ``log`` is told so in one sentence); a ``failed`` cell with
        ``attempts <= retries``. Two launchers claiming at once never get the same cell.

        Args:
            launcher_id: who runs the cell (recorded with host, pid and time).
            retries: further tries of a failed cell after its first.
            only: cell names that may be claimed (None = all).
            log: receives the takeover sentence of a stale cell.
            job: the cluster job this launcher is (recorded with the cell); None for a local launcher.

        Returns:
            the claimed :class:`GridCell`, or None when nothing is claimable.
        """
        claimed: list[tuple[str, Lock]] = []
        try:
            with self._editing() as rows:
                allowed = [i for i, row in enumerate(rows) if only is None or row.name in only]
                order = (
                    [i for i in allowed if rows[i].state is CellState.PENDING]
                    + [
                        i
                        for i in allowed
                        if rows[i].state is CellState.RUNNING and rows[i].name not in self._held
                    ]
                    + [
                        i
                        for i in allowed
                        if rows[i].state is CellState.FAILED and rows[i].attempts <= retries
                    ]
                )
                for index in order:
                    row = rows[index]
                    lock = self._take_cell_lock(row.name, launcher_id)
                    if lock is None:  # a live launcher runs it
                        continue
                    claimed.append((row.name, lock))
                    if row.state is CellState.RUNNING and log is not None:
                        previous = row.holder.describe() if row.holder is not None else "a launcher"
                        log(
                            f"Took over the grid cell {row.name} from {previous}, "
                            "which ended without finishing it."
                        )
                    holder = CellHolder(launcher_id, socket.gethostname(), os.getpid(), _now())
                    rows[index] = replace(
                        row,
                        state=CellState.RUNNING,
                        attempts=row.attempts + 1,
                        holder=holder,
                        why=None,
                        timings=CellTimings(started=holder.since),
                        job=job,
                    )
                    break
        except BaseException:  # the manifest was not written: the cell stays as it was
            for _, lock in claimed:
                lock.release()
            raise
        if not claimed:
            return None
        name, lock = claimed[0]
        self._held[name] = (lock, launcher_id)
        return self._cells[name]

    def _settle(self, cell: GridCell | str, change: Callable[[CellRecord], CellRecord]) -> None:
        """Apply ``change`` to a cell this manifest claimed, then release the cell's lock."""
        name = cell if isinstance(cell, str) else cell.name
        if name not in self._held:
            raise FreqtailError(
                f"The grid cell {name} was not claimed through this manifest; claim it first."
            )
        lock, _ = self._held[name]
        try:
            with self._editing() as rows:
                index = next(i for i, row in enumerate(rows) if row.name == name)
                rows[index] = change(rows[index])
        finally:
            del self._held[name]
            lock.release()

    def finish(self, cell: GridCell | str, seconds: float) -> None:
        """Mark a claimed cell ``done``; ``seconds``: how long its attempt took."""
        self._settle(
            cell,
            lambda row: replace(
                row,
                state=CellState.DONE,
                holder=None,
                timings=replace(row.timings, finished=_now(), seconds=float(seconds)),
            ),
        )

    def fail(self, cell: GridCell | str, why: str, seconds: float | None = None) -> None:
        """Mark a claimed cell ``failed`` with ``why`` (one sentence)."""
        self._settle(
            cell,
            lambda row: replace(
                row,
                state=CellState.FAILED,
                holder=None,
                why=str(why),
                timings=replace(
                    row.timings, finished=_now(), seconds=None if seconds is None else float(seconds)
                ),
            ),
        )

    def release(self, cell: GridCell | str) -> None:
        """Put a claimed cell back to ``pending`` (its attempt does not count), e.g. on Ctrl-C."""
        self._settle(
            cell,
            lambda row: replace(
                row,
                state=CellState.PENDING,
                attempts=max(0, row.attempts - 1),
                holder=None,
                timings=CellTimings(),
            ),
        )

    def record_jobs(self, jobs: Mapping[str, CellJob]) -> None:
        """Record the cluster job submitted for each named cell (``{cell name: job}``), on the cells
        that wait for it (``pending`` or ``failed``); a running cell keeps its launcher's record."""
        with self._editing() as rows:
            for index, row in enumerate(rows):
                if row.name in jobs and row.state in (CellState.PENDING, CellState.FAILED):
                    rows[index] = replace(row, job=jobs[row.name])

    # ------------------------------------------------------------------------------------ views
    def states(self) -> tuple[CellRecord, ...]:
        """Every cell's row, in the spec's order (read without the lock: the file is written
        atomically)."""
        return tuple(self._records(self._read()))

    def summary(self) -> GridSummary:
        """How many cells are pending, running, done and failed."""
        counts = {state: 0 for state in CellState}
        for row in self.states():
            counts[row.state] += 1
        return GridSummary(
            counts[CellState.PENDING],
            counts[CellState.RUNNING],
            counts[CellState.DONE],
            counts[CellState.FAILED],
        )


__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "CellHolder",
    "CellJob",
    "CellRecord",
    "CellState",
    "CellTimings",
    "GridManifest",
    "GridSummary",
    "new_launcher_id",
    "read_base",
    "read_family",
    "read_states",
    "spec_difference",
]
