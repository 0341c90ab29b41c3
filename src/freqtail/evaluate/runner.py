"""Run an evaluation plan on a model: every suite under every threat model, one record per number.

:func:`run_evaluation` takes a plan (:func:`freqtail.evaluate.plan.plan_evaluation`) and, per threat
model, prepares that threat model's view of the model once with the request's execution options
(channels-last, ``torch.compile``: :mod:`freqtail.models.execution`; every record's ``settings`` says
which), checks the model's logits against the dataset, measures the band suites' boundary, runs the
gradient-masking check the robust suites store, then the suites in order
(:mod:`~freqtail.evaluate.sample_suites`, :mod:`~freqtail.evaluate.corruption_suite`), all in one
:class:`~freqtail.evaluate.session.EvaluationSession`. :func:`evaluate_model` plans and runs in one
call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from freqtail.data.subsets import SubsetChoice
from freqtail.distributed import DistContext
from freqtail.errors import CheckpointError
from freqtail.evaluate.corruption_suite import run_corruptions
from freqtail.evaluate.masking_suite import run_masking
from freqtail.evaluate.plan import EvaluationPlan, load_batches, plan_evaluation, test_set
from freqtail.evaluate.request import EvaluationRequest, EvaluationTarget
from freqtail.evaluate.sample_suites import measure_boundary, planned_record, run_suite
from freqtail.evaluate.session import EvaluationSession
from freqtail.evaluate.suites import (
    BAND_SUITES,
    ROBUST_SUITES,
)
from freqtail.evaluate.threat_models import threat_model_setup
from freqtail.models.execution import prepare_model


def _check_logits(model: torch.nn.Module, images: torch.Tensor, plan: EvaluationPlan) -> None:
    with torch.no_grad():
        logits = model(images[:2])
    if logits.ndim != 2 or logits.shape[1] != plan.num_classes:
        raise CheckpointError(
            f"The model returns {tuple(logits.shape)} logits for a batch of {plan.dataset} images, which has "
            f"{plan.num_classes} classes; the checkpoint does not match the dataset."
        )


def run_evaluation(
    plan: EvaluationPlan,
    model: torch.nn.Module,
    *,
    context: DistContext | None = None,
    progress: bool = False,
    on_record: Callable[[dict], None] | None = None,
    skip: Callable[[str, str], bool] | None = None,
) -> list[dict]:
    """Run a plan on a model; return the records (see :mod:`freqtail.evaluate.results`).

    Args:
        plan: from :func:`plan_evaluation`.
        model: a :class:`freqtail.models.FreqtailModel` (or any classifier of [0, 1] images); each
            threat model gets its own view (with or without the BaSS front) sharing its weights,
            prepared once with ``plan.request.execution`` (with channels-last, ``model``'s weights are
            converted to that layout in place).
        context: the process's rank, world size and device
            (:func:`freqtail.distributed.init_distributed`); None = one process on the model's device.
        progress: a progress bar per attack (rank 0 only).
        on_record: called on rank 0 with each finished record (e.g. to merge it into results.json at
            once, so an interrupted evaluation keeps what it finished).
        skip: ``skip(record id, fingerprint) -> bool``; True skips a record (e.g. already in
            results.json with the same fingerprint). The gradient-masking check is skipped with the
            robust suites it serves.

    Returns:
        the records of this process (rank 0 has the gradient-masking records too).
    """
    if context is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        context = DistContext(0, 1, device)
    model = model.to(context.device)
    session = EvaluationSession(plan, model, context, progress, on_record, skip)
    for name in plan.threat_models:
        setup = threat_model_setup(model, name, bass_strength=plan.target.bass_strength)
        setup = replace(setup, model=prepare_model(setup.model, plan.request.execution))
        sample_suites = [s for s in plan.suites if s != "corruptions"]
        dataset = choice = None
        if sample_suites:
            dataset = test_set(plan, setup.data_bass)
            choice = session.choose(dataset)
            first = next(load_batches(plan, dataset, [(0, choice.indices[:2])]))[1].to(context.device)
            _check_logits(setup.model, first, plan)
            if set(BAND_SUITES) & set(plan.suites):
                measure_boundary(session, setup, dataset, choice)
        masking = None
        robust = [s for s in plan.suites if s in ROBUST_SUITES]
        if robust:
            pending = [s for s in robust if not (skip and skip(*_probe_identity(session, s, setup, choice)))]
            if pending:
                masking = run_masking(session, setup, dataset, choice)
        for suite in plan.suites:
            if suite == "corruptions":
                run_corruptions(session, setup, choice)
            else:
                run_suite(session, suite, setup, dataset, choice, masking)
    return session.records


def _probe_identity(session: EvaluationSession, suite: str, setup, choice: SubsetChoice) -> tuple[str, str]:
    """(id, fingerprint) a suite's record will have, without running it."""
    record = planned_record(session, suite, setup, choice)
    return str(record.id), record.fingerprint


def evaluate_model(
    model: torch.nn.Module,
    request: EvaluationRequest,
    target: EvaluationTarget,
    *,
    context: DistContext | None = None,
    progress: bool = False,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Plan and run an evaluation in one call: :func:`plan_evaluation` then :func:`run_evaluation`.

    Example:
        >>> request = EvaluationRequest(suites="clean,pgd20", n=200, threat_model="both")
        >>> records = evaluate_model(model, request, EvaluationTarget("embedded", training_bass="dataset"))
        >>> [(r["threat_model"], r["metric"], r["accuracy"], r["total"]) for r in records]
    """
    plan = plan_evaluation(request, target)
    return run_evaluation(plan, model, context=context, progress=progress, on_record=on_record)
