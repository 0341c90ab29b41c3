"""AutoAttack (Croce & Hein 2020) through the maintained ``pyautoattack`` package, pinned to 0.2.0.

``autoattack(model, x, y, eps=...)`` runs the package's attacks and returns an
:class:`~freqtail.attacks.common.AttackResult` whose ``name`` says exactly what ran:

* ``"autoattack-standard"``: APGD-CE, APGD-T, FAB-T, Square (5000 queries), the package's
  ``version="standard"`` — the number RobustBench and the paper report;
* ``"autoattack-fast"``: APGD-CE and APGD-T only (the package's ``version="custom"`` with the
  standard settings of those two attacks). Cheaper and usually within a few tenths of a percent of
  the standard number, but it is NOT AutoAttack and is never labelled as such.

With fewer than 10 classes the targeted attacks use every other class (``classes - 1`` targets
instead of 9, which would index past the logits); the number is recorded in ``params``. The
targeted DLR loss needs at least 4 classes, so smaller problems are refused.

The package's own sanity checks (randomised or dynamic defence, probabilities instead of logits,
zero gradients, Square beating the gradient attacks) are kept: their messages are collected into
``AttackResult.check_warnings``, re-raised as :class:`AutoAttackWarning` (visible by default), and
written to ``log_path`` with the package's progress log.

Resuming: ``pyautoattack`` 0.2.0's own ``state_path`` cannot restore its state (it stores the set of
attacks as a string and then refuses the file as "created with a different set of attacks"), so
freqtail resumes at batch granularity instead: the images are attacked ``batch_size`` at a time and
each finished batch is saved atomically under the ``state_path`` folder; a rerun with the same
inputs and settings loads finished batches and attacks only the rest. The result is identical with
or without interruption. The package re-seeds torch's global RNG; freqtail restores it afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyautoattack
import torch
from pyautoattack import AutoAttack
from tqdm.auto import tqdm

from freqtail.attacks.common import (
    AttackResult,
    Classifier,
    check_attack_inputs,
    check_logits,
    correctness,
    model_device,
    require_autograd,
    warn_if_training,
)
from freqtail.attacks.eps import check_eps
from freqtail.checks import check_choice, check_int, check_seed
from freqtail.errors import InputError
from freqtail.io import atomic_save_npy, atomic_write_json, load_npy

#: The attacks each version runs, in order.
AUTOATTACK_VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "fast": ("apgd-ce", "apgd-t"),
}
#: The targeted DLR loss of APGD-T compares the 1st, 3rd and 4th largest logits.
MIN_CLASSES = 4
#: The targeted attacks of the standard version use at most this many target classes.
MAX_TARGET_CLASSES = 9
PACKAGE_LOGGER = "auto-attack"
STATE_FORMAT = "freqtail-autoattack-state-1"


class AutoAttackWarning(UserWarning):
    """A sanity check of the AutoAttack package fired: the robustness number may be unreliable."""


#: The package's log messages that say how far the attacks are (forwarded to ``on_message``).
PROGRESS_MESSAGES = ("running ", "robust accuracy after ", "initial accuracy")


class _Forward(logging.Handler):
    """Passes the package's progress messages (:data:`PROGRESS_MESSAGES`) and freqtail's batch
    lines to a callback: the console sees which attack of the ensemble runs and how far it got."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name != PACKAGE_LOGGER or message.startswith(PROGRESS_MESSAGES):
            self.callback(message)


class _CollectWarnings(logging.Handler):
    """Keeps the text of every WARNING-or-worse record, in order."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _routed_logging(
    log_path: str | Path | None, on_message: Callable[[str], None] | None = None
) -> Iterator[_CollectWarnings]:
    """Collect the package's warnings; with ``log_path``, append its whole log to that file; with
    ``on_message``, pass it the progress messages (:class:`_Forward`)."""
    package_logger = logging.getLogger(PACKAGE_LOGGER)
    own_logger = logging.getLogger(__name__)
    collector = _CollectWarnings()
    package_logger.addHandler(collector)
    file_handler = None
    saved_levels = (package_logger.level, own_logger.level)
    forward = _Forward(on_message) if on_message is not None else None
    if forward is not None:
        for logger in (package_logger, own_logger):
            logger.addHandler(forward)
            logger.setLevel(logging.DEBUG)
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        for logger in (package_logger, own_logger):
            logger.addHandler(file_handler)
            logger.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        package_logger.removeHandler(collector)
        if forward is not None:
            for logger in (package_logger, own_logger):
                logger.removeHandler(forward)
        if file_handler is not None:
            for logger in (package_logger, own_logger):
                logger.removeHandler(file_handler)
            file_handler.close()
        package_logger.setLevel(saved_levels[0])
        own_logger.setLevel(saved_levels[1])


def _fingerprint(x: torch.Tensor, y: torch.Tensor, params: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(str(tuple(x.shape)).encode())
    digest.update(x.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(y.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


class _BatchStore:
    """Finished batches of adversarial images under a folder, written atomically, checked on reuse."""

    def __init__(self, folder: str | Path, fingerprint: str, batches: int) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(
                f"The AutoAttack state path {self.folder} is a file; give a folder for its state."
            )
        meta_path = self.folder / "state.json"
        meta = {"format": STATE_FORMAT, "fingerprint": fingerprint, "batches": batches}
        if meta_path.exists():
            try:
                found = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found = None
            if found != meta:
                raise InputError(
                    f"The AutoAttack state folder {self.folder} belongs to other images or settings; "
                    "delete it or choose another state_path."
                )
        else:
            atomic_write_json(meta_path, meta)

    def _path(self, index: int) -> Path:
        return self.folder / f"batch-{index:05d}.npy"

    def load(self, index: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        path = self._path(index)
        if not path.exists():
            return None
        array = load_npy(path, "saved AutoAttack batch")
        if array.shape != shape or array.dtype != np.float32 or not np.isfinite(array).all():
            raise InputError(
                f"The saved AutoAttack batch {path} is damaged (shape {array.shape}); "
                "delete it to recompute it."
            )
        return torch.from_numpy(np.array(array))

    def save(self, index: int, x_adv: torch.Tensor) -> None:
        atomic_save_npy(self._path(index), x_adv.detach().to("cpu", torch.float32).numpy())


def _build(model: Classifier, version: str, eps: float, seed: int, device: torch.device, classes: int):
    targets = min(MAX_TARGET_CLASSES, classes - 1)
    if version == "standard":
        attack = AutoAttack(model, eps=eps, norm="Linf", version="standard", device=device, seed=seed)
        attack.fab.n_target_classes = targets
    else:
        attack = AutoAttack(
            model,
            eps=eps,
            norm="Linf",
            version="custom",
            attacks=list(AUTOATTACK_VERSIONS["fast"]),
            device=device,
            seed=seed,
        )
        # The two attacks exactly as the standard version configures them.
        attack.apgd.n_restarts = 1
        attack.apgd_targeted.n_restarts = 1
    attack.apgd_targeted.n_target_classes = targets
    return attack


def autoattack(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    version: str = "standard",
    seed: int = 0,
    batch_size: int = 250,
    state_path: str | Path | None = None,
    log_path: str | Path | None = None,
    progress: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> AttackResult:
    """Run AutoAttack (L-inf) on a batch and return adversarial images with per-example outcomes.

    Args:
        model: float (N, C, H, W) in [0, 1] -> logits (N, K), K >= 4, in eval mode (the caller's job).
        x: float (N, C, H, W) clean images in [0, 1] (any device; batches move to the model's device).
        y: integer (N,) true labels.
        eps: L-inf budget on the [0, 1] scale (8/255).
        version: ``"standard"`` (AutoAttack) or ``"fast"`` (APGD-CE + APGD-T, named "autoattack-fast").
        seed: seed of the package's random starts; same seed, same result.
        batch_size: images per package call, and per saved batch when resuming.
        state_path: folder for resumable progress (see the module doc), or None.
        log_path: file that receives the package's log (appended), or None.
        progress: show a progress bar over batches.
        on_message: ``on_message(text)`` receives each progress message: this batch's start, the
            attack of the ensemble that starts, the robust accuracy after each (the package's log
            lines), or None.

    Returns:
        :class:`AttackResult` with ``name`` "autoattack-standard" or "autoattack-fast", ``x_adv`` on
        ``x``'s device and dtype (within eps of x and in [0, 1]), ``clean_correct``,
        ``robust_correct``, ``params`` and ``check_warnings``.

    Example:
        >>> result = autoattack(model.eval(), x, y, eps=8 / 255, version="standard", log_path="aa.log")
        >>> result.name, result.robust_accuracy
    """
    eps = check_eps(eps)
    check_choice(version, AUTOATTACK_VERSIONS, "The AutoAttack version")
    check_seed(seed, "The AutoAttack seed")
    check_int(batch_size, "The AutoAttack batch size", minimum=1)
    x, y = check_attack_inputs(x, y)
    require_autograd("AutoAttack")
    warn_if_training(model, "AutoAttack")
    device = model_device(model, x.device)
    with torch.no_grad():
        logits = model(x[:batch_size].to(device, torch.float32))
    check_logits(logits, y[:batch_size].to(device))
    classes = int(logits.shape[1])
    if classes < MIN_CLASSES:
        raise InputError(
            f"AutoAttack's targeted DLR loss needs at least {MIN_CLASSES} classes "
            f"and the model has {classes}; "
            "use PGD (freqtail.attacks.pgd) instead."
        )
    name = f"autoattack-{version}"
    params: dict[str, Any] = {
        "attack": "autoattack",
        "name": name,
        "package": f"pyautoattack {pyautoattack.__version__}",
        "version": version,
        "attacks": list(AUTOATTACK_VERSIONS[version]),
        "norm": "Linf",
        "eps": eps,
        "eps_255": round(eps * 255, 4),
        "seed": seed,
        "batch_size": batch_size,
        "target_classes": min(MAX_TARGET_CLASSES, classes - 1),
    }
    began = time.perf_counter()
    if eps == 0:
        clean_correct, robust_correct = correctness(model, x, x, y, batch_size=batch_size)
        return AttackResult(
            name, x.clone(), clean_correct, robust_correct, params, [], time.perf_counter() - began
        )
    starts = list(range(0, x.shape[0], batch_size))
    store = None
    if state_path is not None:
        store = _BatchStore(state_path, _fingerprint(x, y, params), len(starts))
    own_logger = logging.getLogger(__name__)
    pieces: list[torch.Tensor] = []
    rng_devices = []
    if device.type == "cuda":
        rng_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    batches = enumerate(starts)
    if progress:
        batches = tqdm(batches, total=len(starts), desc=name, unit="batch")
    with _routed_logging(log_path, on_message) as collector, torch.random.fork_rng(devices=rng_devices):
        attack = None
        for index, start in batches:
            images = x[start : start + batch_size].to(torch.float32)
            labels = y[start : start + batch_size]
            saved = store.load(index, tuple(images.shape)) if store is not None else None
            if saved is not None:
                own_logger.info("%s: batch %d/%d loaded from %s", name, index + 1, len(starts), state_path)
                pieces.append(saved.to(x.device))
                continue
            own_logger.info(
                "%s: batch %d/%d (%d images), eps %.6f", name, index + 1, len(starts), len(labels), eps
            )
            if attack is None:
                attack = _build(model, version, eps, seed, device, classes)
            x_adv, _ = attack.run_standard_evaluation(images, labels, batch_size=batch_size)
            x_adv = x_adv.detach().to(x.device)
            if store is not None:
                store.save(index, x_adv)
            pieces.append(x_adv)
    x_adv = torch.cat(pieces).to(x.dtype)
    clean_correct, robust_correct = correctness(model, x, x_adv, y, batch_size=batch_size)
    check_warnings = list(dict.fromkeys(collector.messages))
    for message in check_warnings:
        warnings.warn(f"AutoAttack sanity check: {message}", AutoAttackWarning, stacklevel=2)
    return AttackResult(
        name=name,
        x_adv=x_adv,
        clean_correct=clean_correct,
        robust_correct=robust_correct,
        params=params,
        check_warnings=check_warnings,
        seconds=time.perf_counter() - began,
    )
