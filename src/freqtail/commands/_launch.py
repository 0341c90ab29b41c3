"""The grid launchers shared by ``freqtail grid run`` and ``freqtail reproduce``.

:func:`launch` prints what the scale runs (:func:`freqtail.workflows.grid_scale.describe_scale`), then,
with ``--launcher local`` (the default), runs the chosen cells one after another in this process
(``--jobs 1``) or starts ``--jobs N`` launcher processes (the same command with ``--jobs 1``) that claim
cells from the one manifest, each cell once; their lines are printed prefixed with ``[launcher K]``.
With ``--gpus`` every launcher process gets its own group of ``--nproc-per-cell`` GPUs as
``CUDA_VISIBLE_DEVICES`` (:func:`freqtail.workflows.grid_devices.plan_devices` owns the rule);
``--nproc-per-cell K`` trains each cell with K processes under torchrun
(:func:`freqtail.workflows.grid_run.run_cell`), then evaluates it in the launcher.
With ``--launcher slurm`` it submits the cells as one Slurm job array
(:mod:`freqtail.workflows.grid_slurm`) and returns, or waits for the array with ``--wait``.
Exit codes: 0 when every chosen cell is done (or runs in another live launcher; for a Slurm submission
without ``--wait``: when it was submitted), 1 when some failed (the sentence names them), 130 on Ctrl-C
(the cells being run locally are put back to pending and resume on the next run; Slurm jobs go on).
"""

from __future__ import annotations

import argparse
import sys

from freqtail.commands._common import non_negative_int

#: The hidden option a launcher process is started with (it does not print the scale again).
CHILD_FLAG = "--launcher-process"
#: Seconds the launcher processes get to put their cells back after Ctrl-C before they are killed.
STOP_GRACE = 60.0
#: The launchers ``--launcher`` chooses from.
LAUNCHERS = ("local", "slurm")


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out``, ``--scale``, ``--only``, ``--retries``, ``--jobs``, ``--gpus``, ``--log``, ``--launcher``,
    ``--nproc-per-cell``, the ``--slurm-*`` options (and the hidden launcher flag)."""
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="the grid folder (one run folder per cell)"
    )
    parser.add_argument(
        "--scale",
        default="paper",
        metavar="SCALE",
        help="paper (default: the cells as written) or smoke (the embedded data, small-cnn, one epoch and "
        "tiny evaluations: the whole pipeline on a CPU in minutes; another grid, give it its own --out)",
    )
    parser.add_argument(
        "--only", metavar="PATTERN", help="run only the cells whose names match this shell pattern"
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        default=1,
        help="further tries of a failed cell after its first, counted across runs (default 1)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="launcher processes claiming cells from the one manifest, that is cells run at once (default "
        "1: one cell after another in this process; with --gpus one per GPU group, and at most that)",
    )
    parser.add_argument(
        "--gpus",
        metavar="IDS",
        help="GPU ids such as 0,1,2,3: each launcher process gets its own group of --nproc-per-cell of "
        "them as CUDA_VISIBLE_DEVICES (default: every process sees every device; local launcher only)",
    )
    parser.add_argument(
        "--log",
        metavar="MODE",
        help="none or tensorboard: config key log of every cell (default: each cell's own); tensorboard "
        "writes each cell's per-epoch numbers to GRID/<cell>/tensorboard/ (watch them with tensorboard "
        "--logdir GRID; pip install 'freqtail[tensorboard]'); it does not change what a cell computes, "
        "so a grid started without it resumes with it",
    )
    parser.add_argument(
        "--launcher",
        default="local",
        metavar="NAME",
        help="local (default: this machine) or slurm (one Slurm job array per submission, one array task "
        "per cell, requeued and resumed after preemption or the time limit; needs pip install "
        "'freqtail[slurm]' and sbatch; the --slurm-* options)",
    )
    parser.add_argument(
        "--nproc-per-cell",
        type=int,  # checked once by plan_devices (local) or SlurmOptions (slurm), in one sentence
        default=1,
        metavar="K",
        help="processes (ranks, e.g. one per GPU) per cell (default 1): the local launcher trains each cell "
        "under torchrun with K processes (gloo on the CPU without GPUs), then evaluates it; with "
        "--launcher slurm K tasks on one node train and evaluate it together",
    )
    slurm = parser.add_argument_group("Slurm options (--launcher slurm)")
    slurm.add_argument("--slurm-partition", metavar="NAME", help="the partition (default: the cluster's)")
    slurm.add_argument(
        "--slurm-time",
        type=int,
        metavar="MINUTES",
        help="time limit of each array task (default: the partition's); a cell that needs longer is "
        "requeued at the limit and resumes from its checkpoint",
    )
    slurm.add_argument(
        "--slurm-gpus-per-task", type=int, default=0, metavar="N", help="GPUs per process (default 0)"
    )
    slurm.add_argument(
        "--slurm-cpus-per-task", type=int, metavar="N", help="CPUs per process (default: the cluster's)"
    )
    slurm.add_argument(
        "--slurm-array-parallelism",
        type=int,
        metavar="N",
        help="array tasks (cells) running at once (default: all)",
    )
    slurm.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further sbatch option, repeatable: --slurm-option account=myproject --slurm-option "
        "qos=high (passed as --KEY=VALUE)",
    )
    slurm.add_argument(
        "--wait",
        action="store_true",
        help="wait for the Slurm jobs and report like the local launcher (default: return after submitting)",
    )
    parser.add_argument(CHILD_FLAG, dest="launcher_process", action="store_true", help=argparse.SUPPRESS)


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The launch options of ``args`` for a launcher process (``--jobs 1`` and the hidden flag)."""
    out = ["--out", args.out, "--scale", args.scale, "--retries", str(args.retries), "--jobs", "1"]
    out += ["--nproc-per-cell", str(args.nproc_per_cell)]
    if args.only is not None:
        out += ["--only", args.only]
    if args.log is not None:
        out += ["--log", args.log]
    return [*out, CHILD_FLAG]


def runtime_keys(args: argparse.Namespace) -> dict:
    """The runtime config keys the launch options set on every cell (``--log``)."""
    return {} if args.log is None else {"log": args.log}


def _sequential(spec, args: argparse.Namespace) -> None:
    from freqtail.workflows.grid_run import run_cell, run_grid

    def runner(cell, run_dir) -> None:
        def log(line: str) -> None:
            print(f"{cell.name}: {line}", flush=True)

        run_cell(cell, run_dir, spec, log=log, runtime=runtime_keys(args), nproc=args.nproc_per_cell)

    run_grid(
        spec,
        args.out,
        cell_runner=runner,
        retries=args.retries,
        only=args.only,
        log=lambda line: print(line, flush=True),
    )


def _copy_lines(stream, tag: str) -> None:
    for line in stream:
        print(f"{tag} {line.rstrip()}", flush=True)


def _parallel(spec, args: argparse.Namespace, command: list[str], jobs: int, plan) -> list[int]:
    """Run ``jobs`` launcher processes to their end, each with the devices ``plan`` gives it; returns
    their exit codes."""
    import os
    import subprocess
    import threading

    from freqtail.workflows.grid_devices import VISIBLE_DEVICES
    from freqtail.workflows.grid_manifest import GridManifest

    GridManifest.open(args.out, spec)  # refuses another grid's folder once, before any process starts
    argv = [sys.executable, "-m", "freqtail.cli", *command, *child_arguments(args)]
    processes, readers = [], []
    try:
        for index in range(jobs):
            env = {**os.environ, **plan.environment(index, os.environ.get(VISIBLE_DEVICES))}
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
            )
            processes.append(process)
            reader = threading.Thread(
                target=_copy_lines, args=(process.stdout, f"[launcher {index + 1}]"), daemon=True
            )
            reader.start()
            readers.append(reader)
        for process in processes:
            process.wait()
    except KeyboardInterrupt:
        _stop(processes)
        raise
    for reader in readers:
        reader.join()
    return [process.returncode for process in processes]


def _stop(processes) -> None:
    """Ask every launcher process to stop as on Ctrl-C (it puts its cell back), then wait for it."""
    import signal
    import subprocess

    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()  # its cell stays running and is taken over by the next run
            process.wait()


def _sbatch_options(texts: list[str]) -> dict[str, str]:
    """``--slurm-option KEY=VALUE`` texts as ``{KEY: VALUE}`` (leading dashes of KEY dropped)."""
    from freqtail.errors import ConfigError

    options = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip("-"):
            raise ConfigError(f"--slurm-option wants KEY=VALUE, e.g. account=myproject, not {text!r}.")
        options[key.strip().lstrip("-")] = value
    return options


def _slurm_options(args: argparse.Namespace):
    """The ``--slurm-*`` options as :class:`~freqtail.workflows.grid_slurm.SlurmOptions` (checked there)."""
    from freqtail.errors import ConfigError
    from freqtail.workflows.grid_slurm import SlurmOptions

    if args.jobs not in (None, 1):
        raise ConfigError(
            "--jobs is the local launcher's; a Slurm job array runs its cells at once (limit them with "
            "--slurm-array-parallelism)."
        )
    if args.gpus is not None:
        raise ConfigError(
            "--gpus is the local launcher's; ask Slurm for GPUs with --slurm-gpus-per-task (each task "
            "gets its own)."
        )
    return SlurmOptions(
        partition=args.slurm_partition,
        time_minutes=args.slurm_time,
        gpus_per_task=args.slurm_gpus_per_task,
        cpus_per_task=args.slurm_cpus_per_task,
        array_parallelism=args.slurm_array_parallelism,
        tasks_per_cell=args.nproc_per_cell,
        extra=_sbatch_options(args.slurm_option),
    )


def _slurm(spec, args: argparse.Namespace, options) -> str | None:
    """Submit the chosen cells as one Slurm job array; with ``--wait``, wait for it. Returns what the
    report says of cells left pending (None: nothing to report, the jobs were only submitted)."""
    from freqtail.runs.layout import GridLayout
    from freqtail.workflows.grid_slurm import submit_grid, wait_for_submission

    submission = submit_grid(
        spec, args.out, options, only=args.only, retries=args.retries, runtime=runtime_keys(args)
    )
    for line in submission.lines():
        print(line, flush=True)
    if submission.array_id is not None and not args.wait:
        return None
    try:
        wait_for_submission(submission, say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(
            f"Stopped waiting; the Slurm jobs go on (squeue -j {submission.array_id}; freqtail grid status "
            f"{args.out}).",
            file=sys.stderr,
            flush=True,
        )
        raise
    logs = GridLayout.of(submission.folder).slurm
    return (
        "their Slurm tasks ended without finishing them (cancelled, or stopped outside freqtail: see the "
        f"logs in {logs}/); run the same command again"
    )


def _device_count(gpus: str | None) -> int:
    """The GPUs PyTorch sees here; only asked (CUDA initialised) when ``--gpus`` names some."""
    if gpus is None:
        return 0
    import torch

    return torch.cuda.device_count()


def check_launch_arguments(args: argparse.Namespace) -> str:
    """The launcher (``--launcher``), after refusing a launcher or ``--scale`` that does not exist:
    the checks that need no grid spec, made before one is built."""
    from freqtail.checks import check_choice
    from freqtail.errors import ConfigError
    from freqtail.workflows.grid_scale import check_scale

    check_scale(args.scale)
    return check_choice(args.launcher, LAUNCHERS, "The launcher --launcher", error=ConfigError)


def launch(spec, args: argparse.Namespace, command: list[str], launcher: str) -> int:
    """Run ``spec`` (already at ``args.scale``) into ``args.out`` as the module docstring says.

    ``command``: the subcommand and its own arguments (``["reproduce", "t1"]``), repeated for the
    launcher processes of ``--jobs N``; ``launcher``: what :func:`check_launch_arguments` returned.
    """
    from freqtail.train.tensorboard_log import check_log
    from freqtail.workflows.grid_devices import plan_devices
    from freqtail.workflows.grid_run import cell_config
    from freqtail.workflows.grid_scale import describe_scale

    chosen = spec.cells(args.only)
    names = {cell.name for cell in chosen}
    for cell in chosen:  # --log checked, and TensorBoard asked for, before any cell runs
        check_log(cell_config(cell, runtime_keys(args)))
    options = None
    if launcher == "slurm":
        from freqtail.workflows.grid_slurm import check_slurm

        options = _slurm_options(args)
        check_slurm()  # before anything is printed: one sentence if submitit or sbatch is missing
    else:
        plan = plan_devices(args.gpus, args.jobs, args.nproc_per_cell, _device_count(args.gpus))
    if not args.launcher_process:
        devices = plan.describe(min(plan.jobs, len(names))) if launcher == "local" else []
        for line in [*describe_scale(spec, args.scale, args.only), *devices]:
            print(line, flush=True)
    if launcher == "slurm":
        left_why = _slurm(spec, args, options)
        if left_why is None:
            return 0
        return _report(args, names, left_why, totals=True)
    jobs = min(plan.jobs, len(names))
    codes: list[int] = []
    if jobs == 1 and not plan.groups:
        _sequential(spec, args)
    else:  # with --gpus always in launcher processes: CUDA reads CUDA_VISIBLE_DEVICES at start
        codes = _parallel(spec, args, command, jobs, plan)
    if args.launcher_process:
        return 0  # the parent launcher reports
    exits = ", ".join(map(str, codes))
    left_why = f"the launcher processes ended with exit codes {exits}; run the same command again"
    return _report(args, names, left_why, totals=jobs > 1 or bool(plan.groups))


def _report(args: argparse.Namespace, names: set[str], left_why: str, *, totals: bool) -> int:
    """Report the chosen cells: exit 0 when none failed or was left pending, else 1 with one sentence."""
    from freqtail.workflows.grid_status import grid_status

    status = grid_status(args.out)
    chosen = [cell for cell in status.cells if cell.record.name in names]
    if totals:
        print(status.totals_line(), flush=True)
    failed = [cell.record for cell in chosen if cell.record.state.value == "failed"]
    if failed:
        listed = "; ".join(f"{record.name} ({record.why})" for record in failed)
        print(f"{len(failed)} of {len(chosen)} cells failed: {listed}", file=sys.stderr, flush=True)
        return 1
    left = [cell.record.name for cell in chosen if cell.record.state.value == "pending"]
    if left:  # a launcher process or a Slurm task ended early (its own error is in its lines or log)
        print(f"{len(left)} cells were not run ({', '.join(left)}): {left_why}.", file=sys.stderr, flush=True)
        return 1
    return 0


__all__ = ["CHILD_FLAG", "LAUNCHERS", "add_launch_arguments", "child_arguments", "launch", "runtime_keys"]
