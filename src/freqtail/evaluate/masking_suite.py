"""The gradient-masking check that runs with the robust suites, and the verdict their records keep.

The check (:func:`freqtail.attacks.masking.gradient_masking_check`) runs on rank 0 on
``masking.images`` of the evaluated images (drawn from them by the same seeded, class-stratified
rule) and writes its own record; every robust record of that threat model stores a copy of its
verdict (:func:`masking_verdict`), or :func:`not_run_verdict` when no check ran.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import torch

from freqtail.attacks.masking import MaskingCheckConfig, gradient_masking_check
from freqtail.attacks.masking_verdicts import STATE_NOT_RUN, VERDICT_WORDS
from freqtail.data.subsets import SubsetChoice
from freqtail.evaluate.plan import load_batches
from freqtail.evaluate.results import eps_label, utc_now
from freqtail.evaluate.session import EvaluationSession

MASKING_RECORD = "gradient-masking"


def masking_verdict(report, record: str, indices: Sequence[int], created: str) -> dict[str, Any]:
    """The verdict of one gradient-masking check, as every robust record of that check stores it.

    Keys: ``state`` (:func:`freqtail.attacks.masking.verdict_state`), ``words`` (the state in words),
    ``checked`` (True), ``masked`` (state is "possible-masking"), ``judged`` (correctly classified
    images judged), ``images`` (images checked), ``minimum`` (fewest judged images for a verdict),
    ``flags``, ``summary``, ``indices`` (test-set indices of the checked images), ``record`` (id of
    the check's own record), ``check`` (a random id unique to this run of the check, so that two
    checks of one record id in the same second stay apart) and ``created`` (when the check ran).
    """
    return {
        "state": report.state,
        "words": VERDICT_WORDS[report.state],
        "checked": True,
        "masked": report.masked,
        "judged": int(report.considered),
        "images": int(report.total),
        "minimum": int(report.minimum),
        "flags": list(report.flags),
        "summary": report.summary,
        "indices": [int(i) for i in indices],
        "record": record,
        "check": uuid.uuid4().hex[:16],
        "created": created,
    }


def not_run_verdict(reason: str = "no check was run for this number") -> dict[str, Any]:
    """The verdict stored when no gradient-masking check ran (same keys as :func:`masking_verdict`)."""
    return {
        "state": STATE_NOT_RUN,
        "words": VERDICT_WORDS[STATE_NOT_RUN],
        "checked": False,
        "masked": False,
        "judged": None,
        "images": 0,
        "minimum": None,
        "flags": [],
        "summary": f"Gradient-masking check not run ({reason}).",
        "indices": [],
        "record": None,
        "created": utc_now(),
    }


def run_masking(session: EvaluationSession, setup, dataset, choice: SubsetChoice) -> dict:
    """The gradient-masking check on ``masking_n`` of the evaluated images (rank 0 only).

    The images are drawn from the evaluated subset by the same seeded, class-stratified rule.

    Returns:
        the verdict every robust record of this threat model stores (``gradient_masking``): see
        :func:`masking_verdict`.
    """
    plan = session.plan
    if plan.request.masking.images == 0:
        return not_run_verdict("masking_n = 0")
    chosen = choice.within(plan.request.masking.images, session.labels(dataset))
    config = MaskingCheckConfig(
        eps=plan.budget.eps,
        step_size=plan.budget.step_size,
        square_queries=plan.request.masking.queries,
        seed=plan.request.seed,
        min_judged=plan.request.masking.min_judged,
        bass_front=setup.front is not None,
    )
    data = session.data_of(setup, chosen)
    record = session.base_record(
        setup, "masking", MASKING_RECORD, f"eps={eps_label(plan.budget.eps)}", data, config.to_settings()
    )
    if not session.context.is_main:
        # Other ranks never write records; rank 0 holds the verdict.
        return {"checked": True, "record": str(record.id), "state": None, "indices": data["indices"]}
    began = time.perf_counter()
    images, labels = [], []
    for _, x, y in load_batches(plan, dataset, [(0, chosen.indices)]):
        images.append(x)
        labels.append(y)
    x = torch.cat(images).to(session.context.device)
    y = torch.cat(labels).to(session.context.device)
    report = gradient_masking_check(setup.model, x, y, **config.kwargs(), progress=session.progress)
    record = record.replace(
        total=int(report.total),
        seconds=round(time.perf_counter() - began, 3),
        created=utc_now(),
        extras={
            "report": report.to_dict(),
            "state": report.state,
            "masked": report.masked,
            "flags": list(report.flags),
            "summary": report.summary,
        },
    )
    verdict = masking_verdict(report, str(record.id), data["indices"], record.created)
    session.emit(record)
    return verdict
