"""The Slurm launcher of a grid: one job array per submission, one array task per cell, through submitit.

:func:`submit_grid` opens the grid folder's manifest
(:class:`~freqtail.workflows.grid_manifest.GridManifest`, which refuses another grid's folder), picks
the chosen cells that are not done (``pending``, ``running`` — a task whose cell a live launcher
holds exits quietly, one whose launcher died takes it over — and ``failed`` ones with tries left),
and submits them as one job array with :class:`submitit.SlurmExecutor` (``map_array``): array task
``i`` runs cell ``i`` (:class:`~freqtail.workflows.grid_slurm_task.SlurmCellTask`). Each submitted
job's id and log files go into the manifest (:meth:`GridManifest.record_jobs`), so
``freqtail grid status`` shows them; the scripts, logs and submitit's pickles live in ``GRID/.slurm/``
(:attr:`freqtail.runs.layout.GridLayout.slurm`). The call returns after the submission;
:func:`wait_for_submission` waits for the array's tasks to end.

Preemption, the time limit and ``scontrol requeue``: the job is submitted with ``--requeue`` and
submitit's ``--signal=USR2@90``. A task stopped by Slurm (SIGTERM: preemption, ``scontrol requeue``,
``scancel``) or warned of its time limit (SIGUSR2) lets the trainer finish its step and write its
``interrupted`` checkpoint, puts its cell back to ``pending`` and ends without a result; after the
time-limit warning it requeues its own job first. The requeued task claims the same cell again and
resumes exactly from that checkpoint (``train_run(..., resume=True)``; see the task's module).

``submitit`` is an optional extra (``pip install 'freqtail[slurm]'``): this module imports it where it
is used, so that the rest of freqtail works without it, and says so in one sentence when it is
missing. The job's state comes from ``squeue`` and the manifest, not from submitit's watcher, which
asks ``sacct``: a cluster without an accounting database answers that with an error every call.

>>> from freqtail.workflows.grid_spec import GridSpec
>>> from freqtail.workflows.grid_slurm import SlurmOptions, submit_grid
>>> options = SlurmOptions(partition="gpu", time_minutes=600, gpus_per_task=1)
>>> submission = submit_grid(GridSpec.family("t1"), "grids/t1", options)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freqtail.checks import check_int, check_optional_int
from freqtail.errors import ConfigError
from freqtail.runs.layout import GRID_SLURM_DIR, GridLayout
from freqtail.workflows.grid_manifest import CellJob, CellRecord, CellState, GridManifest, read_states
from freqtail.workflows.grid_run import refresh_table
from freqtail.workflows.grid_spec import GridSpec

#: The sentence of a missing submitit (the command line exits 2 with it).
NO_SUBMITIT = (
    "The Slurm launcher needs submitit, which is not installed; install it with "
    "pip install 'freqtail[slurm]', or use --launcher local."
)
#: The sentence of a machine without Slurm's ``sbatch``.
NO_SBATCH = (
    "The Slurm launcher needs Slurm's sbatch, which is not on PATH; run this on a machine of the cluster "
    "(a login node), or use --launcher local."
)
#: sbatch options the launcher sets itself (or through its own flags): refused in ``extra``.
RESERVED_OPTIONS = {
    "array": "the launcher submits one array task per cell",
    "output": f"the logs go to the grid folder's {GRID_SLURM_DIR} folder",
    "error": f"the logs go to the grid folder's {GRID_SLURM_DIR} folder",
    "open-mode": "the logs are appended to across requeues",
    "signal": "submitit warns the task 90 s before its time limit",
    "requeue": "the jobs are always requeueable",
    "partition": "use --slurm-partition",
    "time": "use --slurm-time",
    "gpus-per-task": "use --slurm-gpus-per-task",
    "cpus-per-task": "use --slurm-cpus-per-task",
    "ntasks-per-node": "use --nproc-per-cell",
    "ntasks": "use --nproc-per-cell",
    "nodes": "a cell runs on one node",
    "job-name": "the job is named after the grid folder",
}
#: An sbatch long option's name (without its leading dashes).
_OPTION_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
#: squeue states in which a job may still run a cell (any other state, or no row, means it ended).
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)
#: Seconds between two ``squeue`` calls while waiting: from the first to the last (doubling), so that a
#: long grid does not question the controller every second; the manifest is read every second.
SQUEUE_FIRST_POLL = 1.0
SQUEUE_LAST_POLL = 30.0


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks Slurm for, checked here (one sentence per bad value).

    Attributes:
        partition: the partition (None: the cluster's default).
        time_minutes: the time limit of one task in minutes (None: the partition's default); a cell
            that needs longer is requeued at the limit and resumes from its checkpoint.
        gpus_per_task: GPUs per process (0: none requested).
        cpus_per_task: CPUs per process (None: the cluster's default).
        array_parallelism: array tasks running at once (None: all).
        tasks_per_cell: processes per cell on one node (``--nproc-per-cell``): a process group of that
            size, one rank per task (``ntasks-per-node``).
        extra: further sbatch options, ``{name: value}`` (``account``, ``qos``, ``constraint``, ...),
            passed as ``--name=value``; the options in :data:`RESERVED_OPTIONS` are refused.
    """

    partition: str | None = None
    time_minutes: int | None = None
    gpus_per_task: int = 0
    cpus_per_task: int | None = None
    array_parallelism: int | None = None
    tasks_per_cell: int = 1
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partition is not None and not (
            isinstance(self.partition, str) and re.fullmatch(r"[A-Za-z0-9_.,-]+", self.partition)
        ):
            raise ConfigError(f"The Slurm partition must be a partition's name, not {self.partition!r}.")
        check_optional_int(self.time_minutes, "The Slurm time limit (minutes)", minimum=1, error=ConfigError)
        check_int(self.gpus_per_task, "The GPUs per Slurm task", minimum=0, error=ConfigError)
        check_optional_int(self.cpus_per_task, "The CPUs per Slurm task", minimum=1, error=ConfigError)
        check_optional_int(
            self.array_parallelism, "The Slurm array parallelism", minimum=1, error=ConfigError
        )
        check_int(self.tasks_per_cell, "The processes per cell", minimum=1, error=ConfigError)
        extra = dict(self.extra)
        for name, value in extra.items():
            if not (isinstance(name, str) and _OPTION_NAME.match(name)):
                raise ConfigError(
                    f"The sbatch option {name!r} is not an option name; write it as NAME=VALUE without "
                    "dashes, e.g. account=myproject."
                )
            if name in RESERVED_OPTIONS:
                raise ConfigError(
                    f"The sbatch option {name} is set by the launcher: {RESERVED_OPTIONS[name]}."
                )
            if not isinstance(value, str) or "\n" in value:
                raise ConfigError(f"The sbatch option {name} needs a one-line text value, not {value!r}.")
        object.__setattr__(self, "extra", extra)

    def executor_parameters(self, job_name: str) -> dict[str, Any]:
        """The parameters of :meth:`submitit.SlurmExecutor.update_parameters` (None omits an option)."""
        parameters: dict[str, Any] = {
            "job_name": job_name,
            "partition": self.partition,
            "time": self.time_minutes,
            "ntasks_per_node": self.tasks_per_cell,
            "cpus_per_task": self.cpus_per_task,
            "gpus_per_task": self.gpus_per_task or None,
            "additional_parameters": {"requeue": True, **self.extra},
        }
        if self.array_parallelism is not None:
            parameters["array_parallelism"] = self.array_parallelism
        return parameters


@dataclass(frozen=True)
class SlurmSubmission:
    """What :func:`submit_grid` submitted.

    Attributes:
        folder: the grid folder; array_id: the job array's id (None when nothing was submitted).
        jobs: ``{cell name: CellJob}`` of every submitted cell, in the spec's order.
        skipped: the chosen cells not submitted (done, or failed with no tries left).
        retries: the tries of a failed cell the tasks were given.
    """

    folder: Path
    array_id: str | None
    jobs: Mapping[str, CellJob]
    skipped: tuple[str, ...]
    retries: int

    def lines(self) -> list[str]:
        """What the command line prints after the submission."""
        if self.array_id is None:
            return [
                f"Nothing to submit: every chosen cell of {self.folder} is done or failed with no tries left."
            ]
        names = ", ".join(self.jobs)
        logs = GridLayout.of(self.folder).slurm
        return [
            f"Submitted Slurm job {self.array_id}: an array of {len(self.jobs)} tasks, one per cell "
            f"({names}).",
            f"Logs: {logs}/; a preempted or timed-out cell is requeued and resumes from its checkpoint.",
            f"Watch it with: freqtail grid status {self.folder}   (or squeue -j {self.array_id})",
        ]


def load_submitit():
    """The ``submitit`` module, or :data:`NO_SUBMITIT` as a :class:`ConfigError`."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(NO_SUBMITIT) from None
    return submitit


def check_slurm() -> None:
    """Refuse, in one sentence each, a machine without submitit or without ``sbatch``."""
    load_submitit()
    if shutil.which("sbatch") is None:
        raise ConfigError(NO_SBATCH)


def submittable(record: CellRecord, retries: int) -> bool:
    """Whether a Slurm task is submitted for the cell: not done, and not failed beyond its tries."""
    if record.state is CellState.DONE:
        return False
    return not (record.state is CellState.FAILED and record.attempts > retries)


@contextlib.contextmanager
def _quiet_submitit() -> Iterator[None]:
    """Keep submitit's log lines (sacct warnings, pickling notes) and the submission's stderr (which
    submitit prints itself before raising) off the user's screen; the error is reported in one sentence."""
    submitit_logger = logging.getLogger("submitit")
    level = submitit_logger.level
    submitit_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        submitit_logger.setLevel(level)


def _job_name(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-") or "grid"
    return f"freqtail-{name}"


def submit_grid(
    spec: GridSpec,
    folder: str | os.PathLike,
    options: SlurmOptions | None = None,
    *,
    only: str | None = None,
    retries: int = 1,
    runtime: dict[str, Any] | None = None,
) -> SlurmSubmission:
    """Submit the chosen cells of ``spec`` in ``folder`` as one Slurm job array (module docstring).

    Args:
        spec: the grid (already at its scale); folder: its folder (created; refused if it holds
            another grid).
        options: what each task asks Slurm for (:class:`SlurmOptions`; None = the defaults).
        only: a shell pattern on cell names (None = every cell).
        retries: further tries of a failed cell after its first (counted across runs).
        runtime: runtime config keys set on every cell (``log``), which do not change what it computes.

    Returns:
        :class:`SlurmSubmission` (``array_id`` None when every chosen cell is done).

    Raises:
        ConfigError: submitit or sbatch missing, sbatch refusing the job (its reason in the sentence),
            ``only`` matching no cell, a bad option.
        InputError: the folder holds another grid.
    """
    options = options if options is not None else SlurmOptions()
    retries = check_int(retries, "The grid's retries", minimum=0, error=ConfigError)
    check_slurm()
    submitit = load_submitit()
    from freqtail.workflows.grid_slurm_task import SlurmCellTask  # needs submitit

    names = [cell.name for cell in spec.cells(only)]
    manifest = GridManifest.open(folder, spec)
    rows = {row.name: row for row in manifest.states()}
    chosen = [name for name in names if submittable(rows[name], retries)]
    skipped = tuple(name for name in names if name not in chosen)
    layout = manifest.layout
    if not chosen:
        return SlurmSubmission(layout.folder, None, {}, skipped, retries)
    layout.slurm.mkdir(parents=True, exist_ok=True)
    with _quiet_submitit():
        executor = submitit.SlurmExecutor(folder=layout.slurm)
        executor.update_parameters(**options.executor_parameters(_job_name(layout.folder)))
        task = SlurmCellTask(spec, layout.folder.resolve(), retries, runtime)
        try:
            jobs = executor.map_array(task, chosen)
        except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError) as err:
            reason = (str(err).strip().splitlines() or ["no reason given"])[-1]
            reason = re.sub(r"^sbatch: error: ", "", reason)
            raise ConfigError(f"sbatch refused the grid's job array: {reason.rstrip('.')}.") from None
    records = {
        name: CellJob(str(job.job_id), Path(job.paths.stdout), Path(job.paths.stderr))
        for name, job in zip(chosen, jobs, strict=True)
    }
    manifest.record_jobs(records)
    array_id = str(jobs[0].job_id).split("_")[0]
    return SlurmSubmission(layout.folder, array_id, records, skipped, retries)


def active_jobs(array_id: str) -> set[str]:
    """The ids (``<array>_<index>``, or the job's own) of the tasks of job ``array_id`` that may still
    run a cell, from ``squeue`` (see :data:`ACTIVE_STATES`).

    Raises:
        ConfigError: squeue cannot be run or fails (its reason in the sentence).
    """
    try:
        shown = subprocess.run(
            ["squeue", "--noheader", "--array", "--states=all", "--jobs", array_id, "--format=%i %T"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"squeue could not be run ({type(err).__name__}: {err}).") from None
    if shown.returncode != 0:
        if "Invalid job id" in shown.stderr:  # the controller forgot the finished job
            return set()
        reason = (shown.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise ConfigError(f"squeue failed while waiting for job {array_id}: {reason.rstrip('.')}.")
    active = set()
    for line in shown.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in ACTIVE_STATES:
            active.add(parts[0])
    return active


def wait_for_submission(
    submission: SlurmSubmission,
    *,
    say: Callable[[str], None] | None = None,
    poll: float = 1.0,
) -> tuple[CellRecord, ...]:
    """Wait until none of the submission's tasks can still run (``squeue``: they ended, however they
    ended), then rewrite the grid's table and return every cell's row.

    The manifest is read every ``poll`` seconds; ``squeue`` is asked at growing intervals
    (:data:`SQUEUE_FIRST_POLL` to :data:`SQUEUE_LAST_POLL`), and at every poll once each cell of the
    submission is settled (done, or failed with no tries left). ``say`` receives a line whenever a cell
    of the submission changes state. Ctrl-C stops the waiting only: the jobs go on.
    """
    if submission.array_id is None:
        return read_states(submission.folder)
    said = say if say is not None else (lambda _line: None)
    watched: Collection[str] = set(submission.jobs)
    seen: dict[str, str] = {}
    next_squeue, interval = time.monotonic(), SQUEUE_FIRST_POLL
    while True:
        rows = read_states(submission.folder)
        mine = [row for row in rows if row.name in watched]
        for row in mine:
            where = f" on {row.holder.host}" if row.holder is not None else ""
            state = f"{row.state.value}{where}"
            if seen.get(row.name) != state:
                seen[row.name] = state
                job = row.job.job_id if row.job is not None else "?"
                said(f"{row.name}: {state} (slurm job {job})")
        # settled: no task of the submission touches the cell again (done, or failed with no tries left);
        # the tasks end a moment later, so squeue is then asked at every poll
        if not any(submittable(row, submission.retries) for row in mine):
            next_squeue = time.monotonic()
        if time.monotonic() >= next_squeue:
            if not active_jobs(submission.array_id):
                break
            interval = min(interval * 2, SQUEUE_LAST_POLL)
            next_squeue = time.monotonic() + interval
        time.sleep(poll)
    refresh_table(submission.folder, said)  # the last state, also of cells whose task ended abnormally
    return read_states(submission.folder)


__all__ = [
    "ACTIVE_STATES",
    "NO_SBATCH",
    "NO_SUBMITIT",
    "RESERVED_OPTIONS",
    "SlurmOptions",
    "SlurmSubmission",
    "active_jobs",
    "check_slurm",
    "load_submitit",
    "submit_grid",
    "submittable",
    "wait_for_submission",
]
