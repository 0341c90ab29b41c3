"""Checkpoints: safetensors weights + JSON, written atomically, never pickled, validated on load.

Layout of a run folder's ``checkpoints/``::

    checkpoints/
      step-00001234/             one checkpoint (a folder, complete or absent)
        model.safetensors        the model's state dict (FreqtailModel keys "backbone.*"); its
                                 safetensors metadata repeats the model spec, so the file alone
                                 is enough to rebuild the model
        optimizer.safetensors    the optimiser state's tensors (momentum buffers)
        checkpoint.json          everything else: format, freqtail version, full config, model
                                 spec, epoch / step, optimiser param groups, schedule, GradScaler,
                                 RNG states, metrics history, best-so-far, selected_on, SHA-256 of
                                 both files
      last.json                  pointer {"checkpoint": "step-00001234", ...}: the latest
      best.json                  pointer to the best checkpoint by the run's best metric

``selected_on`` says which images chose a checkpoint. In ``checkpoint.json`` and ``best.json`` of a
checkpoint written as the new best: ``{"rule": "best", "split": "test" | "val", "n": <images>,
"metric": <record field, e.g. "val_robust_acc">}`` (``n`` counts the images of that metric: the
robust-evaluation subset for a robust metric). A checkpoint written without improving the best (and
``last.json`` always) holds :data:`LAST_EPOCH`: the last epoch (or an interrupted step), not a
selection. Checkpoints of older freqtail versions have no ``selected_on`` (their ``best`` was chosen
on test images).

A checkpoint folder is written under a temporary name and renamed into place when complete; the
pointers are then replaced atomically (:mod:`freqtail.io`) and the folders the pointers named before
and name no longer are removed (rotation; a folder no pointer ever named — a damaged one, one left
by a deleted pointer — is left alone, and nothing is removed while a pointer cannot be read). A crash
at any moment leaves ``last.json`` naming a complete checkpoint. ``best`` and ``last`` share one
folder when they are the same step.

Resuming after damage (:func:`choose_resume_checkpoint`): when ``last.json`` is missing, empty, not
valid JSON, or names a missing or incomplete folder, the newest complete checkpoint (by global step;
files present with their recorded sizes and SHA-256) is used instead, and the caller says so.

Loading (:func:`load_checkpoint`; ``freqtail.workflows.load_model_from_run`` for whole runs and
bare weights) accepts a run folder, a
``checkpoints/`` folder, a checkpoint folder, a pointer or ``checkpoint.json`` file, a
``model.safetensors`` file, or — given the architecture (``spec=``) — a foreign state dict in
``.safetensors`` or ``.pt``/``.pth`` (read with ``torch.load(weights_only=True)``: tensors only, no
code runs). Every problem is a :class:`CheckpointError` with one sentence.

A run folder may come from someone else, so nothing it names may lead out of it
(:func:`freqtail.runs.containment.inside`): its ``checkpoints/`` folder, a pointer, the checkpoint a
pointer names (``../``, an absolute name, a link) and the files of a checkpoint are refused, naming the
path and where it points, when they resolve outside the folder that holds them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from freqtail import __version__
from freqtail.errors import CheckpointError, ConfigError
from freqtail.io import atomic_write_json
from freqtail.models import build_model_from_spec
from freqtail.runs.containment import inside
from freqtail.runs.existence import check_run_path
from freqtail.runs.layout import RunLayout

CHECKPOINT_FORMAT = "freqtail-checkpoint"
CHECKPOINT_VERSION = 1
POINTER_FORMAT = "freqtail-checkpoint-pointer"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
INFO_FILE = "checkpoint.json"
WHICH = ("best", "last")
_STEP_DIR = re.compile(r"^step-\d+(-\d+)?$")
#: ``selected_on`` of a checkpoint that no selection chose: the last epoch (or an interrupted step).
LAST_EPOCH = {"rule": "last-epoch", "split": None, "n": None, "metric": None}


# ----------------------------------------------------------------------------- tensors <-> files
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _cpu_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Independent contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}


def _write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> None:

    data = save(_cpu_tensors(tensors), metadata=metadata)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:

    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            for name in handle.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                tensors[name] = handle.get_tensor(name)
    except FileNotFoundError:
        raise CheckpointError(f"The {what} file {path} is missing.") from None
    except Exception as err:  # safetensors raises its own error types for bad headers / sizes
        raise CheckpointError(
            f"The {what} file {path} is corrupt or truncated (safetensors could not read it: {err})."
        ) from None
    return tensors, metadata


def optimizer_state_to_parts(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a torch optimiser ``state_dict()`` into safetensors tensors and a JSON-ready rest.

    Tensor entries of ``state[param_id]`` become ``"state.<param_id>.<name>"`` tensors; every other
    value (param groups, step counters stored as numbers) stays in the JSON part.
    """
    tensors: dict[str, torch.Tensor] = {}
    state_json: dict[str, dict[str, Any]] = {}
    for param_id, entries in state_dict.get("state", {}).items():
        record = {}
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                key = f"state.{param_id}.{name}"
                tensors[key] = value
                record[name] = {"tensor": key}
            else:
                record[name] = {"value": value}
        state_json[str(param_id)] = record
    rest = {"state": state_json, "param_groups": state_dict.get("param_groups", [])}
    try:
        json.dumps(rest, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"The optimiser state cannot be stored as JSON ({err}).") from None
    return tensors, rest


def optimizer_state_from_parts(
    rest: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_parts`: a ``state_dict`` for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for param_id, record in rest.get("state", {}).items():
        entries = {}
        for name, value in record.items():
            if "tensor" in value:
                if value["tensor"] not in tensors:
                    raise CheckpointError(f"The optimiser state lacks the tensor {value['tensor']!r}.")
                entries[name] = tensors[value["tensor"]]
            else:
                entries[name] = value["value"]
        state[int(param_id)] = entries
    return {"state": state, "param_groups": [dict(g) for g in rest.get("param_groups", [])]}


# ----------------------------------------------------------------------------- saving
def _pointer_path(checkpoints_dir: Path, which: str) -> Path:
    return checkpoints_dir / f"{which}.json"


def read_pointer(checkpoints_dir: Path, which: str) -> dict[str, Any] | None:
    """The ``last``/``best`` pointer of a ``checkpoints/`` folder, or None when there is none.

    Raises:
        CheckpointError: the pointer is not a pointer, or is a link leading out of the folder.
    """
    root = Path(checkpoints_dir)
    path = inside(root, _pointer_path(root, which).name, f"The {which} pointer", error=CheckpointError)
    if not path.exists():
        return None
    pointer = _read_json(path, "checkpoint pointer")
    if pointer.get("format") != POINTER_FORMAT or not isinstance(pointer.get("checkpoint"), str):
        raise CheckpointError(f"The file {path} is not a freqtail checkpoint pointer.")
    return pointer


def save_checkpoint(
    checkpoints_dir: str | os.PathLike,
    *,
    model_state: Mapping[str, torch.Tensor],
    info: Mapping[str, Any],
    optimizer_state: Mapping[str, Any] | None = None,
    pointers: tuple[str, ...] = ("last",),
    pointer_extra: Mapping[str, Any] | None = None,
    pointer_fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write one checkpoint folder atomically, point ``pointers`` at it and prune unreferenced ones.

    Args:
        checkpoints_dir: the run's ``checkpoints/`` folder (created if needed).
        model_state: the model's ``state_dict()`` (any device; copied to CPU).
        info: JSON-ready contents of ``checkpoint.json`` (must hold ``global_step`` and ``model_spec``);
            the format, version, freqtail version, time and file digests are added here.
        optimizer_state: an optimiser ``state_dict()`` or None.
        pointers: which of ``"last"``/``"best"`` to point at the new checkpoint.
        pointer_extra: JSON-ready values copied into the pointers (e.g. the best metric).
        pointer_fields: JSON-ready values for one pointer only, ``{"best": {...}, "last": {...}}``
            (e.g. ``selected_on``); entries for pointers not written are ignored.

    Returns:
        the checkpoint folder.
    """
    root = Path(checkpoints_dir)
    root.mkdir(parents=True, exist_ok=True)
    step = int(info["global_step"])
    name = f"step-{step:08d}"
    suffix = 0
    while (root / name).exists():
        suffix += 1
        name = f"step-{step:08d}-{suffix}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        spec_text = json.dumps(info["model_spec"], allow_nan=False)
        _write_safetensors(
            tmp / MODEL_FILE,
            model_state,
            {"format": CHECKPOINT_FORMAT, "version": str(CHECKPOINT_VERSION), "model_spec": spec_text},
        )
        files = {MODEL_FILE: None}
        optimizer_json = None
        if optimizer_state is not None:
            tensors, optimizer_json = optimizer_state_to_parts(optimizer_state)
            _write_safetensors(tmp / OPTIMIZER_FILE, tensors, {"format": CHECKPOINT_FORMAT})
            files[OPTIMIZER_FILE] = None
        for file_name in files:
            path = tmp / file_name
            files[file_name] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
        record = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "freqtail_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **dict(info),
            "optimizer": optimizer_json,
            "files": files,
        }
        atomic_write_json(tmp / INFO_FILE, record)
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, root / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    pointer = {
        "format": POINTER_FORMAT,
        "checkpoint": name,
        "epoch": info.get("epoch"),
        "global_step": step,
        **dict(pointer_extra or {}),
    }
    previous = _pointer_targets(root)
    for which in pointers:
        if which not in WHICH:
            raise ValueError(f"unknown pointer {which!r}")
        fields = dict((pointer_fields or {}).get(which) or {})
        atomic_write_json(_pointer_path(root, which), {**pointer, **fields})
    _rotate(root, previous)
    return root / name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pointer_targets(root: Path) -> set[str] | None:
    """The folder names the pointers of ``root`` name, or None if a pointer file cannot be read."""
    names = set()
    for which in WHICH:
        try:
            pointer = read_pointer(root, which)
        except CheckpointError:
            return None
        if pointer is not None:
            names.add(pointer["checkpoint"])
    return names


def remove_unfinished_checkpoints(root: Path) -> list[str]:
    """Remove the temporary folders of checkpoints whose writing was killed; returns their names."""
    removed = []
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith(".tmp-step-"):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def _rotate(root: Path, previous: set[str] | None) -> list[str]:
    """Remove the folders the pointers named before (``previous``) and no longer name, and leftovers
    of interrupted writes; nothing else, and no checkpoint at all while a pointer is unreadable."""
    removed = remove_unfinished_checkpoints(root)
    now = _pointer_targets(root)
    if previous is None or now is None:
        return removed
    for name in sorted(previous - now):
        folder = root / name
        if _STEP_DIR.match(name) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(name)
    return removed


def prune_checkpoints(checkpoints_dir: str | os.PathLike) -> list[str]:
    """Remove checkpoint folders (and leftover temporary folders) that no pointer names.

    Checkpoints are only removed when ``last.json`` exists and every pointer can be read: a damaged
    or missing pointer would otherwise make its checkpoint look unreferenced. Returns the removed names.
    """
    root = Path(checkpoints_dir)
    removed = remove_unfinished_checkpoints(root)
    keep = _pointer_targets(root)
    if keep is None or not _pointer_path(root, "last").exists():
        return removed
    for entry in root.iterdir():
        if entry.is_dir() and entry.name not in keep and _STEP_DIR.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


# ----------------------------------------------------------------------------- damage
def checkpoint_problem(folder: str | os.PathLike, *, verify: bool = False) -> str | None:
    """Why ``folder`` is not a complete checkpoint, as a phrase ("is incomplete (model.safetensors is
    missing)"), or None when it is complete.

    Complete: ``checkpoint.json`` readable and of this format, and every file it lists present with
    its recorded size (and, with ``verify``, its SHA-256).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "does not exist"
    info_path = folder / INFO_FILE
    try:
        inside(folder, INFO_FILE, "A checkpoint file", error=CheckpointError)
    except CheckpointError:
        return f"is unsafe ({INFO_FILE} is a link leading out of the checkpoint folder)"
    if not info_path.is_file():
        return f"is incomplete ({INFO_FILE} is missing)"
    try:
        info = _read_json(info_path, "checkpoint")
        _check_format(info, info_path)
    except CheckpointError:
        return f"is incomplete ({INFO_FILE} is damaged)"
    files = info.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        return f"is incomplete ({INFO_FILE} lists no {MODEL_FILE})"
    for name, record in files.items():
        try:
            path = inside(folder, name, "A checkpoint file", error=CheckpointError)
        except CheckpointError:
            return f"is unsafe ({INFO_FILE} lists {name!r}, which leads out of the checkpoint folder)"
        if not path.is_file():
            return f"is incomplete ({name} is missing)"
        size = path.stat().st_size
        expected = record.get("bytes") if isinstance(record, dict) else None
        if size != expected:
            return f"is incomplete ({name} has {size} bytes, {expected} expected)"
        if verify and _sha256(path) != record.get("sha256"):
            return f"is damaged ({name} does not match its SHA-256)"
    return None


def _step_order(name: str) -> tuple[int, int]:
    parts = name.split("-")
    return int(parts[1]), int(parts[2]) if len(parts) > 2 else 0


@dataclass(frozen=True)
class ResumeChoice:
    """Which checkpoint a resumed run continues from (:func:`choose_resume_checkpoint`).

    Attributes:
        folder: the checkpoint folder, or None when no complete checkpoint exists.
        problem: what is wrong with ``last.json`` (``"checkpoints/last.json is missing"``), or None
            when it names a complete checkpoint (then ``folder`` is that checkpoint).
        epoch, global_step: of ``folder`` (completed epochs; optimiser steps), or None.
        damaged: ``(name, problem)`` of every checkpoint folder found incomplete or damaged.
    """

    folder: Path | None
    problem: str | None
    epoch: int | None = None
    global_step: int | None = None
    damaged: tuple[tuple[str, str], ...] = ()


def _last_pointer_problem(root: Path) -> tuple[str | None, str | None]:
    """``(named folder, problem)`` of ``root/last.json``; the problem is None when it names a
    complete checkpoint (sizes checked, not digests)."""
    where = f"{root.name}/last.json"
    path = _pointer_path(root, "last")
    if not path.is_file():
        return None, f"{where} is missing"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, f"{where} cannot be read"
    if not text.strip():
        return None, f"{where} is empty"
    try:
        pointer = json.loads(text)
    except json.JSONDecodeError:
        return None, f"{where} is not valid JSON"
    name = pointer.get("checkpoint") if isinstance(pointer, dict) else None
    if not isinstance(pointer, dict) or pointer.get("format") != POINTER_FORMAT or not isinstance(name, str):
        return None, f"{where} is not a checkpoint pointer"
    if not _STEP_DIR.match(name):
        return None, f"{where} names {name!r}, which is not a checkpoint folder"
    problem = checkpoint_problem(root / name)
    if problem is not None:
        return name, f"{where} names {name}, which {problem}"
    return name, None


def choose_resume_checkpoint(checkpoints_dir: str | os.PathLike) -> ResumeChoice:
    """The checkpoint to resume a run from: ``last`` if it is complete, else the newest complete one.

    Nothing is changed on disk. With a sound ``last.json`` the result has ``problem=None``;
    otherwise ``problem`` says what is wrong with it and ``folder`` is the checkpoint folder with the
    highest global step that passes :func:`checkpoint_problem` with digests verified (None if none
    does).
    """
    root = Path(checkpoints_dir)
    name, problem = _last_pointer_problem(root)
    if problem is None:
        info = _read_json(root / name / INFO_FILE, "checkpoint")
        return ResumeChoice(root / name, None, info.get("epoch"), int(info["global_step"]))
    candidates = (
        sorted(
            (entry for entry in root.iterdir() if entry.is_dir() and _STEP_DIR.match(entry.name)),
            key=lambda entry: _step_order(entry.name),
            reverse=True,
        )
        if root.is_dir()
        else []
    )
    damaged = []
    for folder in candidates:
        trouble = checkpoint_problem(folder, verify=True)
        if trouble is None:
            info = _read_json(folder / INFO_FILE, "checkpoint")
            return ResumeChoice(folder, problem, info.get("epoch"), int(info["global_step"]), tuple(damaged))
        damaged.append((folder.name, trouble))
    return ResumeChoice(None, problem, damaged=tuple(damaged))


def point_last_at(checkpoints_dir: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Rewrite ``last.json`` (atomically) to name the complete checkpoint ``folder``."""
    root, folder = Path(checkpoints_dir), Path(folder)
    info = _read_json(folder / INFO_FILE, "checkpoint")
    pointer = {
        "format": POINTER_FORMAT,
        "checkpoint": folder.name,
        "epoch": info.get("epoch"),
        "global_step": int(info["global_step"]),
        "selected_on": dict(LAST_EPOCH),
    }
    atomic_write_json(_pointer_path(root, "last"), pointer)


# ----------------------------------------------------------------------------- loading
def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"The {what} file {path} is missing.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"The {what} file {path} could not be read ({err}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CheckpointError(f"The {what} file {path} is corrupt or truncated (not valid JSON).") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"The {what} file {path} does not hold a JSON object.")
    return data


def _check_format(info: Mapping[str, Any], path: Path) -> None:
    if info.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"The file {path} is not a freqtail checkpoint (its format is {info.get('format')!r})."
        )
    version = info.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"The checkpoint {path} has format version {version!r}, newer than this freqtail reads "
            f"({CHECKPOINT_VERSION}); upgrade freqtail."
        )
    for key in ("model_spec", "global_step", "files"):
        if key not in info:
            raise CheckpointError(f"The checkpoint {path} is malformed (no {key!r}).")


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> tuple[Path, str | None]:
    """The checkpoint folder that ``path`` refers to, and which pointer was followed (or None).

    ``path`` may be a run folder, its ``checkpoints/`` folder, a checkpoint folder, a pointer file
    (``last.json``/``best.json``), a ``checkpoint.json`` or a checkpoint's ``model.safetensors``.
    What the folder names stays inside it (:func:`freqtail.runs.containment.inside`): the run's
    ``checkpoints/`` in the run folder, a pointer and the checkpoint it names in ``checkpoints/``.

    Raises:
        CheckpointError: nothing loadable at ``path``, or a name or link leading out of its folder.
    """
    if which not in WHICH:
        raise CheckpointError(f"Choose which checkpoint to load with 'best' or 'last', not {which!r}.")
    p = check_run_path(path)
    if p.is_file():
        if p.name == INFO_FILE or (p.name == MODEL_FILE and (p.parent / INFO_FILE).exists()):
            return p.parent, None
        if p.suffix == ".json":
            pointer = _read_json(p, "checkpoint pointer")
            if pointer.get("format") == POINTER_FORMAT:
                return _follow(p.parent, pointer, p.stem if p.stem in WHICH else None)
            if pointer.get("format") == CHECKPOINT_FORMAT:
                return p.parent, None
            raise CheckpointError(f"The file {p} is neither a freqtail checkpoint nor a checkpoint pointer.")
        raise CheckpointError(
            f"The file {p} is not a freqtail checkpoint; give a run folder or checkpoint folder."
        )
    if (p / INFO_FILE).exists():
        return p, None
    checkpoints = RunLayout.of(p).checkpoints
    if checkpoints.exists():
        inside(p, checkpoints.name, "The run's checkpoints folder", error=CheckpointError)
    for root in (checkpoints, p):
        if (root / "last.json").exists() or (root / "best.json").exists():
            pointer = read_pointer(root, which)
            if pointer is None:
                other = "last" if which == "best" else "best"
                raise CheckpointError(
                    f"The run at {p} has no {which!r} checkpoint yet (no evaluated epoch); "
                    f"load which={other!r} instead."
                )
            return _follow(root, pointer, which)
    if RunLayout.of(p).config.exists():
        raise CheckpointError(f"The run at {p} has no checkpoint yet (it stopped before finishing an epoch).")
    raise CheckpointError(
        f"No freqtail checkpoint found at {p} "
        "(expected a run folder with checkpoints/, or a checkpoint folder)."
    )


def _follow(root: Path, pointer: Mapping[str, Any], which: str | None) -> tuple[Path, str | None]:
    """The checkpoint folder ``pointer`` (read from ``root``) names, which must lie in ``root``."""
    name = pointer.get("checkpoint")
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"The {which or 'checkpoint'} pointer in {root} names no checkpoint folder.")
    folder = inside(root, name, f"The {which or 'pointed-to'} checkpoint", error=CheckpointError)
    if not (folder / INFO_FILE).exists():
        raise CheckpointError(
            f"The {which or 'pointed-to'} checkpoint {folder} is missing or incomplete; "
            "the run folder is damaged."
        )
    return folder, which


@dataclass
class Checkpoint:
    """A loaded checkpoint: its folder, ``checkpoint.json`` contents and the model's tensors (CPU).

    ``optimizer_state()`` reads the optimiser tensors on demand; ``build_model()`` rebuilds the model.
    """

    path: Path
    info: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    which: str | None = None
    _verified: bool = field(default=True, repr=False)

    @property
    def model_spec(self) -> dict[str, Any]:
        return self.info["model_spec"]

    @property
    def config(self) -> dict[str, Any] | None:
        return self.info.get("config")

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimiser ``state_dict`` saved with this checkpoint, or None if none was saved."""
        if self.info.get("optimizer") is None:
            return None
        path = inside(self.path, OPTIMIZER_FILE, "The optimiser state file", error=CheckpointError)
        _verify_file(path, self.info["files"].get(OPTIMIZER_FILE), "optimiser state", self._verified)
        tensors, _ = read_safetensors(path, "optimiser state")
        return optimizer_state_from_parts(self.info["optimizer"], tensors)

    def build_model(self, *, with_front: bool = True, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The :class:`~freqtail.models.FreqtailModel` with these weights, in eval mode, on ``device``."""
        return model_with_state(self.model_spec, self.model_state, str(self.path), with_front, device)


def _verify_file(path: Path, record: Mapping[str, Any] | None, what: str, verify: bool) -> None:
    if not path.exists():
        raise CheckpointError(f"The {what} file {path} is missing; the checkpoint is incomplete.")
    if record is None:
        raise CheckpointError(
            f"The checkpoint at {path.parent} does not list its {what} file; it is malformed."
        )
    size = path.stat().st_size
    if size != record.get("bytes"):
        raise CheckpointError(
            f"The {what} file {path} is truncated or altered ({size} bytes, expected {record.get('bytes')})."
        )
    if verify and _sha256(path) != record.get("sha256"):
        raise CheckpointError(
            f"The {what} file {path} is corrupt (its SHA-256 does not match the checkpoint's)."
        )


def load_checkpoint(path: str | os.PathLike, which: str = "best", *, verify: bool = True) -> Checkpoint:
    """Load a freqtail checkpoint (weights to CPU) after validating it.

    Args:
        path: run folder, ``checkpoints/`` folder, checkpoint folder, pointer, ``checkpoint.json``
            or ``model.safetensors`` of a checkpoint (see :func:`resolve_checkpoint`).
        which: ``"best"`` (default) or ``"last"`` when ``path`` is a run folder.
        verify: check the SHA-256 of the weight files (sizes are always checked).

    Raises:
        CheckpointError: missing, truncated, corrupt, foreign or newer-format checkpoint, or a name
            or link in it leading out of its folder (:func:`resolve_checkpoint`).
    """
    folder, followed = resolve_checkpoint(path, which)
    info_path = inside(folder, INFO_FILE, "The checkpoint file", error=CheckpointError)
    info = _read_json(info_path, "checkpoint")
    _check_format(info, info_path)
    model_path = inside(folder, MODEL_FILE, "The model weights file", error=CheckpointError)
    _verify_file(model_path, info["files"].get(MODEL_FILE), "model weights", verify)
    tensors, _ = read_safetensors(model_path, "model weights")
    return Checkpoint(folder, info, tensors, followed, verify)


def model_with_state(
    spec: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str, with_front: bool, device
) -> torch.nn.Module:
    try:
        model = build_model_from_spec(spec, with_front=with_front)
    except ConfigError as err:
        raise CheckpointError(f"The model spec stored with {where} cannot be built: {err}") from None
    _load_state_into(model, state, where)
    return model.to(device).eval()


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(state)
    for prefix in ("module.", "_orig_mod."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def _load_state_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load strictly into a FreqtailModel, accepting ``backbone.``-prefixed or bare backbone keys."""
    state = _strip_prefixes(state)
    target = model
    if hasattr(model, "backbone") and state and not any(k.startswith("backbone.") for k in state):
        target = model.backbone
    try:
        result = target.load_state_dict(state, strict=True)
    except RuntimeError as err:
        expected = set(target.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise CheckpointError(
                f"The weights in {where} do not match the architecture ({len(missing)} missing keys such as "
                f"{missing[:2]}, {len(unexpected)} unexpected such as {unexpected[:2]})."
            ) from None
        first = str(err).strip().splitlines()[-1].strip()
        raise CheckpointError(f"The weights in {where} do not match the architecture ({first}).") from None
    del result


SUMMARY_KEYS = (
    "path",
    "which",
    "format",
    "epoch",
    "global_step",
    "complete",
    "config",
    "model_spec",
    "metrics",
    "best",
    "selected_on",
    "data",
    "objective",
    "freqtail_version",
)


def checkpoint_summary(checkpoint: Checkpoint) -> dict[str, Any]:
    """What a loaded freqtail checkpoint is (the ``info`` of ``freqtail.workflows.load_model_from_run``)."""
    info = checkpoint.info
    config = info.get("config") or {}
    history = info.get("history") or []
    return {
        "path": str(checkpoint.path),
        "which": checkpoint.which,
        "format": CHECKPOINT_FORMAT,
        "epoch": info.get("epoch"),
        "global_step": info.get("global_step"),
        "complete": info.get("complete"),
        "config": info.get("config"),
        "model_spec": info.get("model_spec"),
        "metrics": history[-1] if history else None,
        "best": info.get("best"),
        "selected_on": dict(LAST_EPOCH) if checkpoint.which == "last" else info.get("selected_on"),
        "data": {k: config.get(k) for k in ("dataset", "data_root", "bass", "gamma", "bass_strength")},
        "objective": config.get("objective"),
        "freqtail_version": info.get("freqtail_version"),
    }
