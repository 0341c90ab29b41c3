"""L-inf projected gradient descent (Madry et al. 2018) with cross-entropy or CW-margin loss.

One step: ``x <- clip_[x0 - eps, x0 + eps] ∩ [0, 1](x + step_size * sign(grad_x loss))``, from a
uniform random start in the eps-ball (clipped to [0, 1]). Gradients are taken with respect to the
input only (``torch.autograd.grad``): no parameter gradient is accumulated, and the model's mode is
never changed — put it in eval mode yourself (a warning says so when it is not).

Which example is returned, per image: the first iterate (over steps and restarts, the clean image
included) that the model misclassifies; if none does, the iterate with the highest loss. Later
restarts only attack the images not yet fooled. So a clean-misclassified image is returned
unchanged, and "robust" always means correct on the clean and on the adversarial image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from freqtail.attacks.common import (
    AttackResult,
    Classifier,
    check_attack_inputs,
    check_logits,
    correctness,
    margin_loss,
    model_device,
    require_autograd,
    warn_if_training,
)
from freqtail.attacks.eps import check_eps, parse_eps
from freqtail.checks import check_choice, check_int, check_optional_int
from freqtail.errors import InputError


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


#: Per-example losses that PGD maximises: (N, K) logits, (N,) labels -> (N,).
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": _cross_entropy,
    "cw": margin_loss,
}


def _check_schedule(
    steps: int, restarts: int, loss: str
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Check PGD's step count (>= 0), restart count (>= 1) and loss name; return the loss function."""
    check_int(steps, "The number of PGD steps", minimum=0)
    check_int(restarts, "The number of PGD restarts", minimum=1)
    return LOSSES[check_choice(loss, LOSSES, "The PGD loss")]


def check_drop_fooled(drop_fooled: bool) -> None:
    """Refuse a ``drop_fooled`` that is not ``True`` or ``False`` (one sentence)."""
    if not isinstance(drop_fooled, bool):
        raise InputError(f"drop_fooled must be True or False, not {drop_fooled!r}.")


def _couples_images(model: Classifier) -> bool:
    """True when a module of ``model`` is in training mode: batch statistics and dropout then make
    one image's output depend on the others in its batch (a plain callable is taken as per-image)."""
    return isinstance(model, nn.Module) and any(module.training for module in model.modules())


def as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """``None`` (torch's global RNG), a ``torch.Generator`` as is, or an int seed -> a fresh CPU generator."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise InputError(
            f"The generator must be a torch.Generator, an integer seed or None, not {generator!r}."
        )
    return torch.Generator().manual_seed(generator)


def _uniform_noise(like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform noise in [-eps, eps] shaped like ``like``, drawn on the generator's own device."""
    if generator is None:
        unit = torch.rand(like.shape, device=like.device, dtype=like.dtype)
    else:
        unit = torch.rand(like.shape, generator=generator, device=generator.device, dtype=like.dtype)
    return (unit.to(like.device) * 2 - 1) * eps


def pgd(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    loss: str = "ce",
    random_start: bool = True,
    restarts: int = 1,
    generator: torch.Generator | int | None = None,
    drop_fooled: bool = True,
) -> torch.Tensor:
    """L-inf PGD adversarial examples for a batch.

    Args:
        model: float (N, C, H, W) in [0, 1] -> logits (N, K); in eval mode (the caller's job).
        x: float (N, C, H, W) clean images in [0, 1]; any device (moved to the model's device).
        y: integer (N,) true labels.
        eps: L-inf budget on the [0, 1] scale (8/255, not 8; see :func:`check_eps`).
        step_size: size of one signed-gradient step, same scale (2/255 in the paper).
        steps: number of steps (20 for the paper's PGD-20); 0 = the random start alone.
        loss: ``"ce"`` (cross-entropy) or ``"cw"`` (margin ``max_{j != y} z_j - z_y``, the CW-inf loss).
        random_start: start from a uniform point of the eps-ball (clipped to [0, 1]) rather than x.
        restarts: independent runs; images fooled by an earlier run are kept (see module doc).
        generator: ``torch.Generator`` (any device) or an int seed for the random starts; same seed,
            same result. ``None`` draws from torch's global RNG.
        drop_fooled: attack only the images not yet fooled at every step (see the module doc; the
            returned examples are the same). ``False`` keeps the whole batch to the last step, for a
            model whose output for one image depends on the others in its batch. A model with any
            module in training mode always keeps the whole batch.

    Returns:
        float (N, C, H, W) on ``x``'s device and dtype, inside ``[x - eps, x + eps] ∩ [0, 1]``;
        ``eps == 0`` returns a copy of ``x``.

    Example:
        >>> x_adv = pgd(model.eval(), x, y, eps=8 / 255, step_size=2 / 255, steps=20, generator=0)
    """
    eps = check_eps(eps)
    step_size = check_eps(step_size, "step size")
    loss_fn = _check_schedule(steps, restarts, loss)
    check_drop_fooled(drop_fooled)
    x, y = check_attack_inputs(x, y)
    if eps == 0:
        return x.clone()
    require_autograd("PGD")
    warn_if_training(model, "PGD")
    return run_pgd(
        model,
        x,
        y,
        eps=eps,
        step_size=step_size,
        steps=steps,
        loss_fn=loss_fn,
        random_start=random_start,
        restarts=restarts,
        generator=generator,
        drop_fooled=drop_fooled,
    )


#: ``project(v, x0) -> point``: maps an unconstrained point ``v`` (N, C, H, W) near the clean images
#: ``x0`` to the point PGD clamps into the eps-ball and [0, 1] (see :func:`run_pgd`).
Projection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def run_pgd(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    random_start: bool,
    restarts: int,
    generator: torch.Generator | int | None,
    project: Projection | None = None,
    drop_fooled: bool = True,
) -> torch.Tensor:
    """The PGD loop on checked inputs (:func:`pgd` checks them, refuses inference mode and warns about
    training mode), with an optional extra projection.

    With ``project`` None this is plain L-inf PGD. Otherwise every unconstrained point ``v`` — the
    random start ``x0 + u`` and each step ``x + step_size * sign(g)`` — becomes ``project(v, x0)``
    before the clamp into ``[max(x0 - eps, 0), min(x0 + eps, 1)]`` (freqtail.attacks.band uses it for
    band-restricted perturbations). The rule for which iterate is returned is the module docstring's.

    Args:
        model, eps, step_size, steps, random_start, restarts, generator, drop_fooled: as :func:`pgd`.
        x: float (N, C, H, W) images in [0, 1], already checked; y: long (N,) labels.
        loss_fn: per-example loss to maximise, (N, K) logits and (N,) labels -> (N,).
        project: ``project(v, x0) -> point``, float (M, C, H, W) each, for the M images attacked.

    Returns:
        float (N, C, H, W) on ``x``'s device and dtype; ``eps == 0`` returns a copy of ``x``.
    """
    if eps == 0:
        return x.clone()
    generator = as_generator(generator)
    drop_fooled = drop_fooled and not _couples_images(model)
    device = model_device(model, x.device)
    x0, y0 = x.to(device), y.to(device)
    lower = (x0 - eps).clamp_(min=0.0)
    upper = (x0 + eps).clamp_(max=1.0)

    with torch.no_grad():
        logits = model(x0)
    check_logits(logits, y0)
    best_x = x0.clone()
    found = logits.argmax(dim=1) != y0
    best_loss = loss_fn(logits, y0).detach()

    def keep_best(
        active: torch.Tensor, x_adv: torch.Tensor, logits: torch.Tensor, losses: torch.Tensor
    ) -> None:
        fooled = logits.argmax(dim=1) != y0[active]
        open_ = ~found[active]
        take = open_ & (fooled | (losses > best_loss[active]))
        chosen = active[take]
        best_x[chosen] = x_adv[take]
        best_loss[chosen] = losses[take]
        found[active[open_ & fooled]] = True

    def constrain(point: torch.Tensor, start: torch.Tensor, low, high) -> torch.Tensor:
        if project is not None:
            point = project(point, start)
        return torch.clamp(point, low, high)

    for _ in range(restarts):
        active = (~found).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        start, labels, low, high = x0[active], y0[active], lower[active], upper[active]
        x_adv = start.clone()
        if random_start:
            x_adv = constrain(x_adv + _uniform_noise(x_adv, eps, generator), start, low, high)
        for step in range(steps + 1):
            last = step == steps
            x_adv.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                logits = model(x_adv)
                losses = loss_fn(logits, labels)
                if not last:
                    (grad,) = torch.autograd.grad(losses.sum(), x_adv)
            x_adv = x_adv.detach()
            keep_best(active, x_adv, logits.detach(), losses.detach())
            if last:
                break
            if drop_fooled:  # a fooled image's returned example is fixed: it leaves the batch
                still_open = ~found[active]
                if not bool(still_open.all()):
                    if not bool(still_open.any()):
                        break
                    keep = still_open.nonzero().squeeze(1)
                    active, x_adv, grad = active[keep], x_adv[keep], grad[keep]
                    start, labels, low, high = start[keep], labels[keep], low[keep], high[keep]
            # A NaN gradient (a model that returns NaN) must never leak into the images.
            step_direction = torch.nan_to_num(grad, nan=0.0).sign_()
            x_adv = constrain(x_adv + step_size * step_direction, start, low, high)
    return best_x.to(x.device)


class _PGDSettings:
    """What the frozen PGD settings (:class:`PGDConfig`, ``freqtail.attacks.BandPGDConfig``) share:
    the checks of the PGD fields, the name's PGD part and :meth:`run`."""

    def _check_pgd_fields(self) -> None:
        object.__setattr__(self, "eps", parse_eps(self.eps))
        object.__setattr__(self, "step_size", parse_eps(self.step_size, "step size"))
        _check_schedule(self.steps, self.restarts, self.loss)
        if not isinstance(self.random_start, bool):
            raise InputError(f"random_start must be True or False, not {self.random_start!r}.")

    @property
    def _pgd_name(self) -> str:
        suffix = f"-r{self.restarts}" if self.restarts > 1 else ""
        return f"pgd-{self.steps}-{self.loss}{suffix}"

    def run(
        self,
        model: Classifier,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | int | None = None,
    ) -> AttackResult:
        """Attack and return an :class:`AttackResult` (per-example correctness, settings, time)."""
        began = time.perf_counter()
        x_adv = self(model, x, y, generator=generator)
        clean_correct, robust_correct = correctness(model, x, x_adv, y)
        return AttackResult(
            name=self.name,
            x_adv=x_adv,
            clean_correct=clean_correct,
            robust_correct=robust_correct,
            params=self.to_dict(),
            seconds=time.perf_counter() - began,
        )


@dataclass(frozen=True)
class PGDConfig(_PGDSettings):
    """Exact PGD settings, recorded next to the numbers they produce (``to_dict()``).

    Defaults are the paper's CIFAR evaluation: eps 8/255, step 2/255, 20 steps, CE, one restart.
    ``eps`` and ``step_size`` also accept strings such as ``"8/255"``.

    Example:
        >>> config = PGDConfig(eps="8/255", step_size="2/255", steps=20, loss="cw")
        >>> x_adv = config(model, x, y, generator=0)
        >>> config.name
        'pgd-20-cw'
    """

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    loss: str = "ce"
    restarts: int = 1
    random_start: bool = True

    def __post_init__(self) -> None:
        self._check_pgd_fields()

    @property
    def name(self) -> str:
        """``pgd-<steps>-<loss>``, with ``-r<restarts>`` when more than one restart is used."""
        return self._pgd_name

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON-ready values, with eps and step size also on the 0..255 scale for reading."""
        return {
            "attack": "pgd",
            "name": self.name,
            "norm": "Linf",
            **asdict(self),
            "eps_255": round(self.eps * 255, 4),
            "step_size_255": round(self.step_size * 255, 4),
        }

    def __call__(
        self,
        model: Classifier,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | int | None = None,
    ) -> torch.Tensor:
        """:func:`pgd` with these settings."""
        return pgd(model, x, y, generator=generator, **asdict(self))


#: What :func:`robust_accuracy` takes: settings, or ``attack(model, x, y) -> x_adv | AttackResult``.
Attack = PGDConfig | Callable[[Classifier, torch.Tensor, torch.Tensor], "torch.Tensor | AttackResult"]


def _batches(
    data: tuple[torch.Tensor, torch.Tensor] | Iterable, batch_size: int
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(item, torch.Tensor) for item in data)
        and data[0].ndim == 4
    ):
        images, labels = data
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise InputError(
                f"The labels must have shape ({images.shape[0]},) to match the images, "
                f"not {tuple(labels.shape)}."
            )
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]
        return
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InputError(
                "Each batch of the data must be an (images, labels) pair, as a DataLoader yields."
            )
        yield batch[0], batch[1]


def robust_accuracy(
    model: Classifier,
    data: tuple[torch.Tensor, torch.Tensor] | Iterable,
    attack: Attack | None = None,
    *,
    batch_size: int = 256,
    generator: torch.Generator | int | None = None,
    max_examples: int | None = None,
    progress: bool = False,
) -> tuple[int, int]:
    """Count the images a model classifies correctly both clean and under ``attack``.

    Args:
        model: classifier in eval mode (float (N, C, H, W) in [0, 1] -> logits).
        data: an ``(images, labels)`` pair of tensors (split into ``batch_size`` batches), or any
            iterable of ``(images, labels)`` batches such as a ``DataLoader``.
        attack: ``None`` (clean accuracy), a :class:`PGDConfig`, or a callable
            ``attack(model, x, y)`` returning adversarial images or an :class:`AttackResult`.
        batch_size: batch size when ``data`` is a pair of tensors.
        generator: seed or generator for a :class:`PGDConfig`'s random starts (one stream for the run).
        max_examples: stop after this many images (the last batch is cut).
        progress: show a progress bar (tqdm) over batches.

    Returns:
        ``(correct, total)``: robust accuracy is ``correct / total``.

    Example:
        >>> correct, total = robust_accuracy(model.eval(), (x, y), PGDConfig(eps="8/255"), generator=0)
    """
    check_int(batch_size, "The batch size", minimum=1)
    check_optional_int(max_examples, "max_examples", minimum=1)
    generator = as_generator(generator)
    batches = _batches(data, batch_size)
    if progress:
        batches = tqdm(batches, desc="robust accuracy", unit="batch")
    correct = total = 0
    for images, labels in batches:
        if max_examples is not None:
            images, labels = images[: max_examples - total], labels[: max_examples - total]
        images, labels = check_attack_inputs(images, labels)
        if attack is None:
            _, ok = correctness(model, images, images, labels)
        elif isinstance(attack, PGDConfig):
            _, ok = correctness(model, images, attack(model, images, labels, generator=generator), labels)
        else:
            outcome = attack(model, images, labels)
            if isinstance(outcome, AttackResult):
                ok = outcome.robust_correct
            else:
                _, ok = correctness(model, images, outcome, labels)
        correct += int(ok.sum())
        total += int(labels.shape[0])
        if max_examples is not None and total >= max_examples:
            break
    if total == 0:
        raise InputError("The data to evaluate holds no images.")
    return correct, total
