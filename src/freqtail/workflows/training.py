"""Training a run folder as a whole: lock it, decide how to use it, train, release it.

A run lives in one folder (names in :mod:`freqtail.runs.layout`):
``runs/NAME/{config.yaml, metrics.jsonl, checkpoints/}`` (what the trainer writes there:
:mod:`freqtail.train.trainer`).

One run folder, one trainer: rank 0 holds an exclusive lock on ``RUN/.freqtail-train.lock``
(:data:`freqtail.runs.layout.TRAIN_LOCK`, :mod:`freqtail.locks`) from before it looks at the folder
until training returns; a second trainer is refused with one sentence naming the holder (on every
rank), and the lock of a killed trainer is taken over and reported. A run folder's work is never
lost without ``force``: ``metrics.jsonl`` is only rewritten with at least as many lines as it had,
checkpoints are only removed by rotation (:func:`freqtail.train.checkpoint.save_checkpoint`), and a
damaged ``last.json`` makes ``resume`` continue from the newest complete checkpoint, saying so, or
refuse.

A run folder may come from someone else: a path in it that training reads or writes and that leads
out of it (a ``checkpoints/`` linked to another run, a linked lock file or config) is refused before
anything is locked, read or removed (:func:`check_run_folder_contained`).

>>> from freqtail.train import load_config
>>> from freqtail.workflows.training import TrainRequest, train_run
>>> result = train_run(TrainRequest(load_config(overrides=["epochs=2"]), "runs/demo"))
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freqtail import distributed as D
from freqtail.errors import CheckpointError, ConfigError, InputError
from freqtail.io import check_writable_folder
from freqtail.locks import Lock, try_lock
from freqtail.runs.containment import inside, tree_inside
from freqtail.runs.layout import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    TRAIN_LOCK,
    RunLayout,
)
from freqtail.train.build import check_execution
from freqtail.train.checkpoint import choose_resume_checkpoint
from freqtail.train.checkpointing import metrics_lines, sweep_interrupted_writes
from freqtail.train.config import (
    TrainConfig,
    adopt_stored_data_pipeline,
    config_differences,
    read_config_file,
    stored_config,
)
from freqtail.train.trainer import Trainer, TrainResult, TrainStart
from freqtail.workflows.results_store import ResultsStore

# TRAIN_LOCK is the lock file a training process holds in its run folder (its holder record:
# TRAIN_LOCK + ".json"); neither counts as content of the folder.
_LOCK_FILES = (TRAIN_LOCK, TRAIN_LOCK + ".json")


@dataclass(frozen=True)
class TrainRequest:
    """One training run to do, every value checked here.

    Attributes:
        config: a validated :class:`~freqtail.train.config.TrainConfig`
            (:func:`freqtail.train.load_config`); its ``device`` and ``progress`` keys say where the
            run trains and whether a progress bar is shown.
        run_dir: the run folder; refused if it holds another run (unless ``force``).
        resume: continue the run in ``run_dir`` from its last checkpoint (same config required;
            runtime keys such as ``num_workers``, ``progress``, ``device``, ``log`` may differ).
        force: replace the run in ``run_dir``.
        log: where one-line messages go on rank 0 (default: stderr, above the progress bar).
        callbacks: objects with optional ``on_step(trainer)`` / ``on_epoch_end(trainer, record)``.
    """

    config: TrainConfig
    run_dir: Path
    resume: bool = False
    force: bool = False
    log: Callable[[str], None] | None = None
    callbacks: Sequence[Any] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrainConfig):
            raise ConfigError(
                "A training run needs a TrainConfig (freqtail.train.load_config), "
                f"not {type(self.config).__name__}."
            )
        for name in ("resume", "force"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"The training option {name} must be true or false, not {getattr(self, name)!r}."
                )
        if self.log is not None and not callable(self.log):
            raise ConfigError("The training log must be a function of one message (or None for stderr).")
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "callbacks", tuple(self.callbacks))


@dataclass(frozen=True)
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
    notes: tuple[str, ...] = ()
    repair_last: bool = False

    @property
    def start(self) -> TrainStart:
        """The decision the trainer is handed."""
        return TrainStart(self.mode, self.checkpoint, self.repair_last)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunPlan:
        return cls(data["mode"], data["checkpoint"], tuple(data["notes"]), bool(data["repair_last"]))


# ----------------------------------------------------------------------------- the folder's rules
def _stored_config(run_dir: Path) -> TrainConfig | None:
    try:
        path = inside(run_dir, CONFIG_FILE, "The run's config", error=ConfigError)
        return stored_config(read_config_file(path), where=f"{path}")
    except ConfigError:
        return None


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
    (run_dir / CONFIG_FILE).unlink(missing_ok=True)
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    for name in (CHECKPOINTS_DIR, TENSORBOARD_DIR):  # tensorboard/: the replaced run's event files
        folder = run_dir / name
        if folder.is_symlink():  # one staying inside the run (checked): the link goes, not its target
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)


def check_run_folder_contained(run_dir: Path) -> None:
    """Refuse a run folder where a path training reads or writes leads out of it.

    Checked (:func:`freqtail.runs.containment.inside`): ``config.yaml``, ``metrics.jsonl``, the lock
    files, and ``checkpoints/`` and ``tensorboard/`` with everything under them, so that a link to
    another run is never trained into, rotated or deleted — also not with ``force``.

    Raises:
        ConfigError: one sentence naming the path and where it points.
    """
    if not run_dir.is_dir():
        return
    for name in (CONFIG_FILE, METRICS_FILE, *_LOCK_FILES):
        inside(run_dir, name, "The path", error=ConfigError)
    for name in (CHECKPOINTS_DIR, TENSORBOARD_DIR):
        tree_inside(run_dir, name, "The path", error=ConfigError)


def _previous_run_evidence(run_dir: Path) -> list[str]:
    """What in ``run_dir`` would be lost by starting the run over (phrases; empty: nothing)."""
    evidence = []
    lines = len(metrics_lines(run_dir))
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


def _plan_without_config(run_dir: Path, force: bool) -> RunPlan:
    """A folder without ``config.yaml``: new or empty (fresh), or refused unless ``force``."""
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


def _plan_resume(run_dir: Path) -> RunPlan:
    """Continue the run in ``run_dir`` from ``last`` or the newest complete checkpoint."""
    choice = choose_resume_checkpoint(run_dir / CHECKPOINTS_DIR)
    if choice.folder is not None:
        notes = ()
        if choice.problem is not None:
            notes = (
                f"In {run_dir}, {choice.problem}; resuming from the newest complete checkpoint "
                f"{choice.folder.name} (epoch {choice.epoch}, global step {choice.global_step}).",
            )
        return RunPlan("resume", choice.folder.name, notes, repair_last=choice.problem is not None)
    evidence = _previous_run_evidence(run_dir)
    if evidence:
        raise CheckpointError(
            f"The run in {run_dir} cannot be resumed: {choice.problem} and no complete checkpoint is left, "
            f"although the folder holds a previous run ({', '.join(evidence)}); nothing was changed — "
            f"pass --force to start it over (this deletes its {METRICS_FILE} and {CHECKPOINTS_DIR}/)."
        )
    return RunPlan(
        "fresh",
        notes=(f"The run in {run_dir} stopped before its first checkpoint; starting it from the beginning.",),
    )


def plan_run(run_dir: Path, config: TrainConfig, *, resume: bool, force: bool) -> RunPlan:
    """Decide how to use ``run_dir`` (call it holding the folder's :data:`TRAIN_LOCK`).

    Rules: an empty or new folder starts fresh (the lock files do not count); a folder holding a run
    is never overwritten without ``force`` (which removes only freqtail's files there: config.yaml,
    metrics.jsonl, checkpoints/, tensorboard/); ``resume`` continues a run with the same config
    (runtime keys such as num_workers may differ) from ``last``, or — when ``last.json`` is missing
    or damaged — from the newest complete checkpoint, with a note saying so. With no complete
    checkpoint left, ``resume`` starts over only if nothing would be lost (no metrics record, no
    checkpoint folder or pointer) and refuses otherwise.

    Raises:
        ConfigError: the folder holds a different run, the same run without ``resume``, or other files.
        CheckpointError: ``resume`` finds no complete checkpoint but a previous run's records.
    """
    if not (run_dir / CONFIG_FILE).exists():
        return _plan_without_config(run_dir, force)
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
    return _plan_resume(run_dir)


# ----------------------------------------------------------------------------- the lock and the run
def _lock_run_dir(run_dir: Path) -> Lock:
    """Create the run folder and take its :data:`TRAIN_LOCK` (one attempt)."""
    check_writable_folder(run_dir, "run folder")
    where = str(run_dir).replace("{", "{{").replace("}", "}}")
    return try_lock(
        run_dir / TRAIN_LOCK,
        purpose="training",
        refusal=f"The run folder {where} is being trained by {{holder}}; "
        "wait for it or choose another --out.",
    )


def _decide(
    request: TrainRequest, config: TrainConfig, context: D.DistContext
) -> tuple[Lock | None, RunPlan]:
    """Rank 0 locks the folder and plans the run; every rank gets the plan or raises rank 0's error.

    Returns ``(the lock on rank 0, else None; the plan)``; a failure releases the lock.
    """
    held: list[Lock] = []

    def lock_and_plan() -> dict[str, Any]:
        check_run_folder_contained(request.run_dir)  # before the lock: its file must not lead out
        held.append(_lock_run_dir(request.run_dir))
        swept = sweep_interrupted_writes(request.run_dir) if request.run_dir.is_dir() else []
        plan = plan_run(request.run_dir, config, resume=request.resume, force=request.force)
        stale = (held[0].stale_message(),) if held[0].stale is not None else ()
        if swept:
            names = ", ".join(path.name for path in swept[:3]) + (", ..." if len(swept) > 3 else "")
            stale += (f"Removed {len(swept)} unfinished file(s) a killed write left ({names}).",)
        return dataclasses.replace(plan, notes=stale + plan.notes).to_json()

    try:
        decision = D.run_on_main_and_share(lock_and_plan, context)
    except BaseException:  # Ctrl-C included: the lock must not outlive the decision
        for lock in held:
            lock.release()
        raise
    return (held[0] if held else None), RunPlan.from_json(decision)


def _refresh_results_markdown(run_dir: Path, log: Callable[[str], None]) -> None:
    """Rewrite the run's ``results.md``, if it has one, so that numbers measured on a checkpoint this
    training replaced read as stale (:mod:`freqtail.train.staleness`)."""
    try:
        ResultsStore(RunLayout.of(run_dir)).refresh_markdown()
    except (InputError, OSError) as err:  # training's own outcome stands; say why the file is old
        log(f"results.md was not refreshed: {err}")


def train_run(request: TrainRequest) -> TrainResult:
    """Train ``request.config`` in ``request.run_dir`` (see the module docstring for the folder).

    Under ``torchrun`` every process calls this; rank 0 holds the folder's :data:`TRAIN_LOCK` and
    writes the folder; the process group is joined here (and left again) unless the caller did.

    Raises:
        LockedError: another training process holds the run folder (the message names it).
        ConfigError: the folder holds another run, or the config cannot run here.
        CheckpointError: ``resume`` finds no complete checkpoint but a previous run's records
            (see :func:`plan_run`), or a checkpoint that does not fit.
    """
    config = request.config
    if request.resume:  # continue with the data pipeline the run was trained with
        config = adopt_stored_data_pipeline(config, _stored_config(request.run_dir))
    with D.process_group(config.device) as context:
        check_execution(config, context)
        trainer = Trainer(config, request.run_dir, context, log=request.log, callbacks=request.callbacks)
        lock, plan = _decide(request, config, context)
        try:
            for note in plan.notes:
                trainer.log(note)
            try:
                return trainer.run(plan.start)
            finally:
                if lock is not None:
                    _refresh_results_markdown(request.run_dir, trainer.log)
        finally:
            if lock is not None:
                lock.release()


__all__ = ["RunPlan", "TrainRequest", "plan_run", "train_run"]
