"""An evaluation checked before it starts: a request joined with what it evaluates.

``plan_evaluation(request, target)`` checks the :class:`~freqtail.evaluate.request.EvaluationRequest`
against its :class:`~freqtail.evaluate.request.EvaluationTarget` (the threat models that apply, the
class count, AutoAttack's class minimum, the band boundary's range, the -C folders) before any attack
starts, and returns the :class:`EvaluationPlan` the suites read; :func:`test_set` and
:func:`load_batches` give them the test images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import freqtail.evaluate.corruption_eval as ce
from freqtail.checks import check_int
from freqtail.data import build_dataset, canonical_name, dataset_info
from freqtail.data.loader_workers import loader_workers
from freqtail.data.subsets import check_subset_size
from freqtail.errors import CheckpointError, ConfigError, InputError
from freqtail.evaluate.budgets import Budget, resolve_budget
from freqtail.evaluate.request import EvaluationRequest, EvaluationTarget
from freqtail.evaluate.suites import BAND_SUITES
from freqtail.evaluate.threat_models import resolve_threat_models
from freqtail.spectrum import num_bands


@dataclass
class EvaluationPlan:
    """An evaluation checked before it starts: the request, its target and what they resolve to.

    Attributes:
        request: the caller's :class:`~freqtail.evaluate.request.EvaluationRequest`.
        target: the evaluated model's :class:`~freqtail.evaluate.request.EvaluationTarget`.
        dataset, num_classes, image_size: the test data.
        threat_models: the threat models that run, in order (the request's choice resolved against
            how the model was trained).
        budget: L-inf budget of the robust suites.
        band_boundary: the boundary band of the band suites, or None to measure it per threat model.
        corruption_sources: ``{threat model: CorruptionSource | None}`` (None = generate it).
        test_sets: the test sets built so far ``{None: raw, "dataset": BaSS-converted}``.
    """

    request: EvaluationRequest
    target: EvaluationTarget
    dataset: str
    num_classes: int
    image_size: tuple[int, int]
    threat_models: list[str]
    budget: Budget
    band_boundary: int | None = None
    corruption_sources: dict[str, ce.CorruptionSource | None] = field(default_factory=dict)
    test_sets: dict[str | None, Any] = field(default_factory=dict)

    @property
    def suites(self) -> tuple[str, ...]:
        return self.request.suites


def test_set(plan: EvaluationPlan, data_bass: str | None):
    """The test split the threat model uses (cached in ``plan.test_sets``)."""
    if data_bass not in plan.test_sets:
        plan.test_sets[data_bass] = build_dataset(
            plan.dataset, "test", plan.target.data_root, bass=data_bass, strength=plan.target.bass_strength
        )
    dataset = plan.test_sets[data_bass]
    if len(dataset) == 0:
        raise InputError(f"The {plan.dataset} test set holds no images; there is nothing to evaluate.")
    check_subset_size(plan.request.n, len(dataset), f"the {plan.dataset} test set")
    return dataset


def plan_evaluation(request: EvaluationRequest, target: EvaluationTarget) -> EvaluationPlan:
    """Check a request against what it evaluates and return the plan (no attack runs here).

    The request's own values were checked when it was built; here come the checks that need the
    target: threat models that apply to how the model was trained, the class count, AutoAttack's
    class minimum, the band boundary's range for the image size, an empty test set, the -C folders.

    Raises:
        FreqtailError subclasses, each one sentence: a threat model that does not apply, a
        class-count mismatch, an empty test set, a missing -C folder, a band boundary outside the
        bands or given without a band suite.
    """
    suites = request.suites
    threat_models = resolve_threat_models(request.threat_model, target.training_bass, target.has_front)
    dataset = target.dataset
    for prebuilt in target.test_sets.values():
        if len(prebuilt) == 0:
            raise InputError(f"The {dataset} test set holds no images; there is nothing to evaluate.")
        check_subset_size(request.n, len(prebuilt), f"the {dataset} test set")
    if None in target.test_sets:
        reference = target.test_sets[None]
        dataset = getattr(reference, "name", dataset)
        num_classes = int(getattr(reference, "num_classes", len(reference.classes)))
        image_size = tuple(reference[0][0].shape[-2:])
    else:
        dataset = canonical_name(dataset)
        info = dataset_info(dataset)
        num_classes, image_size = info.num_classes, tuple(info.image_size)
    if target.model_classes is not None and int(target.model_classes) != num_classes:
        raise CheckpointError(
            f"The model has {target.model_classes} output classes but the {dataset} test set has "
            f"{num_classes}; evaluate it on the dataset it was trained on."
        )
    if num_classes < 4 and {"aa", "aa-fast"} & set(suites):
        raise InputError(
            f"AutoAttack's targeted attacks need at least 4 classes and {dataset} has {num_classes}; "
            "use the pgd20 and cw suites instead."
        )
    budget = resolve_budget(image_size, request.eps, request.step_size, target.training_budget)
    band_boundary = request.band_boundary
    if band_boundary is not None:
        if not set(BAND_SUITES) & set(suites):
            raise ConfigError(
                "A band boundary (--band-boundary) applies only to the band suites "
                f"{' and '.join(BAND_SUITES)}; add one of them or leave the boundary out."
            )
        band_boundary = check_int(
            band_boundary,
            f"The band boundary (--band-boundary) for {image_size[0]}x{image_size[1]} images",
            minimum=0,
            maximum=num_bands(*image_size),
            error=ConfigError,
        )
    plan = EvaluationPlan(
        request=request,
        target=target,
        dataset=dataset,
        num_classes=num_classes,
        image_size=image_size,
        threat_models=threat_models,
        budget=budget,
        band_boundary=band_boundary,
        test_sets=dict(target.test_sets),
    )
    if "corruptions" in suites:
        corruption = request.corruption
        if corruption.generate and target.work_dir is None:
            raise ConfigError(
                "Generating -C sets needs a folder to write them to (work_dir / the run folder)."
            )
        for name in threat_models:
            plan.corruption_sources[name] = ce.resolve_corruption_source(
                ce.ORDER_OF_THREAT_MODEL[name],
                dataset=dataset,
                num_classes=num_classes,
                image_size=image_size,
                corruptions=None if corruption.corruptions is None else list(corruption.corruptions),
                severities=None if corruption.severities is None else list(corruption.severities),
                c_root=corruption.c_root,
                bc_root=corruption.bc_root,
                data_root=target.data_root,
                generate_dir=(target.work_dir / "corrupted") if corruption.generate else None,
            )
    return plan


def load_batches(plan: EvaluationPlan, dataset, batches: list[tuple[int, np.ndarray]]):
    """``(global batch number, images, labels)`` for this rank's batches."""
    if not batches:
        return
    loader = DataLoader(
        dataset,
        batch_sampler=[batch.tolist() for _, batch in batches],
        num_workers=loader_workers(plan.request.num_workers),
    )
    for (number, _), (images, labels) in zip(batches, loader, strict=True):
        yield number, images, torch.as_tensor(labels, dtype=torch.long)
