"""In-training evaluation: the test (and held-out) accuracy measured at the end of an epoch.

It follows the evaluation package's rules, so that a number means the same in training and in
``freqtail evaluate``:

* the images of the per-epoch robust accuracy are ``robust_eval_examples`` images chosen by
  :func:`freqtail.data.subsets.choose_subset` (seeded, class-stratified, sorted) from the run's seed
  (test images) or from a seed derived from it (held-out images of ``selection: val``);
* the evaluated images are cut into global batches of ``eval_batch_size``
  (:func:`freqtail.evaluate.sharding.global_batches`), batch ``b`` runs on rank ``b % world_size``
  (:func:`~freqtail.evaluate.sharding.rank_batches`) and its attack's random start is seeded with
  :func:`~freqtail.evaluate.sharding.batch_seed` — so any number of processes gives the counts of one.

The counts of all ranks are summed (exact); the model selection (``best``) reads the resulting record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from freqtail import distributed as D
from freqtail.attacks import PGDConfig, robust_accuracy
from freqtail.data.loader_workers import loader_workers
from freqtail.data.subsets import choose_subset
from freqtail.errors import ConfigError
from freqtail.evaluate.sharding import batch_seed, global_batches, rank_batches
from freqtail.train.config import TrainConfig
from freqtail.train.rng import derive_seed


def robust_enabled(config: TrainConfig) -> bool:
    """Whether the epochs measure robust accuracy (adversarial objective, ``robust_eval_examples > 0``)."""
    return config.adversarial and config.robust_eval_examples > 0


def best_metric_name(config: TrainConfig) -> str:
    """The record field that picks ``best``: ``test_*``, or ``val_*`` with ``selection: val``.

    Raises:
        ConfigError: ``best_metric: test_robust_acc`` in a run that measures no robust accuracy.
    """
    if config.best_metric != "auto":
        if config.best_metric == "test_robust_acc" and not robust_enabled(config):
            raise ConfigError(
                "best_metric test_robust_acc needs an adversarial objective and robust_eval_examples > 0."
            )
        name = config.best_metric
    else:
        name = "test_robust_acc" if robust_enabled(config) else "test_acc"
    return "val_" + name.removeprefix("test_") if config.selection == "val" else name


@dataclass(frozen=True)
class EvalSet:
    """One evaluated dataset: every image for clean accuracy, ``robust`` (sorted int64 (n,)
    positions) for robust accuracy, whose batch ``b`` is attacked from seed ``batch_seed(seed, b)``."""

    data: Dataset
    robust: np.ndarray
    seed: int

    @classmethod
    def choose(cls, data: Dataset, config: TrainConfig, seed: int) -> EvalSet:
        n = config.robust_eval_examples if robust_enabled(config) else 0
        robust = choose_subset(data, n, seed).indices if n else np.zeros(0, dtype=np.int64)
        return cls(data, robust, seed)


@dataclass(frozen=True)
class EvalPlan:
    """What the end of an epoch measures and which field chooses ``best``.

    Attributes:
        test: the test images.
        val: the held-out training images of ``selection: val``, or None.
        attack: the PGD attack of the robust accuracy.
        best_metric: the record field that picks ``best``.
        selected_on: ``{"rule": "best", "split", "n", "metric"}``: the images that choose ``best``.
    """

    test: EvalSet
    val: EvalSet | None
    attack: PGDConfig
    best_metric: str
    selected_on: dict[str, Any]


def eval_plan(config: TrainConfig, test_data: Dataset, val_data: Dataset | None) -> EvalPlan:
    """The :class:`EvalPlan` of a run (test images from the run's seed, held-out ones from a derived one)."""
    test = EvalSet.choose(test_data, config, config.seed)
    val = (
        EvalSet.choose(val_data, config, derive_seed(config.seed, "val", 1)) if val_data is not None else None
    )
    metric = best_metric_name(config)
    chooser = val if config.selection == "val" else test
    n = len(chooser.robust) if metric.endswith("robust_acc") else len(chooser.data)
    return EvalPlan(
        test=test,
        val=val,
        attack=PGDConfig(
            eps=config.eps_value, step_size=config.step_size_value, steps=config.robust_eval_steps
        ),
        best_metric=metric,
        selected_on={"rule": "best", "split": config.selection, "n": n, "metric": metric},
    )


def _measure(
    runner: torch.nn.Module,
    evaluated: EvalSet,
    attack: PGDConfig,
    config: TrainConfig,
    context: D.DistContext,
) -> list[float]:
    """``[correct, total, robust correct, robust total]`` over ``evaluated``, summed over ranks."""
    batches = global_batches(np.arange(len(evaluated.data)), config.eval_batch_size)
    loader = DataLoader(
        evaluated.data,
        batch_sampler=[batch.tolist() for _, batch in rank_batches(batches, context)],
        num_workers=loader_workers(config.num_workers),
    )
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(context.device, non_blocking=True), y.to(context.device, non_blocking=True)
            correct += int((runner(x).argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    robust_correct = robust_total = 0
    for number, batch in rank_batches(global_batches(evaluated.robust, config.eval_batch_size), context):
        items = [evaluated.data[int(i)] for i in batch]
        x = torch.stack([item[0] for item in items])
        y = torch.tensor([item[1] for item in items])
        ok, n = robust_accuracy(
            runner, (x, y), attack, batch_size=len(batch), generator=batch_seed(evaluated.seed, number)
        )
        robust_correct += ok
        robust_total += n
    return D.all_reduce_sum([correct, total, robust_correct, robust_total], context)


def evaluate_epoch(
    model: torch.nn.Module,
    runner: torch.nn.Module,
    plan: EvalPlan,
    config: TrainConfig,
    context: D.DistContext,
) -> dict[str, Any]:
    """Test metrics (``test_acc``, ...) and, with ``selection: val``, held-out ones (``val_acc``, ...).

    ``model`` owns the weights (rank 0's are copied to every rank first); ``runner`` runs them, in
    eval mode here and back in train mode on return.
    """
    D.broadcast_module_state(model, context)
    runner.eval()
    correct, total, robust_correct, robust_total = _measure(runner, plan.test, plan.attack, config, context)
    result: dict[str, Any] = {"test_acc": correct / total, "test_images": int(total)}
    if len(plan.test.robust):
        result["test_robust_acc"] = robust_correct / robust_total
        result["robust_examples"] = int(robust_total)
        result["robust_attack"] = (
            f"{plan.attack.name} eps={config.eps} step={config.step_size} "
            f"on {len(plan.test.robust)} fixed test images"
        )
    if plan.val is not None:
        correct, total, robust_correct, robust_total = _measure(
            runner, plan.val, plan.attack, config, context
        )
        result.update(val_acc=correct / total, val_images=int(total))
        if len(plan.val.robust):
            result.update(val_robust_acc=robust_correct / robust_total, val_robust_examples=int(robust_total))
    runner.train()
    return result
