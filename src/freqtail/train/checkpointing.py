"""A training run's state on disk: its checkpoints (save, restore) and its ``metrics.jsonl``.

:func:`save_state` writes what :func:`restore_state` needs to continue bit for bit: the model and
optimiser, the gradient scaler, the RNG states, the schedule's position, the epoch records and
(for an interrupted epoch) the sums of its steps so far. The checkpoint files themselves are
:mod:`freqtail.train.checkpoint`'s; the run folder's names are :mod:`freqtail.runs.layout`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from freqtail.errors import CheckpointError
from freqtail.io import atomic_write_text, sweep_leftover_temporaries
from freqtail.runs.layout import CHECKPOINTS_DIR, CONFIG_FILE, METRICS_FILE
from freqtail.train.accumulator import Accumulator
from freqtail.train.build import TrainParts
from freqtail.train.checkpoint import (
    LAST_EPOCH,
    WHICH,
    load_checkpoint,
    remove_unfinished_checkpoints,
    save_checkpoint,
)
from freqtail.train.config import TrainConfig, config_differences, config_to_yaml, stored_config
from freqtail.train.rng import capture_rng_state, restore_rng_state


@dataclass
class Progress:
    """Where a run stands.

    Attributes:
        epoch: index of the epoch in progress (0-based; between epochs: the completed epochs).
        step_in_epoch: optimiser steps taken in that epoch.
        global_step: optimiser steps taken in the run.
        history: the per-epoch metric records (as in ``metrics.jsonl``).
        best: ``{"metric", "value", "epoch"}`` of the best checkpoint, or None.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_state` read: the progress, whether the run was complete, and the sums
    of an interrupted epoch (None when the checkpoint ends an epoch)."""

    progress: Progress
    complete: bool
    accumulator: Accumulator | None


def _state_in_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give optimiser state tensors their parameter's memory layout (checkpoints store them contiguous).

    With channels-last parameters, an update mixing layouts takes another kernel path than the
    uninterrupted run's, whose float rounding can differ; same layouts keep a resumed run bit-exact.
    """
    for parameter, state in optimizer.state.items():
        for key, value in state.items():
            if (
                isinstance(value, torch.Tensor)
                and value.shape == parameter.shape
                and value.stride() != parameter.stride()
            ):
                state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


def _info(
    parts: TrainParts,
    progress: Progress,
    *,
    next_lr: float,
    world_size: int,
    complete: bool,
    improved: bool,
    accumulator: Accumulator | None,
) -> dict[str, Any]:
    """The JSON contents of one checkpoint's ``checkpoint.json`` (before the file records)."""
    interrupted = accumulator is not None
    return {
        "kind": "interrupted" if interrupted else "epoch",
        "epoch": progress.epoch,  # completed epochs
        "global_step": progress.global_step,
        "complete": complete,
        "config": parts.config.to_dict(),
        "model_spec": parts.spec,
        "world_size": world_size,
        "progress": {
            "epoch_in_progress": progress.epoch if interrupted else None,
            "step_in_epoch": progress.step_in_epoch if interrupted else 0,
            "accumulator": accumulator.to_json() if interrupted else None,
        },
        "schedule": {
            "name": parts.config.schedule,
            "global_step": progress.global_step,
            "steps_per_epoch": parts.steps_per_epoch,
            "total_steps": parts.total_steps,
            "next_lr": next_lr,
        },
        "grad_scaler": parts.scaler.state_dict() if parts.scaler is not None else None,
        "rng": capture_rng_state(),
        "history": progress.history,
        "best": progress.best,
        "selected_on": parts.evaluation.selected_on if improved else LAST_EPOCH,
    }


def save_state(
    run_dir: Path,
    parts: TrainParts,
    progress: Progress,
    *,
    next_lr: float,
    world_size: int,
    complete: bool,
    improved: bool,
    accumulator: Accumulator | None = None,
) -> None:
    """Write a checkpoint of the run (call on rank 0): ``last``, and ``best`` too when ``improved``.

    ``accumulator`` (the epoch's sums over all ranks) makes it an ``interrupted`` checkpoint in
    the middle of epoch ``progress.epoch``; ``next_lr`` is the learning rate of the next step.
    """
    selected_on = parts.evaluation.selected_on
    save_checkpoint(
        run_dir / CHECKPOINTS_DIR,
        model_state=parts.model.state_dict(),
        info=_info(
            parts,
            progress,
            next_lr=next_lr,
            world_size=world_size,
            complete=complete,
            improved=improved,
            accumulator=accumulator,
        ),
        optimizer_state=parts.optimizer.state_dict(),
        pointers=("last", "best") if improved else ("last",),
        pointer_extra={"metric": progress.best["metric"], "value": progress.best["value"]}
        if improved
        else None,
        pointer_fields={"best": {"selected_on": selected_on}, "last": {"selected_on": LAST_EPOCH}},
    )


def restore_state(run_dir: Path, name: str, parts: TrainParts, *, is_main: bool) -> Restored:
    """Load checkpoint ``name`` of ``run_dir`` into ``parts`` (model, optimiser, scaler, RNG states).

    Only rank 0 (``is_main``) carries an interrupted epoch's sums (they are the sums over all
    ranks); the other ranks continue from zero.

    Raises:
        CheckpointError: the checkpoint was written by another config or does not fit the model.
    """
    checkpoint = load_checkpoint(run_dir / CHECKPOINTS_DIR / name)
    info = checkpoint.info
    if info.get("config") is None or config_differences(stored_config(info["config"]), parts.config):
        raise CheckpointError(
            f"The last checkpoint in {run_dir} was written by a different config; pass --force to start over."
        )
    try:
        parts.model.load_state_dict(checkpoint.model_state)
    except RuntimeError as err:
        raise CheckpointError(f"The last checkpoint does not fit the model ({err}).") from None
    optimizer_state = checkpoint.optimizer_state()
    if optimizer_state is not None:
        parts.optimizer.load_state_dict(optimizer_state)
        _state_in_parameter_layout(parts.optimizer)
    if parts.scaler is not None and info.get("grad_scaler"):
        parts.scaler.load_state_dict(info["grad_scaler"])
    progress = Progress(
        global_step=int(info["global_step"]), history=list(info.get("history") or []), best=info.get("best")
    )
    saved = info.get("progress") or {}
    accumulator = None
    if saved.get("epoch_in_progress") is not None:
        progress.epoch = int(saved["epoch_in_progress"])
        progress.step_in_epoch = int(saved["step_in_epoch"])
        accumulator = Accumulator.from_json(saved["accumulator"])
        if not is_main:
            accumulator = Accumulator(terms={k: 0.0 for k in accumulator.terms})
        restore_rng_state(info["rng"])
    else:
        progress.epoch = int(info["epoch"])
    return Restored(progress, bool(info.get("complete")), accumulator)


def metrics_lines(run_dir: Path) -> list[str]:
    """The non-empty lines of ``run_dir``'s ``metrics.jsonl`` (none when it is missing)."""
    try:
        text = (run_dir / METRICS_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def sweep_interrupted_writes(run_dir: Path) -> list[Path]:
    """Remove what writes of a killed training process left in ``run_dir``: temporary files of
    ``config.yaml``, ``metrics.jsonl`` and the checkpoint pointers, and unfinished checkpoint folders.

    Call it holding the folder's training lock (the only writer of these files), before the folder is
    read: a kill while ``config.yaml`` was first written then leaves a folder that starts afresh.
    """
    checkpoints = run_dir / CHECKPOINTS_DIR
    pointers = [checkpoints / f"{which}.json" for which in WHICH]
    owned = [run_dir / CONFIG_FILE, run_dir / METRICS_FILE, *pointers]
    removed = sweep_leftover_temporaries(owned)
    if checkpoints.is_dir():
        removed += [checkpoints / name for name in remove_unfinished_checkpoints(checkpoints)]
    return removed


def start_run_files(run_dir: Path, config: TrainConfig) -> None:
    """A fresh run's files: ``config.yaml`` and an empty ``metrics.jsonl`` (the folder is created)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, config_to_yaml(config))
    atomic_write_text(run_dir / METRICS_FILE, "")


def write_metrics(run_dir: Path, history: list[dict[str, Any]], earlier_lines: list[str]) -> None:
    """Rewrite ``metrics.jsonl``: one JSON line per record of ``history``, then the lines of
    ``earlier_lines`` (the file when the run resumed from an older checkpoint) beyond them — they
    stay until their epochs are trained again, so the file never loses a record."""
    lines = [json.dumps(record, allow_nan=False) for record in history]
    lines += earlier_lines[len(lines) :]
    atomic_write_text(run_dir / METRICS_FILE, "".join(line + "\n" for line in lines))
