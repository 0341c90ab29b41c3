"""The local grid launcher shared by ``freqtail grid run`` and ``freqtail reproduce``.

:func:`launch` prints what the scale runs (:func:`freqtail.workflows.grid_scale.describe_scale`), then
runs the chosen cells one after another in this process (``--jobs 1``) or starts ``--jobs N`` launcher
processes (the same command with ``--jobs 1``) that claim cells from the one manifest, each cell once;
their lines are printed prefixed with ``[launcher K]``. Exit codes: 0 when every chosen cell is done
(or runs in another live launcher), 1 when some failed (the sentence names them), 130 on Ctrl-C (the
cells being run are put back to pending and resume on the next run).
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
    """``--out``, ``--scale``, ``--only``, ``--retries``, ``--jobs``, ``--log`` (and the hidden launcher
    flag)."""
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
        default=1,
        metavar="N",
        help="launcher processes claiming cells from the one manifest (default 1: one cell after another "
        "in this process)",
    )
    parser.add_argument(
        "--log",
        metavar="MODE",
        help="none or tensorboard: config key log of every cell (default: each cell's own); tensorboard "
        "writes each cell's per-epoch numbers to GRID/<cell>/tensorboard/ (watch them with tensorboard "
        "--logdir GRID; pip install 'freqtail[tensorboard]'); it does not change what a cell computes, "
        "so a grid started without it resumes with it",
    )
    parser.add_argument(CHILD_FLAG, dest="launcher_process", action="store_true", help=argparse.SUPPRESS)


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The launch options of ``args`` for a launcher process (``--jobs 1`` and the hidden flag)."""
    out = ["--out", args.out, "--scale", args.scale, "--retries", str(args.retries), "--jobs", "1"]
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

        run_cell(cell, run_dir, spec, log=log, runtime=runtime_keys(args))

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


def _parallel(spec, args: argparse.Namespace, command: list[str], jobs: int) -> list[int]:
    """Run ``jobs`` launcher processes to their end; returns their exit codes."""
    import subprocess
    import threading

    from freqtail.workflows.grid_manifest import GridManifest

    GridManifest.open(args.out, spec)  # refuses another grid's folder once, before any process starts
    argv = [sys.executable, "-m", "freqtail.cli", *command, *child_arguments(args)]
    processes, readers = [], []
    try:
        for index in range(jobs):
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
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


def launch(spec, args: argparse.Namespace, command: list[str]) -> int:
    """Run ``spec`` (already at ``args.scale``) into ``args.out`` as the module docstring says.

    ``command``: the subcommand and its own arguments (``["reproduce", "t1"]``), repeated for the
    launcher processes of ``--jobs N``.
    """
    from freqtail.checks import check_int
    from freqtail.errors import ConfigError
    from freqtail.train.tensorboard_log import check_log
    from freqtail.workflows.grid_run import cell_config
    from freqtail.workflows.grid_scale import describe_scale
    from freqtail.workflows.grid_status import grid_status

    check_int(args.jobs, "The launcher count --jobs", minimum=1, error=ConfigError)
    chosen = spec.cells(args.only)
    names = {cell.name for cell in chosen}
    for cell in chosen:  # --log checked, and TensorBoard asked for, before any cell runs
        check_log(cell_config(cell, runtime_keys(args)))
    if not args.launcher_process:
        for line in describe_scale(spec, args.scale, args.only):
            print(line, flush=True)
    jobs = min(args.jobs, len(names))
    codes: list[int] = []
    if jobs == 1:
        _sequential(spec, args)
    else:
        codes = _parallel(spec, args, command, jobs)
    if args.launcher_process:
        return 0  # the parent launcher reports
    status = grid_status(args.out)
    chosen = [cell for cell in status.cells if cell.record.name in names]
    if jobs > 1:
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


__all__ = ["CHILD_FLAG", "add_launch_arguments", "child_arguments", "launch", "runtime_keys"]
