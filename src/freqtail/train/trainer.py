"""One trainer for every objective: SGD, schedules, AMP on CUDA, DDP under torchrun, resumable runs.

A run lives in one folder (docs/design.md, "Architecture"; names in :mod:`freqtail.runs.layout`):
``runs/NAME/{config.yaml, metrics.jsonl, checkpoints/}``.
After every epoch rank 0 writes a checkpoint (``last``; also ``best`` when the epoch improved the
run's best metric) and rewrites ``metrics.jsonl`` (one JSON record per epoch). A stop request
(Ctrl-C / SIGTERM, or :meth:`Trainer.request_stop`) finishes the current optimiser step and writes
an ``interrupted`` checkpoint at that step; ``resume=True`` continues from ``last`` and reaches the
same final weights and metrics as an uninterrupted run (bit for bit on CPU, one process).

One run folder, one trainer: rank 0 holds an exclusive lock on ``RUN/.freqtail-train.lock``
(:data:`TRAIN_LOCK`, :mod:`freqtail.locks`) from before it looks at the folder until training
returns; a second trainer is refused with one sentence naming the holder (on every rank), and the
lock of a killed trainer is taken over and reported. A run folder's work is never lost without
``force``: ``metrics.jsonl`` is only rewritten with at least as many lines as it had, checkpoints
are only removed by rotation (:func:`freqtail.train.checkpoint.save_checkpoint`), and a damaged
``last.json`` makes ``resume`` continue from the newest complete checkpoint, saying so, or refuse.

Model selection: ``best`` is chosen on the test images by default (``selection: test``, as the
authors' code does) or on ``val_subset`` held-out training images (``selection: val``); every
checkpoint records which images chose it (``selected_on``, see :mod:`freqtail.train.checkpoint`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from freqtail import distributed as D
from freqtail.errors import CheckpointError, ConfigError, FreqtailError
from freqtail.io import atomic_write_text
from freqtail.runs.layout import CHECKPOINTS_DIR, CONFIG_FILE, METRICS_FILE, TRAIN_LOCK
from freqtail.train.checkpoint import (
    LAST_EPOCH,
    choose_resume_checkpoint,
    load_checkpoint,
    point_last_at,
    save_checkpoint,
)
from freqtail.train.config import (
    RUNTIME_KEYS,
    TrainConfig,
    adopt_stored_data_pipeline,
    config_differences,
    config_to_yaml,
    read_config_file,
    stored_config,
)
from freqtail.train.rng import capture_rng_state, derive_seed, restore_rng_state, seed_everything

# The run folder's names have one owner, freqtail.runs.layout. TRAIN_LOCK is the lock file a training
# process holds in its run folder (its holder record: TRAIN_LOCK + ".json").
_LOCK_FILES = (TRAIN_LOCK, TRAIN_LOCK + ".json")


@dataclass
class TrainResult:
    """What :func:`train` did.

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


# ----------------------------------------------------------------------------- run folder
def _stored_config(run_dir: Path) -> TrainConfig | None:
    try:
        return stored_config(read_config_file(run_dir / CONFIG_FILE), where=f"{run_dir / CONFIG_FILE}")
    except ConfigError:
        return None


@dataclass
class RunPlan:
    """How :func:`plan_run` decided to use a run folder.

    Attributes:
        mode: ``"fresh"`` (start from epoch 1) or ``"resume"``.
        checkpoint: for ``"resume"``, the checkpoint folder's name under ``checkpoints/``.
        notes: one-line messages for the log (a damaged ``last.json`` and what replaced it, ...).
        repair_last: ``last.json`` is damaged and should be pointed at ``checkpoint`` once it loaded.
    """

    mode: str
    checkpoint: str | None = None
    notes: list[str] = field(default_factory=list)
    repair_last: bool = False


def _looks_like_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds freqtail training output (metrics or freqtail checkpoints)."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    if (run_dir / METRICS_FILE).exists():
        return True
    return checkpoints.is_dir() and any(
        entry.name in ("last.json", "best.json") or entry.name.startswith("step-")
        for entry in checkpoints.iterdir()
    )


def _remove_run_files(run_dir: Path) -> None:
    import shutil

    (run_dir / CONFIG_FILE).unlink(missing_ok=True)
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)


def _metrics_lines(run_dir: Path) -> list[str]:
    try:
        text = (run_dir / METRICS_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def _previous_run_evidence(run_dir: Path) -> list[str]:
    """What in ``run_dir`` would be lost by starting the run over (phrases; empty: nothing)."""
    evidence = []
    lines = len(_metrics_lines(run_dir))
    if lines:
        evidence.append(f"{METRICS_FILE} has {lines} epoch record{'s' if lines != 1 else ''}")
    checkpoints = run_dir / CHECKPOINTS_DIR
    if checkpoints.is_dir():
        folders = [e for e in checkpoints.iterdir() if e.is_dir() and e.name.startswith("step-")]
        if folders:
            plural = "s" if len(folders) != 1 else ""
            evidence.append(f"{CHECKPOINTS_DIR}/ has {len(folders)} damaged checkpoint folder{plural}")
        pointers = sorted(e.name for e in checkpoints.iterdir() if e.name in ("last.json", "best.json"))
        if pointers and not folders:
            evidence.append(f"{CHECKPOINTS_DIR}/ has {' and '.join(pointers)}")
    return evidence


def plan_run(run_dir: Path, config: TrainConfig, *, resume: bool, force: bool) -> RunPlan:
    """Decide how to use ``run_dir`` (call it holding the folder's :data:`TRAIN_LOCK`).

    Rules: an empty or new folder starts fresh (the lock files do not count); a folder holding a run
    is never overwritten without ``force`` (which removes only freqtail's files there: config.yaml,
    metrics.jsonl, checkpoints/); ``resume`` continues a run with the same config (runtime keys such
    as num_workers may differ) from ``last``, or — when ``last.json`` is missing or damaged — from the
    newest complete checkpoint, with a note saying so. With no complete checkpoint left, ``resume``
    starts over only if nothing would be lost (no metrics record, no checkpoint folder or pointer)
    and refuses otherwise.

    Raises:
        ConfigError: the folder holds a different run, the same run without ``resume``, or other files.
        CheckpointError: ``resume`` finds no complete checkpoint but a previous run's records.
    """
    config_path = run_dir / CONFIG_FILE
    if not config_path.exists():
        others = [p.name for p in run_dir.iterdir() if p.name not in _LOCK_FILES] if run_dir.is_dir() else []
        if others and not force:
            if _looks_like_run(run_dir):
                raise ConfigError(
                    f"The folder {run_dir} holds a freqtail run whose {CONFIG_FILE} is missing; restore "
                    f"{CONFIG_FILE}, choose another --out, or pass --force to start over there."
                )
            raise ConfigError(
                f"The folder {run_dir} is not empty and holds no freqtail run; choose another --out "
                "or pass --force to write the run there anyway."
            )
        if others and _looks_like_run(run_dir):
            _remove_run_files(run_dir)
        return RunPlan("fresh")
    if force:
        _remove_run_files(run_dir)
        return RunPlan("fresh")
    stored = _stored_config(run_dir)
    differences = config_differences(stored, config) if stored is not None else ["(unreadable config.yaml)"]
    if differences:
        raise ConfigError(
            f"The folder {run_dir} holds a different run (differing keys: {', '.join(differences)}); "
            "choose another --out, or pass --force to replace it."
        )
    if not resume:
        raise ConfigError(
            f"The folder {run_dir} already holds this run; "
            "pass --resume to continue it or --force to start over."
        )
    choice = choose_resume_checkpoint(run_dir / CHECKPOINTS_DIR)
    if choice.folder is not None:
        plan = RunPlan("resume", choice.folder.name, repair_last=choice.problem is not None)
        if choice.problem is not None:
            plan.notes.append(
                f"In {run_dir}, {choice.problem}; resuming from the newest complete checkpoint "
                f"{choice.folder.name} (epoch {choice.epoch}, global step {choice.global_step})."
            )
        return plan
    evidence = _previous_run_evidence(run_dir)
    if evidence:
        raise CheckpointError(
            f"The run in {run_dir} cannot be resumed: {choice.problem} and no complete checkpoint is left, "
            f"although the folder holds a previous run ({', '.join(evidence)}); nothing was changed — "
            f"pass --force to start it over (this deletes its {METRICS_FILE} and {CHECKPOINTS_DIR}/)."
        )
    return RunPlan(
        "fresh",
        notes=[f"The run in {run_dir} stopped before its first checkpoint; starting it from the beginning."],
    )


def prepare_run_dir(run_dir: Path, config: TrainConfig, *, resume: bool, force: bool) -> str:
    """:func:`plan_run`'s mode, ``"fresh"`` or ``"resume"`` (kept for callers of earlier versions)."""
    return plan_run(run_dir, config, resume=resume, force=force).mode


# ----------------------------------------------------------------------------- stop requests
class StopRequest:
    """Turns SIGINT / SIGTERM into a polite stop: finish the step, write a checkpoint, return.

    A second Ctrl-C raises KeyboardInterrupt at once (the last epoch's checkpoint stays on disk).
    Handlers are only installed in the main thread and are restored on exit.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.requested = False
        self._log = log
        self._previous: dict[int, Any] = {}

    def request(self) -> None:
        self.requested = True

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self._log(f"{name}: stopping after this step and writing a checkpoint (Ctrl-C again aborts at once).")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# ----------------------------------------------------------------------------- the trainer
@dataclass
class _Accumulator:
    """Per-epoch sums on this rank: loss * n, correct, n, and each loss term * n.

    During an epoch the sums are float64 tensors on the training device (no host synchronisation
    per step); :meth:`as_list` reads them out. float64 keeps integer counts exact and makes a
    resumed partial epoch continue the same sums bit for bit.
    """

    loss: Any = 0.0
    correct: Any = 0.0
    count: float = 0.0
    terms: dict[str, Any] = field(default_factory=dict)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, terms: dict) -> None:
        n = int(y.shape[0])
        self.loss = self.loss + loss.detach().double() * n
        self.correct = self.correct + (logits.detach().argmax(dim=1) == y).sum().double()
        self.count += n
        for name, value in terms.items():
            self.terms[name] = self.terms.get(name, 0.0) + value.detach().double() * n

    def as_list(self, names: Sequence[str]) -> list[float]:
        return [
            float(self.loss),
            float(self.correct),
            float(self.count),
            *(float(self.terms.get(n, 0.0)) for n in names),
        ]

    @classmethod
    def from_list(cls, values: Sequence[float], names: Sequence[str]) -> _Accumulator:
        return cls(values[0], values[1], values[2], dict(zip(names, values[3:], strict=True)))

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": float(self.loss),
            "correct": float(self.correct),
            "count": float(self.count),
            "terms": {name: float(value) for name, value in self.terms.items()},
        }


#: In multi-process runs, ranks agree on a stop request (and check the loss) every this many steps.
SYNC_EVERY = 10


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


def _to_device(inputs, device: torch.device):
    if isinstance(inputs, (tuple, list)):
        return tuple(x.to(device, non_blocking=True) for x in inputs)
    return inputs.to(device, non_blocking=True)


def _log_to_stderr(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


class Trainer:
    """Builds data, model, optimiser and objective from a config and runs the epochs.

    Use :func:`train`; this class is exposed for callbacks (``on_step(trainer)``,
    ``on_epoch_end(trainer, record)``), which may call :meth:`request_stop`.
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
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.epoch = 0  # index of the epoch in progress (0-based)
        self.step_in_epoch = 0
        self.global_step = 0
        self._metrics_before: list[str] = []  # metrics.jsonl's lines when the run resumed

    # --------------------------------------------------------------- public helpers
    def request_stop(self) -> None:
        """Stop after the current optimiser step, writing a resumable checkpoint."""
        self.stop.request()

    @property
    def checkpoints_dir(self) -> Path:
        return self.run_dir / CHECKPOINTS_DIR

    # --------------------------------------------------------------- setup
    def _check_config(self) -> None:
        c, world = self.config, self.dist.world_size
        if c.batch_size % world:
            raise ConfigError(
                f"The global batch_size {c.batch_size} must be divisible by the {world} processes "
                f"(each process takes batch_size / {world})."
            )
        if c.amp != "none" and self.dist.device.type != "cuda":
            raise ConfigError(
                f"Mixed precision (amp: {c.amp}) runs on CUDA only; set amp: none on {self.dist.device}."
            )
        if c.sync_bn and self.dist.device.type != "cuda":
            raise ConfigError("sync_bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU).")

    def _build(self, *, fresh: bool) -> None:
        """Data, model, optimiser, objective and schedule; ``fresh``: the run starts at step 0 (only
        then are ``pretrained`` weights asked for: a resumed run's weights come from its checkpoint)."""
        from freqtail.data import dataset_info
        from freqtail.models import ExecutionOptions, build_model_from_spec, model_spec, prepare_model
        from freqtail.train.data import (
            EpochSampler,
            SeededItems,
            build_test_data,
            build_train_data,
            build_val_data,
            train_loader,
        )
        from freqtail.train.device_data import build_device_train_data
        from freqtail.train.objectives import Branches, build_objective
        from freqtail.train.pipeline import resolve_data_pipeline
        from freqtail.train.schedules import schedule_from_config

        c, device = self.config, self.dist.device
        self.data_pipeline = resolve_data_pipeline(c)
        if self.data_pipeline == "device":  # whole batches, made on the device
            self.train_data = base_train = self._main_first(lambda: build_device_train_data(c, device))
        else:
            base_train = self._main_first(lambda: build_train_data(c))
            self.train_data = SeededItems(base_train, c.seed)
        self.test_data = self._main_first(lambda: build_test_data(c))
        self.val_data = self._main_first(lambda: build_val_data(c))
        num_classes = base_train.num_classes
        image_size = int(base_train.image_size[0])
        normalize = c.normalize
        if normalize == "dataset":
            info = dataset_info(c.dataset)
            normalize = {"mean": list(info.mean), "std": list(info.std)}
        self.spec = model_spec(
            c.model,
            num_classes,
            image_size,
            3,
            normalize=normalize,
            bass_front=c.bass_strength if c.bass == "dataset" else None,
            options=c.model_options,
        )
        seed_everything(derive_seed(c.seed, "init"))
        if c.pretrained and fresh:  # rank 0 first: it fills the library's download cache
            build = partial(build_model_from_spec, self.spec, with_front=False, pretrained=True)
            self.model = self._main_first(build).to(device)
        else:
            self.model = build_model_from_spec(self.spec, with_front=False).to(device)
        if c.sync_bn and self.dist.distributed:
            self.model.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model.backbone)
        # self.model owns the weights (checkpoints, optimiser); self.runner runs them as the execution
        # options say: the training attack and evaluation call it, and self.forward (the training
        # forward, through DDP under torchrun, compiled after DDP as PyTorch recommends) runs it too.
        self.execution = ExecutionOptions(channels_last=c.channels_last, compile=c.compile)
        self.runner = prepare_model(self.model, self.execution)
        if self.dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.forward = prepare_model(
                self.model,
                self.execution,
                wrap=lambda model: torch.nn.parallel.DistributedDataParallel(Branches(model), device_ids=ids),
            )
        else:
            self.forward = Branches(self.runner)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=c.lr,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
            nesterov=c.nesterov,
        )
        self.scaler = torch.amp.GradScaler("cuda") if c.amp == "fp16" else None
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(c.amp)
        self.objective = build_objective(c)
        self.per_rank_batch = c.batch_size // self.dist.world_size
        self.sampler = EpochSampler(
            self.train_data,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            seed=c.seed,
            drop_last=c.drop_last,
        )
        self.loader = (
            train_loader(
                self.train_data, self.sampler, self.per_rank_batch, c, pin_memory=device.type == "cuda"
            )
            if self.data_pipeline == "loader"
            else None
        )
        per_rank = self.sampler.num_samples
        self.steps_per_epoch = (
            per_rank // self.per_rank_batch if c.drop_last else -(-per_rank // self.per_rank_batch)
        )
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"The training set has {len(self.train_data)} images, "
                f"fewer than one batch of {c.batch_size}; "
                "lower batch_size or set drop_last: false."
            )
        self.total_steps = c.steps if c.steps is not None else c.epochs * self.steps_per_epoch
        self.total_epochs = -(-self.total_steps // self.steps_per_epoch)
        self.lr_at = schedule_from_config(c, self.steps_per_epoch, self.total_steps)
        self.best_metric = self._best_metric_name()
        self.robust_indices = self._robust_indices(self.test_data, derive_seed(c.seed, "eval"))
        self.val_robust_indices = (
            self._robust_indices(self.val_data, derive_seed(c.seed, "val", 1))
            if self.val_data is not None
            else []
        )
        self.selected_on = self._selected_on()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _main_first(self, build: Callable[[], Any]) -> Any:
        """Run ``build`` on rank 0 first (it fills the dataset caches), then on the other ranks.

        A failure on rank 0 is re-raised on every rank (same class for freqtail errors), so no rank
        waits forever for a rank that has stopped.
        """
        if not self.dist.distributed:
            return build()
        result, failure = None, None
        if self.dist.is_main:
            try:
                result = build()
            except Exception as err:  # noqa: BLE001 - re-raised below, after telling the other ranks
                failure = err
        status = {"kind": type(failure).__name__, "message": str(failure)} if failure is not None else {}
        status = D.broadcast_json(status if self.dist.is_main else None, self.dist)
        if failure is not None:
            raise failure
        if status:
            import freqtail.errors as errors

            kind = getattr(errors, status["kind"], None)
            if not (isinstance(kind, type) and issubclass(kind, FreqtailError)):
                kind = FreqtailError
            raise kind(f"Rank 0 failed: {status['message']}")
        return result if self.dist.is_main else build()

    def _best_metric_name(self) -> str:
        """The record field that picks ``best``: ``test_*``, or ``val_*`` with ``selection: val``."""
        c = self.config
        if c.best_metric != "auto":
            if c.best_metric == "test_robust_acc" and not self._robust_enabled():
                raise ConfigError(
                    "best_metric test_robust_acc needs an adversarial objective and robust_eval_examples > 0."
                )
            name = c.best_metric
        else:
            name = "test_robust_acc" if self._robust_enabled() else "test_acc"
        return "val_" + name.removeprefix("test_") if c.selection == "val" else name

    def _robust_enabled(self) -> bool:
        return self.config.adversarial and self.config.robust_eval_examples > 0

    def _robust_indices(self, dataset, seed: int) -> list[int]:
        """A fixed random choice of ``robust_eval_examples`` positions of ``dataset`` (or all of them)."""
        if not self._robust_enabled():
            return []
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(dataset), generator=generator)
        return order[: self.config.robust_eval_examples].tolist()

    def _selected_on(self) -> dict[str, Any]:
        """``{"rule": "best", "split", "n", "metric"}``: the images that choose this run's ``best``."""
        val = self.config.selection == "val"
        if self.best_metric.endswith("robust_acc"):
            n = len(self.val_robust_indices if val else self.robust_indices)
        else:
            n = len(self.val_data if val else self.test_data)
        return {"rule": "best", "split": self.config.selection, "n": n, "metric": self.best_metric}

    # --------------------------------------------------------------- checkpoints
    def _checkpoint_info(
        self, *, complete: bool, improved: bool, accumulator: _Accumulator | None
    ) -> dict[str, Any]:
        return {
            "kind": "interrupted" if accumulator is not None else "epoch",
            "epoch": self.epoch,  # completed epochs
            "global_step": self.global_step,
            "complete": complete,
            "config": self.config.to_dict(),
            "model_spec": self.spec,
            "world_size": self.dist.world_size,
            "progress": {
                "epoch_in_progress": self.epoch if accumulator is not None else None,
                "step_in_epoch": self.step_in_epoch if accumulator is not None else 0,
                "accumulator": accumulator.to_json() if accumulator is not None else None,
            },
            "schedule": {
                "name": self.config.schedule,
                "global_step": self.global_step,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
                "next_lr": self.lr_at(self.global_step),
            },
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": capture_rng_state(),
            "history": self.history,
            "best": self.best,
            "selected_on": self.selected_on if improved else LAST_EPOCH,
        }

    def _save(self, *, complete: bool, improved: bool, accumulator: _Accumulator | None = None) -> None:
        if not self.dist.is_main:
            return
        pointers = ("last", "best") if improved else ("last",)
        extra = {"metric": self.best["metric"], "value": self.best["value"]} if improved else None
        save_checkpoint(
            self.checkpoints_dir,
            model_state=self.model.state_dict(),
            info=self._checkpoint_info(complete=complete, improved=improved, accumulator=accumulator),
            optimizer_state=self.optimizer.state_dict(),
            pointers=pointers,
            pointer_extra=extra,
            pointer_fields={
                "best": {"selected_on": self.selected_on},
                "last": {"selected_on": LAST_EPOCH},
            },
        )

    def _write_metrics(self) -> None:
        """Rewrite ``metrics.jsonl``: the history, then any later lines the file held when the run
        resumed from an older checkpoint (they stay until their epochs are recomputed)."""
        if self.dist.is_main:
            import json

            lines = [json.dumps(record, allow_nan=False) for record in self.history]
            lines += self._metrics_before[len(lines) :]
            atomic_write_text(self.run_dir / METRICS_FILE, "".join(line + "\n" for line in lines))

    def _restore(self, name: str) -> tuple[bool, _Accumulator | None]:
        """Load checkpoint ``name``; returns (already complete, accumulator of a partial epoch)."""
        checkpoint = load_checkpoint(self.checkpoints_dir / name)
        info = checkpoint.info
        if info.get("config") is None or config_differences(stored_config(info["config"]), self.config):
            raise CheckpointError(
                f"The last checkpoint in {self.run_dir} was written by a different config; "
                "pass --force to start over."
            )
        try:
            self.model.load_state_dict(checkpoint.model_state)
        except RuntimeError as err:
            raise CheckpointError(f"The last checkpoint does not fit the model ({err}).") from None
        optimizer_state = checkpoint.optimizer_state()
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            _state_in_parameter_layout(self.optimizer)
        if self.scaler is not None and info.get("grad_scaler"):
            self.scaler.load_state_dict(info["grad_scaler"])
        self.history = list(info.get("history") or [])
        self.best = info.get("best")
        self.global_step = int(info["global_step"])
        progress = info.get("progress") or {}
        if progress.get("epoch_in_progress") is not None:
            self.epoch = int(progress["epoch_in_progress"])
            self.step_in_epoch = int(progress["step_in_epoch"])
            saved = progress["accumulator"]
            accumulator = _Accumulator(saved["loss"], saved["correct"], saved["count"], dict(saved["terms"]))
            if not self.dist.is_main:  # rank 0 carries the reduced sums of the partial epoch
                accumulator = _Accumulator(terms={k: 0.0 for k in accumulator.terms})
            restore_rng_state(info["rng"])
        else:
            self.epoch = int(info["epoch"])
            self.step_in_epoch = 0
            accumulator = None
        return bool(info.get("complete")), accumulator

    # --------------------------------------------------------------- evaluation
    def _measure(self, dataset, robust_indices: list[int], attack, attack_seeds: Callable[[int], int]):
        """``[correct, total, robust correct, robust total]`` over ``dataset``, summed over ranks.

        Clean accuracy on every image (this rank's shard); ``attack`` (a ``PGDConfig``) robust
        accuracy on ``robust_indices`` in chunks of ``eval_batch_size`` (chunk ``k`` on rank
        ``k mod world``, attack seed ``attack_seeds(k)``).
        """
        from freqtail.attacks import robust_accuracy
        from freqtail.train.data import ShardSampler

        c, device = self.config, self.dist.device
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=c.eval_batch_size,
            sampler=ShardSampler(len(dataset), self.dist.rank, self.dist.world_size),
            num_workers=c.num_workers,
        )
        correct = total = 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                correct += int((self.runner(x).argmax(dim=1) == y).sum())
                total += int(y.shape[0])
        robust_correct = robust_total = 0
        chunks = [
            robust_indices[i : i + c.eval_batch_size]
            for i in range(0, len(robust_indices), c.eval_batch_size)
        ]
        for number, chunk in enumerate(chunks):
            if number % self.dist.world_size != self.dist.rank:
                continue
            items = [dataset[i] for i in chunk]
            x = torch.stack([item[0] for item in items])
            y = torch.tensor([item[1] for item in items])
            ok, n = robust_accuracy(
                self.runner, (x, y), attack, batch_size=len(chunk), generator=attack_seeds(number)
            )
            robust_correct += ok
            robust_total += n
        return D.all_reduce_sum([correct, total, robust_correct, robust_total], self.dist)

    def _evaluate(self) -> dict[str, Any]:
        """Test metrics (``test_acc``, ...) and, with ``selection: val``, held-out ones (``val_acc``, ...)."""
        from freqtail.attacks import PGDConfig

        c = self.config
        D.broadcast_module_state(self.model, self.dist)
        self.runner.eval()
        seed = c.seed
        attack = PGDConfig(eps=c.eps_value, step_size=c.step_size_value, steps=c.robust_eval_steps)
        correct, total, robust_correct, robust_total = self._measure(
            self.test_data, self.robust_indices, attack, lambda number: derive_seed(seed, "eval", number)
        )
        result: dict[str, Any] = {"test_acc": correct / total, "test_images": int(total)}
        if self.robust_indices:
            result["test_robust_acc"] = robust_correct / robust_total
            result["robust_examples"] = int(robust_total)
            result["robust_attack"] = (
                f"{attack.name} eps={c.eps} step={c.step_size} "
                f"on {len(self.robust_indices)} fixed test images"
            )
        if self.val_data is not None:
            correct, total, robust_correct, robust_total = self._measure(
                self.val_data,
                self.val_robust_indices,
                attack,
                lambda number: derive_seed(seed, "val", 2, number),
            )
            result.update(val_acc=correct / total, val_images=int(total))
            if self.val_robust_indices:
                result.update(
                    val_robust_acc=robust_correct / robust_total, val_robust_examples=int(robust_total)
                )
        self.runner.train()
        return result

    # --------------------------------------------------------------- the loop
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    def _train_step(self, inputs, y, seeds, accumulator: _Accumulator) -> float:
        lr = self.lr_at(self.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs = _to_device(inputs, self.dist.device)
        y = y.to(self.dist.device, non_blocking=True)
        with self._autocast():
            out = self.objective(self.forward, self.runner, inputs, y, seeds)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(out.loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            out.loss.backward()
            self.optimizer.step()
        accumulator.add(out.loss, out.logits, y, out.terms)
        return lr

    def _check_finite(self, accumulator: _Accumulator) -> None:
        if not math.isfinite(float(accumulator.loss)):
            raise FreqtailError(
                f"The training loss became {float(accumulator.loss)} by step {self.global_step}; lower the "
                "learning rate or check the data (the last epoch's checkpoint is kept)."
            )

    def _epoch_batches(self, skip_batches: int) -> Iterator:
        """The epoch in progress as ``(inputs, labels, attack-start seeds)`` after ``skip_batches``."""
        self.sampler.set_epoch(self.epoch, skip_batches * self.per_rank_batch)
        if self.loader is None:
            return self.train_data.batches(self.sampler, self.per_rank_batch, self.config.drop_last)
        return iter(self.loader)

    def _lock_run_dir(self):
        """Create the run folder and take its :data:`TRAIN_LOCK` (one attempt)."""
        from freqtail.io import check_writable_folder
        from freqtail.locks import try_lock

        check_writable_folder(self.run_dir, "run folder")
        where = str(self.run_dir).replace("{", "{{").replace("}", "}}")
        return try_lock(
            self.run_dir / TRAIN_LOCK,
            purpose="training",
            refusal=f"The run folder {where} is being trained by {{holder}}; "
            "wait for it or choose another --out.",
        )

    def _decide(self, resume: bool, force: bool) -> tuple[Any, dict[str, Any]]:
        """Rank 0 locks the folder and plans the run; every rank gets the plan or rank 0's error.

        Returns ``(lock or None, decision)``; raises the same error class on every rank, so no rank
        is left waiting in a collective for a rank 0 that has stopped.
        """
        lock, failure, decision = None, None, {}
        if self.dist.is_main:
            try:
                lock = self._lock_run_dir()
                plan = plan_run(self.run_dir, self.config, resume=resume, force=force)
                notes = ([lock.stale_message()] if lock.stale is not None else []) + plan.notes
                decision = {
                    "mode": plan.mode,
                    "checkpoint": plan.checkpoint,
                    "notes": notes,
                    "repair_last": plan.repair_last,
                }
            except BaseException as err:  # re-raised below, after telling the other ranks
                if lock is not None:
                    lock.release()
                    lock = None
                if not isinstance(err, Exception):  # Ctrl-C before training: the command exits 130
                    raise
                failure = err
                if isinstance(err, FreqtailError):
                    decision = {"error": str(err), "kind": type(err).__name__}
                else:
                    decision = {
                        "error": f"Rank 0 failed: {type(err).__name__}: {err}",
                        "kind": "FreqtailError",
                    }
        decision = D.broadcast_json(decision, self.dist)
        if failure is not None:
            raise failure
        if "error" in decision:
            import freqtail.errors as errors

            kind = getattr(errors, decision["kind"], None)
            if not (isinstance(kind, type) and issubclass(kind, FreqtailError)):
                kind = FreqtailError
            raise kind(decision["error"])
        return lock, decision

    def run(self, *, resume: bool, force: bool) -> TrainResult:
        self._check_config()
        lock, decision = self._decide(resume, force)
        try:
            for note in decision["notes"]:
                self.log(note)
            return self._run(decision)
        finally:
            if lock is not None:
                lock.release()

    def _run(self, decision: dict[str, Any]) -> TrainResult:
        self._build(fresh=decision["mode"] == "fresh")
        accumulator: _Accumulator | None = None
        if decision["mode"] == "resume":
            complete, accumulator = self._restore(decision["checkpoint"])
            if self.dist.is_main:
                if decision["repair_last"]:
                    point_last_at(self.checkpoints_dir, self.checkpoints_dir / decision["checkpoint"])
                self._metrics_before = _metrics_lines(self.run_dir)
                if len(self._metrics_before) > len(self.history):
                    self.log(
                        f"{self.run_dir / METRICS_FILE} holds {len(self._metrics_before)} epoch records, the "
                        f"checkpoint {len(self.history)}; the later records stay until their epochs are "
                        "trained again."
                    )
            if complete:
                self.log(
                    f"The run in {self.run_dir} is already complete ({self.epoch} epochs); nothing to do."
                )
                return TrainResult(
                    self.run_dir, "already-complete", self.epoch, self.global_step, self.history, self.best
                )
            where = (
                f"epoch {self.epoch + 1}, step {self.step_in_epoch}"
                if accumulator
                else f"epoch {self.epoch + 1}"
            )
            self.log(f"Resuming {self.run_dir} at {where} (global step {self.global_step}).")
        elif self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / CONFIG_FILE, config_to_yaml(self.config))
            atomic_write_text(self.run_dir / METRICS_FILE, "")
        D.barrier(self.dist)
        with self.stop:
            return self._loop(accumulator)

    def _loop(self, accumulator: _Accumulator | None) -> TrainResult:
        from tqdm.auto import tqdm

        c = self.config
        term_names: list[str] = []
        while self.global_step < self.total_steps:
            resumed_mid_epoch = accumulator is not None
            if not resumed_mid_epoch:
                accumulator = _Accumulator()
                torch.manual_seed(derive_seed(c.seed, "epoch", self.epoch, self.dist.rank))
            steps_this_epoch = min(self.steps_per_epoch, self.total_steps - self.epoch * self.steps_per_epoch)
            self.runner.train()
            started = time.perf_counter()
            images_now = 0
            lr = self.lr_at(self.global_step)
            bar = tqdm(
                total=steps_this_epoch,
                initial=self.step_in_epoch,
                desc=f"epoch {self.epoch + 1}/{self.total_epochs}",
                unit="step",
                disable=not (c.progress and self.dist.is_main),
                leave=False,
                dynamic_ncols=True,
            )
            stopped = False
            for inputs, y, seeds in self._epoch_batches(self.step_in_epoch):
                if self.step_in_epoch >= steps_this_epoch:
                    break
                lr = self._train_step(inputs, y, seeds, accumulator)
                self.global_step += 1
                self.step_in_epoch += 1
                images_now += int(y.shape[0]) * self.dist.world_size
                bar.update(1)
                sync_now = (
                    not self.dist.distributed
                    or self.step_in_epoch % SYNC_EVERY == 0
                    or self.step_in_epoch == steps_this_epoch
                )
                if self.step_in_epoch % SYNC_EVERY == 0 or self.step_in_epoch == steps_this_epoch:
                    self._check_finite(accumulator)
                    if self.dist.is_main:
                        elapsed = max(time.perf_counter() - started, 1e-9)
                        bar.set_postfix(
                            loss=f"{float(accumulator.loss) / accumulator.count:.3f}",
                            acc=f"{float(accumulator.correct) / accumulator.count:.3f}",
                            img_s=f"{images_now / elapsed:.0f}",
                        )
                for callback in self.callbacks:
                    if hasattr(callback, "on_step"):
                        callback.on_step(self)
                if sync_now and self.step_in_epoch < steps_this_epoch:
                    if D.any_rank(self.stop.requested, self.dist):
                        stopped = True
                        break
            bar.close()
            train_time = time.perf_counter() - started
            term_names = sorted(accumulator.terms)
            if stopped:
                reduced = _Accumulator.from_list(
                    D.all_reduce_sum(accumulator.as_list(term_names), self.dist), term_names
                )
                self._save(complete=False, improved=False, accumulator=reduced)
                self.log(
                    f"Stopped at epoch {self.epoch + 1}, step {self.step_in_epoch} of {steps_this_epoch}; "
                    f"checkpoint written to {self.checkpoints_dir}; continue with --resume."
                )
                return TrainResult(
                    self.run_dir, "interrupted", self.epoch, self.global_step, self.history, self.best
                )
            record = self._finish_epoch(accumulator, term_names, lr, train_time, images_now, started)
            accumulator = None
            for callback in self.callbacks:
                if hasattr(callback, "on_epoch_end"):
                    callback.on_epoch_end(self, record)
            if D.any_rank(self.stop.requested, self.dist) and self.global_step < self.total_steps:
                self.log(f"Stopped after epoch {self.epoch}; continue with --resume.")
                return TrainResult(
                    self.run_dir, "interrupted", self.epoch, self.global_step, self.history, self.best
                )
        return TrainResult(self.run_dir, "complete", self.epoch, self.global_step, self.history, self.best)

    def _finish_epoch(self, accumulator, term_names, lr, train_time, images_now, started) -> dict[str, Any]:
        c = self.config
        totals = _Accumulator.from_list(
            D.all_reduce_sum(accumulator.as_list(term_names), self.dist), term_names
        )
        last_epoch = self.global_step >= self.total_steps
        evaluate = last_epoch or (self.epoch + 1) % c.eval_every == 0
        eval_started = time.perf_counter()
        evaluation = self._evaluate() if evaluate else {}
        eval_time = time.perf_counter() - eval_started
        record: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "global_step": self.global_step,
            "lr": lr,
            "train_loss": totals.loss / totals.count,
            "train_acc": totals.correct / totals.count,
            "train_terms": {name: totals.terms[name] / totals.count for name in term_names},
            "train_images": int(totals.count),
            "test_acc": evaluation.get("test_acc"),
            "test_images": evaluation.get("test_images"),
            "test_data": "bass-dataset" if c.bass == "dataset" else "original",
        }
        if self._robust_enabled():
            record["test_robust_acc"] = evaluation.get("test_robust_acc")
            record["robust_examples"] = evaluation.get("robust_examples")
            record["robust_attack"] = evaluation.get("robust_attack")
        if self.val_data is not None:
            record["val_acc"] = evaluation.get("val_acc")
            record["val_images"] = evaluation.get("val_images")
            if self._robust_enabled():
                record["val_robust_acc"] = evaluation.get("val_robust_acc")
                record["val_robust_examples"] = evaluation.get("val_robust_examples")
        improved = False
        value = record.get(self.best_metric)
        if value is not None and (self.best is None or value > self.best["value"]):
            self.best = {"metric": self.best_metric, "value": value, "epoch": self.epoch + 1}
            improved = True
        record.update(
            best=improved,
            train_time=round(train_time, 3),
            eval_time=round(eval_time, 3),
            epoch_time=round(time.perf_counter() - started, 3),
            images_per_second=round(images_now / max(train_time, 1e-9), 1),
        )
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self._save(complete=last_epoch, improved=improved)
        self._write_metrics()
        self.log(_epoch_line(record, self.total_epochs))
        return record


#: Keys of a metrics record that measure time, not what was computed (they differ between runs).
TIMING_KEYS = ("train_time", "eval_time", "epoch_time", "images_per_second")


def _epoch_line(record: dict[str, Any], total_epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{total_epochs}", f"loss {record['train_loss']:.4f}"]
    parts.append(f"train acc {100 * record['train_acc']:.1f}%")
    if record.get("test_acc") is not None:
        parts.append(f"test acc {100 * record['test_acc']:.1f}%")
    if record.get("test_robust_acc") is not None:
        parts.append(f"robust acc {100 * record['test_robust_acc']:.1f}%")
    parts.append(f"lr {record['lr']:.4g}")
    parts.append(f"{record['epoch_time']:.1f} s")
    parts.append(f"{record['images_per_second']:.0f} img/s")
    return ", ".join(parts) + (" (best)" if record["best"] else "")


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train a model as ``config`` says, in ``run_dir`` (see the module docstring for the folder).

    Args:
        config: a validated :class:`TrainConfig` (:func:`freqtail.train.load_config`).
        run_dir: the run folder; refused if it holds another run (unless ``force``).
        resume: continue the run in ``run_dir`` from its last checkpoint (same config required;
            runtime keys ``num_workers``, ``progress``, ``device`` may differ).
        force: replace the run in ``run_dir``.
        log: where one-line messages go on rank 0 (default: stderr, above the progress bar).
        callbacks: objects with optional ``on_step(trainer)`` / ``on_epoch_end(trainer, record)``.

    Under ``torchrun`` every process calls this; rank 0 holds the folder's :data:`TRAIN_LOCK` and
    writes the folder.

    Raises:
        LockedError: another training process holds ``run_dir`` (the message names it).
        ConfigError: the folder holds another run, or the config is invalid.
        CheckpointError: ``resume`` finds no complete checkpoint but a previous run's records
            (see :func:`plan_run`), or a checkpoint that does not fit.
    """
    joined_here = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    if resume:  # continue with the data pipeline the run was trained with
        config = adopt_stored_data_pipeline(config, _stored_config(Path(run_dir)))
    info = D.init_distributed(config.device)
    try:
        return Trainer(config, run_dir, info, log=log, callbacks=callbacks).run(resume=resume, force=force)
    finally:
        if joined_here:
            D.shutdown(info)


__all__ = [
    "RUNTIME_KEYS",
    "TIMING_KEYS",
    "TRAIN_LOCK",
    "RunPlan",
    "TrainResult",
    "Trainer",
    "plan_run",
    "prepare_run_dir",
    "train",
]
