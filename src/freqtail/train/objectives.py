"""Training objectives: ERM, PGD-AT, TRADES, MART and AugMix's JSD consistency (with a BaSS branch).

Every objective is a callable ``objective(forward, model, inputs, y, noise_seeds) -> ObjectiveOutput``:

* ``forward(*xs) -> tuple of logits`` runs the model in training mode (the trainer passes the
  DistributedDataParallel wrapper here, so several inputs still make one synchronised forward);
* ``model`` is the plain model, used to craft adversarial examples (no gradient synchronisation);
* ``inputs`` is a float (N, C, H, W) batch in [0, 1] (AugMix: a tuple of three such batches);
* ``noise_seeds`` are int64 (N,) per-sample seeds for attack starts (None: torch's global RNG).

The loss terms are also exposed as plain functions of logits (:func:`trades_terms`,
:func:`mart_terms`, :func:`jsd_consistency`) so they can be checked by hand.

**Why the training attack is not** :func:`freqtail.attacks.pgd`: that function is an *evaluation*
attack. For each image it returns the first iterate the model misclassifies (a misclassified clean
image is returned unchanged), and it only maximises cross-entropy or the CW margin. Adversarial
training (Madry et al. 2018; TRADES; MART) trains on the *last* iterate of the inner maximisation,
for every image, and TRADES maximises a KL divergence. :func:`linf_ascent` is that inner
maximisation: projected signed-gradient ascent of any per-batch loss, returning the final iterate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from freqtail.errors import ConfigError
from freqtail.train.rng import per_sample_noise

#: Spread of the Gaussian start of TRADES and MART (their published code: 0.001 * N(0, 1)).
SMALL_START_STD = 0.001
#: Numerical guards of MART's published loss, kept so values match it.
MART_EPS_LOG = 1e-12
MART_ONE = 1.0001
MART_WEIGHT_ONE = 1.0000001
#: AugMix's floor on the mixture probabilities before the log (published code).
JSD_FLOOR = 1e-7


@dataclass
class ObjectiveOutput:
    """What one training step's objective returns.

    Attributes:
        loss: scalar tensor to minimise.
        logits: (N, K) logits whose accuracy the trainer reports as ``train_acc`` (see each objective).
        terms: named detached scalar parts of the loss, averaged per epoch in the metrics.
        x_adv: the adversarial training examples, for adversarial objectives.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    x_adv: torch.Tensor | None = None


Forward = Callable[..., tuple[torch.Tensor, ...]]


def plain_forward(model: nn.Module) -> Forward:
    """``forward(*xs)`` for a plain model: one call per input."""
    return lambda *xs: tuple(model(x) for x in xs)


class Branches(nn.Module):
    """``forward(*xs) -> tuple(model(x) for x in xs)``: wraps the model for DistributedDataParallel,
    so that objectives needing several forward passes (TRADES, MART) still make one DDP call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(x) for x in xs)


@contextlib.contextmanager
def model_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Temporarily put ``model`` in training (True) or eval (False) mode."""
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


def linf_ascent(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    start: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
) -> torch.Tensor:
    """Projected signed-gradient ascent in the L-inf ball: the inner maximisation of adversarial training.

    ``x_0 = clip(start)``, ``x_{t+1} = clip(x_t + step_size * sign(grad loss_fn(x_t)))`` where ``clip``
    projects onto ``[x - eps, x + eps] ∩ [0, 1]``; returns the final iterate ``x_steps`` (detached).

    Args:
        loss_fn: float (N, C, H, W) -> scalar; summed over the batch so each example's gradient is its own.
        x: float (N, C, H, W) clean images in [0, 1].
        start: the first iterate before projection (e.g. ``x`` plus random noise).
        eps, step_size: budget and step on the [0, 1] scale; steps: number of steps (0 = projected start).
    """
    x = x.detach()
    lower = (x - eps).clamp(min=0.0)
    upper = (x + eps).clamp(max=1.0)
    x_adv = torch.minimum(torch.maximum(start.detach(), lower), upper)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(x_adv)
            (grad,) = torch.autograd.grad(loss, x_adv)
        step = torch.nan_to_num(grad, nan=0.0).sign()
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + step_size * step, lower), upper)
    return x_adv.detach()


def _full(z: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32 (autocast may give float16 / bfloat16) for the loss arithmetic."""
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def _noise(x: torch.Tensor, seeds: torch.Tensor | None, kind: str) -> torch.Tensor:
    if seeds is None:
        if kind == "uniform":
            return torch.rand_like(x) * 2 - 1
        return torch.randn_like(x)
    return per_sample_noise(seeds.cpu(), tuple(x.shape[1:]), kind).to(x.device, x.dtype)


def trades_terms(
    logits_natural: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """TRADES (Zhang et al. 2019): ``(natural, robust)`` with loss = natural + beta * robust.

    natural = mean over the batch of CE(f(x), y); robust = (1/N) sum_i KL(p(x_i) || p(x_adv_i)),
    with ``p = softmax``. Gradients flow through both distributions, as in the published code.
    """
    natural = F.cross_entropy(_full(logits_natural), y)
    robust = F.kl_div(
        F.log_softmax(_full(logits_adv), dim=1),
        F.softmax(_full(logits_natural), dim=1),
        reduction="batchmean",
    )
    return natural, robust


def mart_terms(
    logits_natural: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MART (Wang et al. 2020): ``(boosted_ce, weighted_kl)`` with loss = boosted_ce + beta * weighted_kl.

    boosted_ce = mean_i [ CE(f(x_adv_i), y_i) - log(1.0001 - max_{k != y_i} p_k(x_adv_i) + 1e-12) ];
    weighted_kl = (1/N) sum_i KL(p(x_i) || p(x_adv_i)) * (1.0000001 - p_{y_i}(x_i)), the KL taken with
    log(p(x_adv) + 1e-12). The small constants are the published code's numerical guards.
    """
    logits_natural, logits_adv = _full(logits_natural), _full(logits_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    runner_up = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    boosted = F.cross_entropy(logits_adv, y) + F.nll_loss(
        torch.log(MART_ONE - adv_probs + MART_EPS_LOG), runner_up
    )
    nat_probs = F.softmax(logits_natural, dim=1)
    true_probs = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + MART_EPS_LOG), nat_probs, reduction="none").sum(dim=1)
    weighted = (kl * (MART_WEIGHT_ONE - true_probs)).sum() / y.shape[0]
    return boosted, weighted


def jsd_consistency(*logits: torch.Tensor) -> torch.Tensor:
    """AugMix's Jensen-Shannon consistency: ``(1/B) sum_b KL(p_b || M)`` with ``M = mean_b p_b``.

    Each KL is averaged over the batch; ``M`` is clamped to [1e-7, 1] before its log (published code).
    Zero when all branches predict the same distribution, positive otherwise.
    """
    probs = [F.softmax(_full(z), dim=1) for z in logits]
    log_mixture = torch.clamp(torch.stack(probs).mean(dim=0), JSD_FLOOR, 1.0).log()
    return sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probs) / len(probs)


class Objective:
    """Base class; subclasses set ``name`` and ``adversarial`` and implement ``__call__``."""

    name = "objective"
    adversarial = False

    def __call__(
        self,
        forward: Forward,
        model: nn.Module,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        y: torch.Tensor,
        noise_seeds: torch.Tensor | None = None,
    ) -> ObjectiveOutput:
        raise NotImplementedError


class ERM(Objective):
    """Empirical risk minimisation: CE on the (augmented) training images; train_acc on them."""

    name = "erm"

    def __call__(self, forward, model, inputs, y, noise_seeds=None):
        (logits,) = forward(inputs)
        loss = F.cross_entropy(_full(logits), y)
        return ObjectiveOutput(loss, logits, {"ce": loss.detach()})


@dataclass
class _Attack:
    eps: float
    step_size: float
    steps: int
    random_start: bool = True
    attack_bn: str = "eval"

    def craft(self, model, x, seeds, loss_fn, start_kind: str) -> torch.Tensor:
        """Run :func:`linf_ascent` with the objective's start, model mode and budget."""
        if self.random_start:
            scale = self.eps if start_kind == "uniform" else SMALL_START_STD
            start = x + scale * _noise(x, seeds, start_kind)
        else:
            start = x
        with model_mode(model, self.attack_bn == "train"):
            return linf_ascent(loss_fn, x, start, eps=self.eps, step_size=self.step_size, steps=self.steps)


class PGDAT(Objective):
    """PGD adversarial training (Madry et al. 2018): CE on the last PGD iterate; train_acc on it.

    Start: uniform in the eps-ball (``random_start``), then ``steps`` signed-gradient steps of the
    cross-entropy, projected onto ``[x - eps, x + eps] ∩ [0, 1]``.
    """

    name = "pgd-at"
    adversarial = True

    def __init__(self, eps, step_size, steps, random_start=True, attack_bn="eval") -> None:
        self.attack = _Attack(eps, step_size, steps, random_start, attack_bn)

    def __call__(self, forward, model, inputs, y, noise_seeds=None):
        x = inputs
        x_adv = self.attack.craft(
            model, x, noise_seeds, lambda z: F.cross_entropy(_full(model(z)), y, reduction="sum"), "uniform"
        )
        (logits,) = forward(x_adv)
        loss = F.cross_entropy(_full(logits), y)
        return ObjectiveOutput(loss, logits, {"ce_adv": loss.detach()}, x_adv)


class TRADES(Objective):
    """TRADES: natural CE + beta * KL(p(x) || p(x_adv)); x_adv maximises that KL. train_acc on x."""

    name = "trades"
    adversarial = True

    def __init__(self, eps, step_size, steps, beta=6.0, random_start=True, attack_bn="eval") -> None:
        self.attack = _Attack(eps, step_size, steps, random_start, attack_bn)
        self.beta = float(beta)

    def __call__(self, forward, model, inputs, y, noise_seeds=None):
        x = inputs
        with torch.no_grad(), model_mode(model, self.attack.attack_bn == "train"):
            p_natural = F.softmax(_full(model(x)), dim=1)

        def kl_to_natural(z: torch.Tensor) -> torch.Tensor:
            return F.kl_div(F.log_softmax(_full(model(z)), dim=1), p_natural, reduction="sum")

        x_adv = self.attack.craft(model, x, noise_seeds, kl_to_natural, "normal")
        logits_natural, logits_adv = forward(x, x_adv)
        natural, robust = trades_terms(logits_natural, logits_adv, y)
        loss = natural + self.beta * robust
        return ObjectiveOutput(
            loss, logits_natural, {"natural": natural.detach(), "robust": robust.detach()}, x_adv
        )


class MART(Objective):
    """MART: boosted CE on x_adv + beta * KL weighted by (1 - p_y(x)); x_adv maximises CE.

    train_acc is measured on x_adv.
    """

    name = "mart"
    adversarial = True

    def __init__(self, eps, step_size, steps, beta=5.0, random_start=True, attack_bn="eval") -> None:
        self.attack = _Attack(eps, step_size, steps, random_start, attack_bn)
        self.beta = float(beta)

    def __call__(self, forward, model, inputs, y, noise_seeds=None):
        x = inputs
        x_adv = self.attack.craft(
            model, x, noise_seeds, lambda z: F.cross_entropy(_full(model(z)), y, reduction="sum"), "normal"
        )
        logits_natural, logits_adv = forward(x, x_adv)
        boosted, weighted = mart_terms(logits_natural, logits_adv, y)
        loss = boosted + self.beta * weighted
        terms = {"boosted_ce": boosted.detach(), "weighted_kl": weighted.detach()}
        return ObjectiveOutput(loss, logits_adv, terms, x_adv)


class AugMixJSD(Objective):
    """AugMix (Hendrycks et al. 2020): CE on the clean branch + lambda * JSD over the three branches.

    ``inputs`` is ``(x_clean, x_augmix1, x_augmix2)`` from :class:`freqtail.train.augmix.AugMixDataset`
    (with ``bass_branch``, ``x_augmix1 = AugMix(BaSS(x))``, paper §4.4). The three branches go
    through the model as one concatenated batch, as in the published code. train_acc on the clean branch.
    """

    name = "augmix"

    def __init__(self, jsd_lambda: float = 12.0) -> None:
        self.jsd_lambda = float(jsd_lambda)

    def __call__(self, forward, model, inputs, y, noise_seeds=None):
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 3:
            raise ConfigError(
                "The augmix objective needs (clean, augmix1, augmix2) inputs from AugMixDataset."
            )
        n = y.shape[0]
        (logits_all,) = forward(torch.cat(list(inputs), dim=0))
        clean, aug1, aug2 = logits_all[:n], logits_all[n : 2 * n], logits_all[2 * n :]
        ce = F.cross_entropy(_full(clean), y)
        jsd = jsd_consistency(clean, aug1, aug2)
        loss = ce + self.jsd_lambda * jsd
        return ObjectiveOutput(loss, clean, {"ce": ce.detach(), "jsd": jsd.detach()})


def build_objective(config) -> Objective:
    """The objective a :class:`freqtail.train.config.TrainConfig` names, with its settings."""
    name = config.objective_name
    if name == "erm":
        return ERM()
    if name == "augmix":
        return AugMixJSD(config.jsd_lambda)
    attack = dict(
        eps=config.eps_value,
        step_size=config.step_size_value,
        steps=config.attack_steps,
        random_start=config.random_start,
        attack_bn=config.attack_bn,
    )
    if name == "pgd-at":
        return PGDAT(**attack)
    if name == "trades":
        return TRADES(beta=config.beta_value, **attack)
    if name == "mart":
        return MART(beta=config.beta_value, **attack)
    raise ConfigError(f"Unknown objective {config.objective!r}.")  # pragma: no cover - config validates
