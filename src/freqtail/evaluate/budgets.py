"""The L-inf budget of the robust suites (:class:`Budget`): the paper's defaults by image size
(:func:`default_budget`) and the one rule that picks a run's budget (:func:`resolve_budget`).

Budgets (paper §4.3): eps 8/255 with step 2/255 for CIFAR-size images; 4/255 with step 1/255 for
ImageNet-size images (the smaller image side at least :data:`IMAGENET_SIZE`). Nothing here imports
torch: grid specs resolve their eps sweeps with it before the library loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Appended to a budget's source when ``--step-size`` set the step of a budget from elsewhere.
STEP_GIVEN = "; step from --step-size"
#: Images whose smaller side is at least this are "ImageNet-size" (budget 4/255, step 1/255).
IMAGENET_SIZE = 128


@dataclass(frozen=True)
class Budget:
    """The L-inf budget of the robust suites and where it came from (recorded next to the numbers).

    Attributes:
        eps: budget on the [0, 1] scale.
        step_size: PGD step on the [0, 1] scale.
        source: where eps came from: ``"--eps"`` (given by the caller), ``"run config (...)"`` or
            ``"paper default for HxW images (...)"``; ``"; step from --step-size"`` is appended when
            the step was given separately from a budget it does not come with.
    """

    eps: float
    step_size: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "eps_255": round(self.eps * 255, 4),
            "step_size": self.step_size,
            "step_size_255": round(self.step_size * 255, 4),
            "source": self.source,
        }


def default_budget(image_size: tuple[int, int] | int) -> Budget:
    """The paper's test budget for images of ``image_size`` (H, W): 8/255 & 2/255, or 4/255 & 1/255."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    if min(h, w) >= IMAGENET_SIZE:
        return Budget(4 / 255, 1 / 255, f"paper default for {h}x{w} images (ImageNet-size)")
    return Budget(8 / 255, 2 / 255, f"paper default for {h}x{w} images (CIFAR-size)")


def resolve_budget(
    image_size: tuple[int, int] | int,
    eps: float | None = None,
    step_size: float | None = None,
    training_budget: Budget | None = None,
) -> Budget:
    """The budget to evaluate at: ``eps`` if given, else the run's training budget, else the paper's.

    Args:
        image_size: (H, W) of the test images.
        eps: a budget on the [0, 1] scale already checked at the door
            (:func:`freqtail.attacks.parse_eps`), or None.
        step_size: PGD step on the [0, 1] scale; default ``eps / 4`` when eps is given (2/255 at
            8/255, as in the paper), else the training budget's or the paper's step.
        training_budget: the budget an adversarially trained run (pgd-at, trades, mart) was trained
            at, used when ``eps`` is not given; None for any other run.
    """
    if eps is not None:
        return Budget(eps, step_size if step_size is not None else eps / 4, "--eps")
    budget = training_budget if training_budget is not None else default_budget(image_size)
    if step_size is not None:
        return Budget(budget.eps, step_size, budget.source + STEP_GIVEN)
    return budget
