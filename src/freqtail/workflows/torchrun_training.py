"""Training one run folder with K processes under freqtail's torchrun launcher, as a child process group.

:func:`train_with_torchrun` writes the config (without a progress bar) to a temporary YAML file and runs

    python -m freqtail.train.torchrun --standalone --nnodes 1 --nproc-per-node K \\
        -m freqtail.workflows.torchrun_worker CONFIG.yaml RUN

Each of the K processes (:mod:`freqtail.workflows.torchrun_worker`) calls
:func:`freqtail.workflows.training.train_run` with ``resume=True``, so they join the one distributed
setup (:mod:`freqtail.distributed`, gloo on the CPU, NCCL on GPUs) exactly as ``freqtail train``
started under torchrun does; a partial run continues from its checkpoint and a new folder starts
fresh, as for one process. Every line the processes print reaches ``log``; a process that fails
prints one line starting with :data:`ERROR_PREFIX`, whose sentence becomes the error raised here.

The child runs in its own session, so a terminal's Ctrl-C reaches it only through this process:
Ctrl-C here (``KeyboardInterrupt``) sends SIGINT to torchrun, which tells the workers to stop after
their step and write an ``interrupted`` checkpoint; this waits for them (at most
:data:`STOP_GRACE` seconds, then kills torchrun) and raises ``KeyboardInterrupt`` again.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from freqtail.checks import check_int
from freqtail.errors import ConfigError, FreqtailError
from freqtail.io import atomic_write_text
from freqtail.train.config import TrainConfig, config_to_yaml

#: Seconds the child gets to write its checkpoint after Ctrl-C before it is killed (torchrun itself
#: kills workers that have not stopped 30 s after it told them).
STOP_GRACE = 60.0
#: Exit statuses of freqtail's torchrun launcher that mean "stopped by a signal" (SIGINT, SIGTERM).
STOPPED = (128 + signal.SIGINT, 128 + signal.SIGTERM)
#: The module each training process runs (not imported here: ``python -m`` runs it fresh).
WORKER_MODULE = "freqtail.workflows.torchrun_worker"
#: What the one line of a training process's error starts with (then its sentence).
ERROR_PREFIX = "freqtail training process: error: "
#: Variables of an enclosing torchrun that must not leak into the child's own process group.
_DISTRIBUTED_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
#: Lines of the child's output kept to explain a failure.
_KEPT_LINES = 40


def torchrun_command(config_file: Path, run_dir: Path, nproc: int) -> list[str]:
    """The child's command line: ``nproc`` training processes of ``config_file`` into ``run_dir`` on
    this machine (``--standalone``: a rendezvous on a free local port of its own)."""
    return [
        sys.executable,
        "-m",
        "freqtail.train.torchrun",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "-m",
        WORKER_MODULE,
        str(config_file),
        str(run_dir),
    ]


def _child_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _DISTRIBUTED_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the log as they are printed
    # torchrun sets 1 thread per worker itself when this is unset, with a four-line banner per cell
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _failure(code: int, lines: collections.deque[str], nproc: int) -> FreqtailError:
    """One sentence on why the child failed: a worker's own error sentence, else its last line."""
    for line in lines:
        if ERROR_PREFIX in line:
            # a line another process's output ran into still holds the sentence whole after the prefix
            sentence = line.split(ERROR_PREFIX)[1].strip()
            return FreqtailError(sentence)
    last = next((line for line in reversed(lines) if line.strip()), "no output")
    return FreqtailError(
        f"Training with {nproc} processes under torchrun failed (exit status {code}); its last line: "
        f"{last.strip()}"
    )


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C for the child: SIGINT to torchrun, then wait (killed after :data:`STOP_GRACE` s)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def train_with_torchrun(
    config: TrainConfig, run_dir: Path, nproc: int, *, log: Callable[[str], None] | None = None
) -> None:
    """Train ``config`` into ``run_dir`` with ``nproc`` processes (see the module docstring).

    Args:
        config: a validated config; its ``batch_size`` is the global batch (``nproc`` must divide it).
        run_dir: the run folder (a partial run there resumes).
        nproc: training processes (a positive integer).
        log: receives every line the processes print (None = they are dropped).

    Raises:
        KeyboardInterrupt: Ctrl-C here, or the child was stopped by a signal (its ``interrupted``
            checkpoint is in ``run_dir``).
        FreqtailError: a worker failed: its own error sentence (one sentence), or the exit status
            and the last line printed.
    """
    nproc = check_int(nproc, "The training process count", minimum=1, error=ConfigError)
    say = log if log is not None else (lambda _line: None)
    lines: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)

    def copy(stream) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            say(lines[-1])

    with tempfile.TemporaryDirectory(prefix="freqtail-torchrun-") as folder:
        text = config_to_yaml(config.replace(progress=False))  # a bar per step would flood the log
        config_file = atomic_write_text(Path(folder) / "train-config.yaml", text)
        process = subprocess.Popen(
            torchrun_command(config_file, Path(run_dir), nproc),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=_child_environment(),
            start_new_session=True,  # Ctrl-C reaches it once, from here (see the module docstring)
        )
        reader = threading.Thread(target=copy, args=(process.stdout,), daemon=True)
        reader.start()
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C: the workers write their checkpoint, then this goes on
            _stop(process)
            reader.join(timeout=5.0)  # a worker torchrun could not stop may still hold the pipe
            raise
        reader.join()
    if code in STOPPED:
        raise KeyboardInterrupt(f"training under torchrun was stopped (exit status {code})")
    if code != 0:
        raise _failure(code, lines, nproc)


__all__ = ["ERROR_PREFIX", "STOP_GRACE", "WORKER_MODULE", "torchrun_command", "train_with_torchrun"]
