"""One task of the grid's Slurm job array: its cell, run in its Slurm job through the grid's manifest.

:class:`SlurmCellTask` is what :func:`freqtail.workflows.grid_slurm.submit_grid` hands to submitit;
array task ``i`` calls it with the name of cell ``i``. Rank 0 runs the local launcher's loop for that
one cell (:func:`~freqtail.workflows.grid_run.run_grid` with the cell's name as ``only``): it claims
the cell in the manifest, recording its Slurm job (id and logs), runs
:func:`~freqtail.workflows.grid_run.run_cell` (train with resume, evaluate with resume), finishes or
fails it (tries again while it has tries left) and rewrites the grid's table. A cell that a live
launcher holds, or that is done, is left alone: the task says so in its log and ends.

A cell of ``K`` processes (``--nproc-per-cell K``: ``ntasks-per-node = K``) is a process group: every
rank runs this, the rendezvous is taken from submitit's
:class:`submitit.helpers.TorchDistributedEnvironment` into the variables
:func:`freqtail.distributed.init_distributed` reads (:func:`freqtail.distributed.export_process_group`),
and only rank 0 touches the manifest; it tells the other ranks when to run the cell.

Stops. Slurm stops a task with SIGTERM (preemption, ``scontrol requeue``, ``scancel``) and, through
submitit's ``--signal=USR2@90``, warns it 90 s before its time limit. Either way the trainer finishes
its optimiser step and writes its ``interrupted`` checkpoint (:mod:`freqtail.train.stop`), the cell
is put back to ``pending`` (its attempt does not count) and the task ends without a result, so that
nothing takes the cell for finished. On the time-limit warning the task requeues its own job first
(``scontrol requeue``, what submitit's own handler does; that handler would end the process at once,
in the middle of a step, without the trainer's checkpoint, so the task replaces it while it runs).
The requeued task is the same array task: it claims the same cell, which is ``pending`` again (or,
had the process been killed before it could say so, ``running`` with a free lock, which it takes
over), and ``train_run(..., resume=True)`` continues exactly from the checkpoint. The task is a
:class:`submitit.helpers.Checkpointable`: a warning that arrives before the task took over the
signals requeues the same call.
"""

from __future__ import annotations

import glob
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, TorchDistributedEnvironment

from freqtail import distributed as D
from freqtail.workflows.grid_manifest import CellJob, CellState, read_states
from freqtail.workflows.grid_run import GridOutcome, failure_sentence, run_cell, run_grid
from freqtail.workflows.grid_spec import GridCell, GridSpec

#: The exit status of a task that stopped for Slurm (preempted, requeued, cancelled, timed out).
STOPPED_STATUS = 143


class SlurmStop(BaseException):
    """Slurm stopped the task (SIGTERM) outside training (which stops at its own pace): like Ctrl-C,
    not an error of the cell."""


def only_pattern(name: str) -> str:
    """A shell pattern (:meth:`GridSpec.cells`) that matches the cell ``name`` and nothing else."""
    return glob.escape(name)


class _Signals:
    """The task's SIGTERM and time-limit warning handlers, while it runs (restored by :meth:`restore`).

    SIGTERM raises :class:`SlurmStop` (inside training, the trainer's own handler replaces this one:
    it stops after the step and writes its checkpoint). The warning marks the job for requeueing and
    turns itself into a SIGTERM, so that both stops take the same path.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.requeue = False
        self.warning = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum, handler in ((signal.SIGTERM, self._terminate), (self.warning, self._warn)):
            self._previous[signum] = signal.signal(signum, handler)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def stopping(self) -> None:
        """The task is stopping: a further SIGTERM changes nothing."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _terminate(self, signum, frame) -> None:
        raise SlurmStop(signal.Signals(signum).name)

    def _warn(self, signum, frame) -> None:
        if not self.requeue:
            self.requeue = True
            self.say(
                f"Slurm's time-limit warning ({signal.Signals(signum).name}): stopping the cell after this "
                "step, then requeueing the job."
            )
            signal.raise_signal(signal.SIGTERM)


class SlurmCellTask(Checkpointable):
    """Run one cell of ``spec`` in ``folder`` inside a Slurm job (see the module docstring).

    Attributes:
        spec: the grid (at its scale); folder: the grid folder (absolute, on a filesystem the nodes
            share); retries: further tries of a failed cell after its first.
        runtime: runtime config keys set on every cell (``log``; see
            :func:`~freqtail.workflows.grid_run.cell_config`).
    """

    def __init__(
        self, spec: GridSpec, folder: Path, retries: int, runtime: dict[str, Any] | None = None
    ) -> None:
        self.spec = spec
        self.folder = Path(folder)
        self.retries = int(retries)
        self.runtime = dict(runtime or {})

    def __call__(self, cell_name: str) -> str:
        """Run the cell ``cell_name``; returns what happened in one sentence (also printed to the log).

        Raises:
            SystemExit: the task stopped for Slurm (the cell is pending again; no result is written).
        """
        environment = submitit.JobEnvironment()
        cell = self.spec.cell(cell_name)

        def say(line: str) -> None:
            print(line, flush=True)

        signals = _Signals(say)
        signals.install()
        context = D.DistContext()
        try:
            context = self._join(environment, cell)
            if context.is_main:
                verdict = self._lead(environment, cell, context, say)
            else:
                verdict = self._follow(cell, context, say)
        except (KeyboardInterrupt, SlurmStop):
            signals.stopping()
            if context.is_main and signals.requeue:
                self._requeue(environment.job_id, say)
            raise SystemExit(STOPPED_STATUS) from None
        finally:
            signals.restore()
            D.shutdown(context)
        say(verdict)
        return verdict

    # ------------------------------------------------------------------------------ the ranks
    def _join(self, environment: Any, cell: GridCell) -> D.DistContext:
        """This task's place: one process, or a rank of the cell's process group (joined here)."""
        if environment.num_tasks <= 1:
            return D.DistContext()
        group = TorchDistributedEnvironment()
        D.export_process_group(
            rank=group.rank,
            world_size=group.world_size,
            local_rank=group.local_rank,
            local_world_size=group.local_world_size,
            master_addr=group.master_addr,
            master_port=group.master_port,
        )
        return D.init_distributed(cell.config.device)

    def _lead(self, environment: Any, cell: GridCell, context: D.DistContext, say) -> str:
        """Rank 0: the manifest's loop for this one cell; the other ranks are told each run."""
        paths = environment.paths
        job = CellJob(str(environment.job_id), Path(paths.stdout), Path(paths.stderr))

        def runner(claimed: GridCell, run_dir: Path) -> None:
            D.broadcast_json({"run": True}, context)

            def log(line: str) -> None:
                say(f"{claimed.name}: {line}")

            run_cell(
                claimed,
                run_dir,
                self.spec,
                log=log,
                runtime=self.runtime,
                context=context if context.distributed else None,
            )

        try:
            outcome = run_grid(
                self.spec,
                self.folder,
                cell_runner=runner,
                retries=self.retries,
                only=only_pattern(cell.name),
                launcher_id=f"slurm-{environment.job_id}",
                job=job,
                log=say,
            )
        except Exception:  # the other ranks wait for a word; a stop (BaseException) stops them too
            D.broadcast_json({"run": False}, context)
            raise
        D.broadcast_json({"run": False}, context)
        return self._verdict(cell.name, outcome)

    def _follow(self, cell: GridCell, context: D.DistContext, say) -> str:
        """Ranks above 0: run the cell with rank 0 as often as it says."""
        run_dir = self.folder / cell.name
        while D.broadcast_json(None, context)["run"]:
            try:
                run_cell(cell, run_dir, self.spec, runtime=self.runtime, context=context)
            except Exception as err:  # rank 0 records the cell's failure; this rank waits for its word
                say(f"{cell.name}: rank {context.rank}: {failure_sentence(err)}")
        return f"{cell.name}: rank {context.rank} of {context.world_size} ended with rank 0."

    def _verdict(self, name: str, outcome: GridOutcome) -> str:
        if name in outcome.finished:
            return f"{name}: done."
        rows = {row.name: row for row in read_states(self.folder)}
        row = rows[name]
        if outcome.failed:
            return f"{name}: failed after {row.attempts} attempts: {outcome.failed[-1][1]}"
        if row.state is CellState.RUNNING and row.holder is not None:
            return f"{name}: not run here: it is held by {row.holder.describe()}."
        if row.state is CellState.DONE:
            return f"{name}: not run here: it is already done."
        tries = f"{row.attempts} attempts, {self.retries} retries"
        return f"{name}: not run here: it is {row.state.value} ({tries})."

    @staticmethod
    def _requeue(job_id: str, say: Callable[[str], None]) -> None:
        """Put this job back in the queue (as submitit's own handler does)."""
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            say(
                f"Requeued the Slurm job {job_id}; its cell resumes from its checkpoint when it starts again."
            )
        else:
            reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
            say(
                f"scontrol requeue {job_id} failed ({reason}); the cell is pending: submit the grid again to "
                "resume it."
            )


__all__ = ["STOPPED_STATUS", "SlurmCellTask", "SlurmStop", "only_pattern"]
