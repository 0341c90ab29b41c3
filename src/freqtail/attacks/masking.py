"""A gradient-masking check: do gradient attacks see what a gradient-free attack sees?

A defence can look robust to PGD only because its gradients are useless (zero, shattered by
quantisation, saturated), not because it is robust: the classic signs (Athalye et al. 2018, Carlini
et al. 2019, "On Evaluating Adversarial Robustness") are that a black-box attack succeeds where the
gradient attack fails, and that an unbounded-looking budget does not drive accuracy to zero.
:func:`gradient_masking_check` runs three cheap probes on the correctly classified images:

(a) PGD at ``eps`` versus Square (``pyautoattack.square.SquareAttack``, gradient-free) at the same
    ``eps``: flagged when Square fools more than a small count of images that PGD misses;
(b) PGD at a large budget (``large_eps``, default :data:`DEFAULT_LARGE_EPS`, more steps): flagged
    when accuracy does not fall to about zero;
(c) the input gradient of the CW margin at the clean images: flagged when it is exactly zero for
    more than a small count of images.

The verdict is one of four states (:func:`verdict_state`, the only place that decides it):

* ``"too-few-images"`` — fewer than ``min_judged`` (default :data:`MIN_JUDGED_IMAGES`) correctly
  classified images: the probes are not run and there is no verdict (a few flipped images out of 8
  say nothing);
* ``"possible-masking"`` — enough images and at least one probe fired;
* ``"no-sign"`` — enough images and no probe fired;
* ``"not-run"`` — the check was not run at all (used by callers that skip it).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pyautoattack.square import SquareAttack

from freqtail.attacks.common import (
    Classifier,
    check_attack_inputs,
    check_logits,
    margin_loss,
    model_device,
    require_autograd,
    warn_if_training,
)
from freqtail.attacks.eps import check_eps
from freqtail.attacks.masking_verdicts import (
    DEFAULT_LARGE_EPS,
    DEFAULT_LARGE_EPS_STEPS,
    DEFAULT_LARGE_EPS_TOLERANCE,
    DEFAULT_PGD_STEPS,
    DEFAULT_SQUARE_QUERIES,
    DEFAULT_TOLERANCE,
    FLAG_LARGE_EPS,
    FLAG_SQUARE,
    FLAG_ZERO_GRADIENT,
    MIN_JUDGED_IMAGES,
    PROBES,
    STATE_MASKED,
    STATE_NO_SIGN,
    STATE_TOO_FEW,
    verdict_state,
)
from freqtail.attacks.pgd import pgd
from freqtail.checks import check_int, check_number, check_seed
from freqtail.errors import InputError
from freqtail.progress import progress_bar


@dataclass
class MaskingReport:
    """What the gradient-masking check found; ``summary`` says it in words, ``to_dict()`` for JSON.

    Counts are over the ``considered`` images: those the model classifies correctly when clean (the
    images the check *judges*). When ``state`` is ``"too-few-images"`` the probes did not run and
    their counts are None.
    """

    eps: float
    total: int
    considered: int
    minimum: int
    state: str
    bass_front: bool
    pgd_steps: int
    pgd_fooled: int | None
    square_queries: int
    square_fooled: int | None
    square_only: list[int] | None
    allowed_count: int | None
    large_eps: float
    large_eps_steps: int
    large_eps_still_correct: int | None
    large_eps_allowed: int | None
    zero_gradient: int | None
    flags: list[str] = field(default_factory=list)
    summary: str = ""
    seconds: float = 0.0

    @property
    def masked(self) -> bool:
        """True when enough images were judged and a probe found a sign of gradient masking."""
        return self.state == STATE_MASKED

    @property
    def judged(self) -> bool:
        """True when the check reached a verdict (enough correctly classified images)."""
        return self.state in (STATE_MASKED, STATE_NO_SIGN)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "masked": self.masked, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class MaskingCheckConfig:
    """The settings of one gradient-masking check (the arguments of :func:`gradient_masking_check`).

    A check run from a config records exactly what ran with :meth:`to_settings`, so a record can
    never restate a default that differs from the one the check used.
    """

    eps: float
    step_size: float | None = None
    pgd_steps: int = DEFAULT_PGD_STEPS
    square_queries: int = DEFAULT_SQUARE_QUERIES
    large_eps: float = DEFAULT_LARGE_EPS
    large_eps_steps: int = DEFAULT_LARGE_EPS_STEPS
    tolerance: float = DEFAULT_TOLERANCE
    large_eps_tolerance: float = DEFAULT_LARGE_EPS_TOLERANCE
    seed: int = 0
    min_judged: int = MIN_JUDGED_IMAGES
    bass_front: bool = False

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`gradient_masking_check`."""
        return asdict(self)

    def to_settings(self) -> dict[str, Any]:
        """The ``settings`` of a gradient-masking record (the keys results.json has always stored)."""
        return {
            "eps": self.eps,
            "eps_255": round(self.eps * 255, 4),
            "step_size": self.step_size,
            "pgd_steps": self.pgd_steps,
            "square_queries": self.square_queries,
            "large_eps": self.large_eps,
            "large_eps_steps": self.large_eps_steps,
            "seed": self.seed,
            "min_judged": self.min_judged,
            "bass_front": self.bass_front,
        }


def _budget(eps: float) -> str:
    return f"{eps:.4g} ({eps * 255:.3g}/255)"


def _advice(bass_front: bool) -> str:
    if bass_front:
        return (
            "Gradient-based robustness numbers for this model are not trustworthy: this model has a BaSS "
            "front, so attack it end-to-end with differentiable components (straight-through rounding) "
            "and check with AutoAttack standard."
        )
    return (
        "Gradient-based robustness numbers for this model are not trustworthy: check them with "
        "AutoAttack standard and an attack adapted to the defence."
    )


def _summary(report: MaskingReport) -> str:
    judged = (
        f"{report.considered} correctly classified of {report.total} checked images "
        f"(eps {_budget(report.eps)})"
    )
    if report.state == STATE_TOO_FEW:
        return (
            f"Too few images to judge: {judged}; the check needs at least {report.minimum} correctly "
            "classified images, so it gives no verdict (check more images)."
        )
    findings = [
        f"PGD-{report.pgd_steps} fooled {report.pgd_fooled} and Square ({report.square_queries} queries) "
        f"fooled {report.square_fooled}, {len(report.square_only or [])} of them missed by PGD "
        f"(allowed {report.allowed_count})",
        f"PGD-{report.large_eps_steps} at eps {report.large_eps:g} "
        f"left {report.large_eps_still_correct} correct "
        f"(allowed {report.large_eps_allowed})",
        f"{report.zero_gradient} images have an all-zero input gradient",
    ]
    if not report.flags:
        return f"No sign of gradient masking on {judged}: " + "; ".join(findings) + "."
    reasons = {
        FLAG_SQUARE: "a gradient-free attack finds adversarial examples that PGD misses",
        FLAG_LARGE_EPS: "a huge budget does not drive accuracy to zero",
        FLAG_ZERO_GRADIENT: "input gradients vanish",
    }
    return (
        f"Possible gradient masking on {judged} ("
        + "; ".join(reasons[flag] for flag in report.flags)
        + "): "
        + "; ".join(findings)
        + ". "
        + _advice(report.bass_front)
    )


def gradient_masking_check(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    pgd_steps: int = DEFAULT_PGD_STEPS,
    step_size: float | None = None,
    square_queries: int = DEFAULT_SQUARE_QUERIES,
    large_eps: float = DEFAULT_LARGE_EPS,
    large_eps_steps: int = DEFAULT_LARGE_EPS_STEPS,
    tolerance: float = DEFAULT_TOLERANCE,
    large_eps_tolerance: float = DEFAULT_LARGE_EPS_TOLERANCE,
    seed: int = 0,
    min_judged: int = MIN_JUDGED_IMAGES,
    bass_front: bool = False,
    progress: bool = False,
) -> MaskingReport:
    """Look for gradient masking on one batch (a few hundred images is plenty).

    Args:
        model: classifier in eval mode, float (N, C, H, W) in [0, 1] -> logits (N, K).
        x: float (N, C, H, W) clean images in [0, 1]; give images of every class (a seeded,
            class-stratified subset: :func:`freqtail.data.subsets.stratified_subset`).
        y: integer (N,) labels.
        eps: the budget whose robustness claim is being checked (on the [0, 1] scale).
        pgd_steps: steps of the PGD (cross-entropy) run compared with Square.
        step_size: PGD step; default ``eps / 4`` (2/255 at 8/255, as in the paper).
        square_queries: query budget of the Square attack.
        large_eps: the large budget of probe (b); ``2.5 * large_eps / large_eps_steps`` is its step.
        large_eps_steps: PGD steps at the large budget.
        tolerance: fraction of the considered images that may be flagged by probes (a) and (c)
            without raising a flag (at least 1 image is always allowed).
        large_eps_tolerance: fraction of the considered images that may stay correct in probe (b).
        seed: seed of PGD's random starts and of Square.
        min_judged: fewest correctly classified images to give a verdict; below it the probes are
            skipped and the state is ``"too-few-images"``.
        bass_front: the model has a BaSS front (the advice then names end-to-end, straight-through
            attacks).
        progress: a tqdm bar over the three probes (stderr).

    Returns:
        :class:`MaskingReport`; ``report.state`` is the verdict (module docstring), ``report.masked``
        is True only for ``"possible-masking"``.

    Example:
        >>> report = gradient_masking_check(model.eval(), x[:200], y[:200], eps=8 / 255)
        >>> print(report.state, report.considered, report.summary)
    """
    eps = check_eps(eps)
    large_eps = check_eps(large_eps, "large eps")
    step_size = eps / 4 if step_size is None else check_eps(step_size, "step size")
    check_int(pgd_steps, "The number of PGD steps", minimum=1)
    check_int(square_queries, "The number of Square queries", minimum=1)
    check_int(large_eps_steps, "The number of large-eps PGD steps", minimum=1)
    check_seed(seed, "The seed")
    check_int(min_judged, "The minimum number of judged images", minimum=1)
    tolerance = check_number(tolerance, "The tolerance fraction", minimum=0, maximum=1, open_max=True)
    large_eps_tolerance = check_number(
        large_eps_tolerance, "The large-eps tolerance fraction", minimum=0, maximum=1, open_max=True
    )
    if large_eps <= eps:
        raise InputError(f"The large eps ({large_eps:g}) must be larger than eps ({eps:g}).")
    x, y = check_attack_inputs(x, y)
    require_autograd("The gradient-masking check")
    warn_if_training(model, "The gradient-masking check")
    began = time.perf_counter()
    device = model_device(model, x.device)
    x, y = x.to(device), y.to(device)

    def correct(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(images).argmax(dim=1) == y

    with torch.no_grad():
        logits = model(x)
    check_logits(logits, y)
    clean = logits.argmax(dim=1) == y
    considered = int(clean.sum())
    report = MaskingReport(
        eps=eps,
        total=int(y.shape[0]),
        considered=considered,
        minimum=min_judged,
        state=verdict_state(considered, [], min_judged),
        bass_front=bool(bass_front),
        pgd_steps=pgd_steps,
        pgd_fooled=None,
        square_queries=square_queries,
        square_fooled=None,
        square_only=None,
        allowed_count=None,
        large_eps=large_eps,
        large_eps_steps=large_eps_steps,
        large_eps_still_correct=None,
        large_eps_allowed=None,
        zero_gradient=None,
    )
    if report.state == STATE_TOO_FEW:
        report.summary = _summary(report)
        report.seconds = time.perf_counter() - began
        return report

    bar = progress_bar(total=len(PROBES), desc="gradient-masking check", unit="probe", enabled=progress)
    with bar:
        bar.set_postfix_str(PROBES[0])
        x_pgd = pgd(model, x, y, eps=eps, step_size=step_size, steps=pgd_steps, generator=seed)
        pgd_fooled = clean & ~correct(x_pgd)
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=rng_devices):
            square = SquareAttack(
                model,
                norm="Linf",
                n_queries=square_queries,
                eps=eps,
                p_init=0.8,
                n_restarts=1,
                seed=seed,
                verbose=False,
                device=device,
                resc_schedule=True,
            )
            x_square = square.perturb(x, y).clamp(0, 1)
        square_fooled = clean & ~correct(x_square)
        square_only = (square_fooled & ~pgd_fooled).nonzero().squeeze(1).tolist()
        bar.update(1)

        bar.set_postfix_str(PROBES[1])
        x_large = pgd(
            model,
            x,
            y,
            eps=large_eps,
            step_size=min(2.5 * large_eps / large_eps_steps, 0.999),
            steps=large_eps_steps,
            generator=seed,
        )
        still_correct = int((clean & correct(x_large)).sum())
        bar.update(1)

        bar.set_postfix_str(PROBES[2])
        probe = x.clone().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(margin_loss(model(probe), y).sum(), probe)
        zero_gradient = int((clean & (gradient.flatten(1).abs().amax(dim=1) == 0)).sum())
        bar.update(1)

    allowed = max(1, math.floor(tolerance * considered))
    large_allowed = math.floor(large_eps_tolerance * considered)
    flags = []
    if len(square_only) > allowed:
        flags.append(FLAG_SQUARE)
    if still_correct > large_allowed:
        flags.append(FLAG_LARGE_EPS)
    if zero_gradient > allowed:
        flags.append(FLAG_ZERO_GRADIENT)
    report.pgd_fooled = int(pgd_fooled.sum())
    report.square_fooled = int(square_fooled.sum())
    report.square_only = square_only
    report.allowed_count = allowed
    report.large_eps_still_correct = still_correct
    report.large_eps_allowed = large_allowed
    report.zero_gradient = zero_gradient
    report.flags = flags
    report.state = verdict_state(considered, flags, min_judged)
    report.summary = _summary(report)
    report.seconds = time.perf_counter() - began
    return report
