"""What every attack shares: input checks, the model's device, the CW margin loss, the result record."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from freqtail.errors import InputError
from freqtail.images import check_float_images

#: A classifier as the attacks see it: float (N, C, H, W) in [0, 1] -> logits (N, K).
Classifier = Callable[[torch.Tensor], torch.Tensor]

# Inputs may sit this far outside [0, 1] (float rounding of a conversion) and still count as images.
RANGE_TOLERANCE = 1e-6


def model_device(model: Classifier, fallback: torch.device) -> torch.device:
    """The device of the model's first parameter or buffer, or ``fallback`` for a model without any."""
    if isinstance(model, nn.Module):
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
    return fallback


def warn_if_training(model: Classifier, attack: str) -> None:
    """Warn (never fix silently) when an attack is run on a module in training mode."""
    if isinstance(model, nn.Module) and model.training:
        warnings.warn(
            f"{attack} runs on a model in training mode (dropout and batch-norm statistics change); "
            "call model.eval() first for a proper evaluation.",
            UserWarning,
            stacklevel=3,
        )


def require_autograd(attack: str) -> None:
    """Refuse to run a gradient attack inside ``torch.inference_mode()``, where autograd cannot work."""
    if torch.is_inference_mode_enabled():
        raise InputError(
            f"{attack} needs input gradients and cannot run inside torch.inference_mode(); "
            "call it outside that block (torch.no_grad() is fine)."
        )


def check_attack_inputs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch to attack and return ``(x, y)`` detached.

    Args:
        x: float (N, C, H, W) images in [0, 1], finite.
        y: integer (N,) labels on any device.

    Raises:
        InputError: wrong layout, dtype, non-finite values, values outside [0, 1], or N mismatch.
    """
    x = check_float_images(x, "images to attack")
    if not isinstance(y, torch.Tensor):
        raise InputError(f"The labels must be a torch tensor of class indices, not {type(y).__name__}.")
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise InputError(f"The labels must be an integer tensor of class indices, not {y.dtype}.")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InputError(
            f"The labels must have shape ({x.shape[0]},) to match the images, not {tuple(y.shape)}."
        )
    low, high = float(x.detach().min()), float(x.detach().max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise InputError(
            f"The images to attack must lie in [0, 1] (float, not normalised), but range from "
            f"{low:.4g} to {high:.4g}; put normalisation inside the model."
        )
    return x.detach(), y.detach().long()


def check_logits(logits: torch.Tensor, y: torch.Tensor) -> None:
    """Raise :class:`InputError` unless ``logits`` is (N, K) with K >= 2 and every label < K."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"The model must return logits of shape ({y.shape[0]}, classes), not {shape}.")
    classes = logits.shape[1]
    if classes < 2:
        raise InputError(f"The model returns {classes} logit per image; attacks need at least 2 classes.")
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise InputError(
            f"The labels must be class indices in 0..{classes - 1}, "
            f"but range from {int(y.min())} to {int(y.max())}."
        )


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin, per example: ``max_{j != y} z_j - z_y`` (N,); > 0 means misclassified.

    Args:
        logits: (N, K) float logits.
        y: (N,) long labels.
    """
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - true_logit


def linf_distance(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example L-inf distance (N,) between two (N, ...) batches."""
    return (x_adv - x).flatten(1).abs().amax(dim=1)


@dataclass
class AttackResult:
    """The outcome of one attack on one batch, with the settings that produced it.

    Attributes:
        name: the attack as it must be reported, e.g. ``"pgd-20-ce"``, ``"autoattack-standard"``,
            ``"autoattack-fast"`` (the cheaper APGD-CE + APGD-T subset is never called AutoAttack alone).
        x_adv: float (N, C, H, W) adversarial images, same device and dtype as the input images.
        clean_correct: bool (N,) the model classifies the clean image correctly.
        robust_correct: bool (N,) the model classifies the clean AND the adversarial image correctly.
        params: the exact settings (JSON-serialisable).
        check_warnings: sanity-check warnings raised during the attack (e.g. AutoAttack's checks).
        seconds: wall-clock time of the attack.
    """

    name: str
    x_adv: torch.Tensor
    clean_correct: torch.Tensor
    robust_correct: torch.Tensor
    params: dict[str, Any] = field(default_factory=dict)
    check_warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return int(self.robust_correct.numel())

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust_correct.float().mean()) if self.total else 0.0

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean()) if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Counts, accuracies, settings and warnings (no tensors), ready for JSON."""
        return {
            "attack": self.name,
            "total": self.total,
            "clean_correct": int(self.clean_correct.sum()),
            "robust_correct": int(self.robust_correct.sum()),
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "params": dict(self.params),
            "check_warnings": list(self.check_warnings),
            "seconds": round(self.seconds, 3),
        }


@torch.no_grad()
def correctness(
    model: Classifier, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clean_correct, robust_correct)``: bool (N,) on ``y``'s device; batches run on the model's device."""
    device = model_device(model, x.device)
    clean, robust = [], []
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        labels = y[start:stop].to(device)
        clean_ok = model(x[start:stop].to(device)).argmax(dim=1) == labels
        adv_ok = model(x_adv[start:stop].to(device)).argmax(dim=1) == labels
        clean.append(clean_ok)
        robust.append(clean_ok & adv_ok)
    return torch.cat(clean).to(y.device), torch.cat(robust).to(y.device)
