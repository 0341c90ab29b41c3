"""The training loop: epochs of optimiser steps, an evaluation and a checkpoint after each epoch.

A run lives in one folder (docs/design.md, "Architecture"; names in :mod:`freqtail.runs.layout`):
``runs/NAME/{config.yaml, metrics.jsonl, checkpoints/}``. After every epoch rank 0 writes a
checkpoint (``last``; also ``best`` when the epoch improved the run's best metric) and rewrites
``metrics.jsonl`` (one JSON record per epoch; with ``log: tensorboard`` the same numbers go to
``RUN/tensorboard/`` first, :mod:`freqtail.train.tensorboard_log`). A stop request (Ctrl-C / SIGTERM, or
:meth:`Trainer.request_stop`) finishes the current optimiser step and writes an ``interrupted``
checkpoint at that step; a resumed run reaches the same final weights and metrics as an
uninterrupted run (bit for bit on CPU, one process).

The :class:`Trainer` is handed a decided :class:`TrainStart` (fresh, or resume from which
checkpoint): whether and how a run folder may be used is the workflow's decision
(:mod:`freqtail.workflows.training`, which also holds the folder's lock).

Model selection: ``best`` is chosen on the test images by default (``selection: test``, as the
authors' code does) or on ``val_subset`` held-out training images (``selection: val``); every
checkpoint records which images chose it (``selected_on``, see :mod:`freqtail.train.checkpoint`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from freqtail import distributed as D
from freqtail.errors import FreqtailError
from freqtail.formatting import count
from freqtail.runs.layout import CHECKPOINTS_DIR, METRICS_FILE
from freqtail.train.accumulator import Accumulator
from freqtail.train.build import TrainParts, build_parts
from freqtail.train.checkpoint import point_last_at
from freqtail.train.checkpointing import (
    Progress,
    metrics_lines,
    restore_state,
    save_state,
    start_run_files,
    write_metrics,
)
from freqtail.train.config import TrainConfig
from freqtail.train.evaluation import evaluate_epoch
from freqtail.train.forecast import StepForecast
from freqtail.train.records import epoch_line, epoch_record
from freqtail.train.rng import derive_seed
from freqtail.train.stop import StopRequest
from freqtail.train.tensorboard_log import EpochLog, epoch_log

#: In multi-process runs, ranks agree on a stop request (and check the loss) every this many steps.
SYNC_EVERY = 10


@dataclass(frozen=True)
class TrainStart:
    """Where a decided run starts.

    Attributes:
        mode: ``"fresh"`` (epoch 1; the trainer writes ``config.yaml`` and an empty
            ``metrics.jsonl``) or ``"resume"``.
        checkpoint: for ``"resume"``, the checkpoint folder's name under ``checkpoints/``.
        repair_last: ``last.json`` is damaged: point it at ``checkpoint`` once that loaded.
    """

    mode: str = "fresh"
    checkpoint: str | None = None
    repair_last: bool = False


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        run_dir: the run folder.
        status: ``"complete"``, ``"interrupted"`` (a resumable checkpoint was written) or
            ``"already-complete"`` (``resume`` found a finished run; nothing was trained).
        epochs_completed, global_step: progress at return.
        history: the per-epoch metric records (as in ``metrics.jsonl``).
        best: ``{"metric", "value", "epoch"}`` of the best checkpoint, or None.
    """

    run_dir: Path
    status: str
    epochs_completed: int
    global_step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


def _to_device(inputs, device: torch.device):
    if isinstance(inputs, (tuple, list)):
        return tuple(x.to(device, non_blocking=True) for x in inputs)
    return inputs.to(device, non_blocking=True)


def _log_to_stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


class Trainer:
    """Runs the epochs of one run in its folder, from a decided :class:`TrainStart`.

    Callbacks (``on_step(trainer)``, ``on_epoch_end(trainer, record)``) see ``epoch`` (0-based, in
    progress), ``step_in_epoch``, ``global_step``, ``total_epochs``, ``optimizer``, ``lr_at`` (which
    they may replace), ``dist`` and ``stop``, and may call :meth:`request_stop`.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        dist_info: D.DistContext,
        *,
        log: Callable[[str], None] | None = None,
        callbacks: Sequence[Any] = (),
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.dist = dist_info
        self.callbacks = list(callbacks)
        main_log = log if log is not None else _log_to_stderr
        self.log = main_log if dist_info.is_main else (lambda message: None)
        self.stop = StopRequest(self.log)
        self.progress = Progress()
        self._metrics_before: list[str] = []  # metrics.jsonl's lines when the run resumed
        self._epoch_log = EpochLog()  # TensorBoard event files while the loop runs (log: tensorboard)

    # --------------------------------------------------------------- for callbacks
    def request_stop(self) -> None:
        """Stop after the current optimiser step, writing a resumable checkpoint."""
        self.stop.request()

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / CHECKPOINTS_DIR

    @property
    def epoch(self) -> int:
        return self.progress.epoch

    @property
    def step_in_epoch(self) -> int:
        return self.progress.step_in_epoch

    @property
    def global_step(self) -> int:
        return self.progress.global_step

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.progress.history

    @property
    def best(self) -> dict[str, Any] | None:
        return self.progress.best

    # --------------------------------------------------------------- the run
    def run(self, start: TrainStart) -> TrainResult:
        """Build the run's parts, start or resume it as ``start`` says, and train to the end or a stop."""
        self.parts: TrainParts = build_parts(self.config, self.dist, fresh=start.mode == "fresh")
        self.optimizer = self.parts.optimizer
        self.lr_at = self.parts.lr_at
        self.total_epochs = self.parts.total_epochs
        accumulator = None
        if start.mode == "resume":
            complete, accumulator = self._resume(start)
            if complete:
                self.log(
                    f"The run in {self.run_dir} is already complete ({count(self.epoch, 'epoch')}); "
                    "nothing to do."
                )
                return self._result("already-complete")
        elif self.dist.is_main:
            start_run_files(self.run_dir, self.config)
        D.barrier(self.dist)
        self.log(self._opening_line())
        self._forecast = StepForecast(self.global_step, self.parts.total_steps)
        first_epoch = len(self.history) + 1
        with (
            self.stop,
            epoch_log(self.config, self.run_dir, first_epoch=first_epoch, is_main=self.dist.is_main) as out,
        ):
            self._epoch_log = out
            return self._loop(accumulator)

    def _resume(self, start: TrainStart) -> tuple[bool, Accumulator | None]:
        """Restore checkpoint ``start.checkpoint``; ``(already complete, the partial epoch's sums)``."""
        restored = restore_state(self.run_dir, start.checkpoint, self.parts, is_main=self.dist.is_main)
        self.progress = restored.progress
        if self.dist.is_main:
            if start.repair_last:
                point_last_at(self.checkpoints_dir, self.checkpoints_dir / start.checkpoint)
            self._metrics_before = metrics_lines(self.run_dir)
            if len(self._metrics_before) > len(self.history):
                self.log(
                    f"{self.run_dir / METRICS_FILE} holds {len(self._metrics_before)} epoch records, the "
                    f"checkpoint {len(self.history)}; the later records stay until their epochs are "
                    "trained again."
                )
        if not restored.complete:
            where = f"epoch {self.epoch + 1}" + (
                f", step {self.step_in_epoch}" if restored.accumulator else ""
            )
            self.log(f"Resuming {self.run_dir} at {where} (global step {self.global_step}).")
        return restored.complete, restored.accumulator

    def _opening_line(self) -> str:
        """What is trained and how long it is, before the first step: model, objective, dataset, epochs,
        steps, batch, threads and device."""
        config, parts = self.config, self.parts
        left = parts.total_steps - self.global_step
        bass = f" + BaSS {config.bass}" if config.bass else ""
        return (
            f"Training {config.model} with {config.objective}{bass} "
            f"on {config.dataset}: {count(parts.total_epochs, 'epoch')} of "
            f"{count(parts.steps_per_epoch, 'step')} (batch {config.batch_size}), {left} of "
            f"{parts.total_steps} steps to go, {count(torch.get_num_threads(), 'torch thread')} on "
            f"{self.dist.device}."
        )

    def _result(self, status: str) -> TrainResult:
        return TrainResult(self.run_dir, status, self.epoch, self.global_step, self.history, self.best)

    def _loop(self, accumulator: Accumulator | None) -> TrainResult:
        while self.global_step < self.parts.total_steps:
            if accumulator is None:  # a new epoch (a resumed one continues its sums and RNG state)
                accumulator = Accumulator()
                torch.manual_seed(derive_seed(self.config.seed, "epoch", self.epoch, self.dist.rank))
            started = time.perf_counter()
            lr, images, stopped = self._run_epoch(accumulator, started)
            train_time = time.perf_counter() - started
            if stopped:
                return self._stop_mid_epoch(accumulator)
            record = self._finish_epoch(accumulator, lr, train_time, images, started)
            accumulator = None
            for callback in self.callbacks:
                if hasattr(callback, "on_epoch_end"):
                    callback.on_epoch_end(self, record)
            if D.any_rank(self.stop.requested, self.dist) and self.global_step < self.parts.total_steps:
                self.log(f"Stopped after epoch {self.epoch}; continue with --resume.")
                return self._result("interrupted")
        return self._result("complete")

    def _steps_this_epoch(self) -> int:
        parts = self.parts
        return min(parts.steps_per_epoch, parts.total_steps - self.epoch * parts.steps_per_epoch)

    def _run_epoch(self, accumulator: Accumulator, started: float) -> tuple[float, int, bool]:
        """The epoch's remaining steps; ``(last learning rate, images trained, stopped early)``."""
        steps = self._steps_this_epoch()
        self.parts.runner.train()
        images = 0
        lr = self.lr_at(self.global_step)
        bar = tqdm(
            total=steps,
            initial=self.step_in_epoch,
            desc=f"epoch {self.epoch + 1}/{self.total_epochs}",
            unit="step",
            disable=not (self.config.progress and self.dist.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        stopped = False
        for inputs, y, seeds in self._epoch_batches(self.step_in_epoch):
            if self.step_in_epoch >= steps:
                break
            lr = self._train_step(inputs, y, seeds, accumulator)
            self.progress.global_step += 1
            self.progress.step_in_epoch += 1
            images += int(y.shape[0]) * self.dist.world_size
            bar.update(1)
            forecast = self._forecast.after_step(self.global_step)
            if forecast:
                self.log(forecast)
            if self._after_step(accumulator, bar, images, started, steps):
                stopped = True
                break
        bar.close()
        return lr, images, stopped

    def _after_step(self, accumulator: Accumulator, bar, images: int, started: float, steps: int) -> bool:
        """Check the loss and show progress every :data:`SYNC_EVERY` steps, run the ``on_step``
        callbacks; True when the ranks agree to stop before the epoch's end."""
        at_sync = self.step_in_epoch % SYNC_EVERY == 0 or self.step_in_epoch == steps
        if at_sync:
            self._check_finite(accumulator)
            if self.dist.is_main:
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(
                    loss=f"{float(accumulator.loss) / accumulator.count:.3f}",
                    acc=f"{float(accumulator.correct) / accumulator.count:.3f}",
                    img_s=f"{images / elapsed:.0f}",
                )
        for callback in self.callbacks:
            if hasattr(callback, "on_step"):
                callback.on_step(self)
        # One process decides at every step; several agree at the sync points only (a collective).
        may_stop = (not self.dist.distributed or at_sync) and self.step_in_epoch < steps
        return may_stop and D.any_rank(self.stop.requested, self.dist)

    def _stop_mid_epoch(self, accumulator: Accumulator) -> TrainResult:
        """Write the ``interrupted`` checkpoint of the epoch in progress."""
        self._save(complete=False, improved=False, accumulator=accumulator.reduced(self.dist))
        self.log(
            f"Stopped at epoch {self.epoch + 1}, step {self.step_in_epoch} of {self._steps_this_epoch()}; "
            f"checkpoint written to {self.checkpoints_dir}; continue with --resume."
        )
        return self._result("interrupted")

    def _finish_epoch(
        self, accumulator: Accumulator, lr: float, train_time: float, images: int, started: float
    ) -> dict[str, Any]:
        """Evaluate if due, record the epoch, choose ``best``, write the checkpoint and metrics."""
        c, parts = self.config, self.parts
        totals = accumulator.reduced(self.dist)
        last_epoch = self.global_step >= parts.total_steps
        eval_started = time.perf_counter()
        evaluation = {}
        if last_epoch or (self.epoch + 1) % c.eval_every == 0:
            evaluation = evaluate_epoch(parts.model, parts.runner, parts.evaluation, c, self.dist)
        eval_time = time.perf_counter() - eval_started
        record = epoch_record(
            c,
            epoch=self.epoch + 1,
            global_step=self.global_step,
            lr=lr,
            totals=totals,
            evaluation=evaluation,
            has_val=parts.evaluation.val is not None,
        )
        improved = self._choose_best(record)
        record.update(
            best=improved,
            train_time=round(train_time, 3),
            eval_time=round(eval_time, 3),
            epoch_time=round(time.perf_counter() - started, 3),
            images_per_second=round(images / max(train_time, 1e-9), 1),
        )
        self.history.append(record)
        self.progress.epoch += 1
        self.progress.step_in_epoch = 0
        # Before the checkpoint: every epoch a checkpoint holds is in the event files (a resume purges
        # what was written after it; freqtail.train.tensorboard_log).
        self._epoch_log.write(record)
        self._save(complete=last_epoch, improved=improved)
        if self.dist.is_main:
            write_metrics(self.run_dir, self.history, self._metrics_before)
        self.log(epoch_line(record, self.total_epochs))
        return record

    def _choose_best(self, record: dict[str, Any]) -> bool:
        """Whether ``record`` improves the run's best metric (ties keep the earlier epoch)."""
        metric = self.parts.evaluation.best_metric
        value = record.get(metric)
        if value is None or not (self.best is None or value > self.best["value"]):
            return False
        self.progress.best = {"metric": metric, "value": value, "epoch": record["epoch"]}
        return True

    def _save(self, *, complete: bool, improved: bool, accumulator: Accumulator | None = None) -> None:
        if self.dist.is_main:
            save_state(
                self.run_dir,
                self.parts,
                self.progress,
                next_lr=self.lr_at(self.global_step),
                world_size=self.dist.world_size,
                complete=complete,
                improved=improved,
                accumulator=accumulator,
            )

    # --------------------------------------------------------------- one step
    def _autocast(self):
        if self.parts.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.parts.autocast_dtype)

    def _train_step(self, inputs, y, seeds, accumulator: Accumulator) -> float:
        """One optimiser step on this rank's batch; returns its learning rate."""
        parts = self.parts
        lr = self.lr_at(self.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs = _to_device(inputs, self.dist.device)
        y = y.to(self.dist.device, non_blocking=True)
        with self._autocast():
            out = parts.objective(parts.forward, parts.runner, inputs, y, seeds)
        self.optimizer.zero_grad(set_to_none=True)
        if parts.scaler is not None:
            parts.scaler.scale(out.loss).backward()
            parts.scaler.step(self.optimizer)
            parts.scaler.update()
        else:
            out.loss.backward()
            self.optimizer.step()
        accumulator.add(out.loss, out.logits, y, out.terms)
        return lr

    def _check_finite(self, accumulator: Accumulator) -> None:
        if not math.isfinite(float(accumulator.loss)):
            raise FreqtailError(
                f"The training loss became {float(accumulator.loss)} by step {self.global_step}; lower the "
                "learning rate or check the data (the last epoch's checkpoint is kept)."
            )

    def _epoch_batches(self, skip_batches: int) -> Iterator:
        """The epoch in progress as ``(inputs, labels, attack-start seeds)`` after ``skip_batches``."""
        parts = self.parts
        parts.sampler.set_epoch(self.epoch, skip_batches * parts.per_rank_batch)
        if parts.loader is None:
            return parts.train_data.batches(parts.sampler, parts.per_rank_batch, self.config.drop_last)
        return iter(parts.loader)


__all__ = ["SYNC_EVERY", "TrainResult", "TrainStart", "Trainer"]
