"""The local grid launcher shared by ``freqtail grid run`` and ``freqtail reproduce``.

:func:`launch` prints what the scale runs (:func:`freqtail.workflows.grid_scale.describe_scale`), then
runs the chosen cells one after another in this process (``--jobs 1``) or starts ``--jobs N`` launcher
processes (the same command with ``--jobs 1``) that claim cells from the one manifest, each cell once;
their lines are printed prefixed with ``[launcher K]``. With ``--gpus`` every launcher process gets
its own group of ``--nproc-per-cell`` GPUs as ``CUDA_VISIBLE_DEVICES``
(:func:`freqtail.workflows.grid_devices.plan_devices` owns the rule); ``--nproc-per-cell K`` trains
each cell with K processes under torchrun (:func:`freqtail.workflows.grid_run.run_cell`).
Exit codes: 0 when every chosen cell is done (or runs in another live launcher), 1 when some failed
(the sentence names them), 130 on Ctrl-C (the cells being run are put back to pending and resume on
the next run).
"""

from __future__ import annotations

import argparse
import sys

from freqtail.commands._common import non_negative_int

#: The hidden option a launcher process is started with (it does not print the scale again).
CHILD_FLAG = "--launcher-process"
#: Seconds the launcher processes get to put their cells back after Ctrl-C before they are killed.
STOP_GRACE = 60.0


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out``, ``--scale``, ``--only``, ``--retries``, ``--jobs``, ``--gpus``, ``--nproc-per-cell``
    (and the hidden launcher flag)."""
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
        "them as CUDA_VISIBLE_DEVICES (default: every process sees every device)",
    )
    parser.add_argument(
        "--nproc-per-cell",
        type=int,
        default=1,
        metavar="K",
        help="training processes per cell (default 1); K > 1 trains each cell under torchrun with K "
        "processes, one per GPU of its group (gloo on the CPU without GPUs), then evaluates it",
    )
    parser.add_argument(CHILD_FLAG, dest="launcher_process", action="store_true", help=argparse.SUPPRESS)


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The launch options of ``args`` for a launcher process (``--jobs 1`` and the hidden flag)."""
    out = ["--out", args.out, "--scale", args.scale, "--retries", str(args.retries), "--jobs", "1"]
    out += ["--nproc-per-cell", str(args.nproc_per_cell)]
    if args.only is not None:
        out += ["--only", args.only]
    return [*out, CHILD_FLAG]


def _sequential(spec, args: argparse.Namespace) -> None:
    from freqtail.workflows.grid_run import run_cell, run_grid

    def runner(cell, run_dir) -> None:
        def log(line: str) -> None:
            print(f"{cell.name}: {line}", flush=True)

        run_cell(cell, run_dir, spec, log=log, nproc=args.nproc_per_cell)

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


def _device_count(gpus: str | None) -> int:
    """The GPUs PyTorch sees here; only asked (CUDA initialised) when ``--gpus`` names some."""
    if gpus is None:
        return 0
    import torch

    return torch.cuda.device_count()


def launch(spec, args: argparse.Namespace, command: list[str]) -> int:
    """Run ``spec`` (already at ``args.scale``) into ``args.out`` as the module docstring says.

    ``command``: the subcommand and its own arguments (``["reproduce", "t1"]``), repeated for the
    launcher processes of ``--jobs N``.
    """
    from freqtail.workflows.grid_devices import plan_devices
    from freqtail.workflows.grid_scale import describe_scale
    from freqtail.workflows.grid_status import grid_status

    plan = plan_devices(args.gpus, args.jobs, args.nproc_per_cell, _device_count(args.gpus))
    names = {cell.name for cell in spec.cells(args.only)}
    jobs = min(plan.jobs, len(names))
    if not args.launcher_process:
        for line in [*describe_scale(spec, args.scale, args.only), *plan.describe(jobs)]:
            print(line, flush=True)
    codes: list[int] = []
    if jobs == 1 and not plan.groups:
        _sequential(spec, args)
    else:  # with --gpus always in launcher processes: CUDA reads CUDA_VISIBLE_DEVICES at start
        codes = _parallel(spec, args, command, jobs, plan)
    if args.launcher_process:
        return 0  # the parent launcher reports
    status = grid_status(args.out)
    chosen = [cell for cell in status.cells if cell.record.name in names]
    if jobs > 1 or plan.groups:
        print(status.totals_line(), flush=True)
    failed = [cell.record for cell in chosen if cell.record.state.value == "failed"]
    if failed:
        listed = "; ".join(f"{record.name} ({record.why})" for record in failed)
        print(f"{len(failed)} of {len(chosen)} cells failed: {listed}", file=sys.stderr, flush=True)
        return 1
    left = [cell.record.name for cell in chosen if cell.record.state.value == "pending"]
    if left:  # a launcher process ended early (its own error is in its lines above)
        print(
            f"{len(left)} cells were not run ({', '.join(left)}): the launcher processes ended with exit "
            f"codes {', '.join(map(str, codes))}; run the same command again.",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


__all__ = ["CHILD_FLAG", "add_launch_arguments", "child_arguments", "launch"]
