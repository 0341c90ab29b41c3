"""The suites that attack a sample of test images: clean, PGD-20 / CW-20, the band suites, AutoAttack.

Each suite is one :class:`~freqtail.evaluate.suites.SuiteSpec`; :func:`run_suite` counts it over the
evaluated images (global batch ``b`` attacked with seed ``SeedSequence([seed, b])``, whatever the
number of processes), and :func:`planned_record` gives the record it will have without running it
(what ``--resume`` compares). The band suites attack at each threat model's boundary band
(:func:`measure_boundary`: given, or the 80/20 boundary of the evaluated images, measured once).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from freqtail.attacks import autoattack
from freqtail.attacks.common import correctness
from freqtail.data.subsets import SubsetChoice
from freqtail.distributed import broadcast_json
from freqtail.evaluate.masking_suite import not_run_verdict
from freqtail.evaluate.plan import load_batches
from freqtail.evaluate.records import PerImage, Record
from freqtail.evaluate.results import eps_label, utc_now
from freqtail.evaluate.session import EvaluationSession
from freqtail.evaluate.sharding import batch_seed, global_batches
from freqtail.evaluate.suites import (
    SUITE_SPECS,
    AttackConfig,
    AutoAttackSuiteConfig,
    SuiteSpec,
)
from freqtail.spectrum import DEFAULT_RATIO, summarize

SEED_RULE = "global batch b uses seed numpy.random.SeedSequence([seed, b]) (independent of process count)"
#: Where a given boundary of the band suites came from (``settings["boundary_source"]``).
GIVEN_BOUNDARY = "given (band_boundary / --band-boundary)"


def measure_boundary(session: EvaluationSession, setup, dataset, choice: SubsetChoice) -> dict[str, Any]:
    """The band suites' boundary for one threat model: given, or measured once on its evaluated images.

    Measured on rank 0 (the 80/20 boundary over the corner bands of the evaluated test images this
    threat model attacks, with :func:`freqtail.spectrum.summarize`; the inscribed-band boundary is
    recorded beside it) and sent to the other ranks, so every rank attacks the same band.

    Returns:
        settings keys: ``boundary_band`` (int), ``boundary_source`` (words, with the image count),
        and when measured ``boundary_band_inscribed`` (int or None), ``boundary_ratio`` and
        ``boundary_lfc_share`` (the share of non-DC power below the boundary, 4 decimals).
    """
    name = str(setup.name)
    if name in session.boundaries:
        return session.boundaries[name]
    plan = session.plan
    if plan.band_boundary is not None:
        facts: dict[str, Any] | None = {
            "boundary_band": plan.band_boundary,
            "boundary_source": GIVEN_BOUNDARY,
        }
    else:
        facts = _measured_boundary(session, setup, dataset, choice) if session.context.is_main else None
        facts = broadcast_json(facts, session.context)
    session.boundaries[name] = facts
    return facts


def _boundary_band(session: EvaluationSession, setup) -> int:
    """The band suites' boundary band of a threat model (after :meth:`measure_boundary`)."""
    return int(session.boundaries[str(setup.name)]["boundary_band"])


def _measured_boundary(session: EvaluationSession, setup, dataset, choice: SubsetChoice) -> dict[str, Any]:
    plan = session.plan
    batches = list(enumerate(global_batches(choice.indices, plan.request.batch_size)))
    images = (x for _, x, _ in load_batches(plan, dataset, batches))
    summary = summarize(images, ratio=DEFAULT_RATIO, device=session.context.device, progress=session.progress)
    which = "BaSS-converted" if setup.data_bass else "raw"
    return {
        "boundary_band": int(summary.boundary_band),
        "boundary_band_inscribed": None
        if summary.boundary_band_inscribed is None
        else int(summary.boundary_band_inscribed),
        "boundary_ratio": float(DEFAULT_RATIO),
        "boundary_lfc_share": round(float(summary.lfc_power_share), 4),
        "boundary_source": (
            f"measured: 80/20 boundary (corner bands, freqtail.spectrum.summarize) of the "
            f"{len(choice.indices)} evaluated test images ({which})"
        ),
    }


def _config(session: EvaluationSession, spec: SuiteSpec, setup) -> AttackConfig:
    """What a suite runs under this threat model (the band suites at its boundary band)."""
    boundary = _boundary_band(session, setup) if spec.band is not None else None
    return spec.config(session.plan.budget, boundary, session.plan.num_classes)


def _attack_fn(session: EvaluationSession, spec: SuiteSpec, setup, state_key: str):
    """``attack(model, x, y, batch number) -> (clean_ok, robust_ok, warnings)`` of a suite."""
    plan = session.plan
    config = _config(session, spec, setup)
    if config is None:

        def clean(model, x, y, number):
            ok, _ = correctness(model, x, x, y)
            return ok, ok, []

        return clean
    if isinstance(config, AutoAttackSuiteConfig):
        state_root = None
        if plan.target.work_dir is not None:
            state_root = plan.target.work_dir / "autoattack" / f"{setup.name}-{config.version}-{state_key}"

        def run_aa(model, x, y, number):
            result = autoattack(
                model,
                x,
                y,
                eps=config.eps,
                version=config.version,
                seed=batch_seed(plan.request.seed, number),
                batch_size=max(1, x.shape[0]),
                state_path=None if state_root is None else state_root / f"batch-{number:05d}",
                log_path=None if state_root is None else state_root / f"rank-{session.context.rank}.log",
                on_message=session.say,
            )
            return result.clean_correct, result.robust_correct, result.check_warnings

        return run_aa

    def run_pgd(model, x, y, number):
        generator = torch.Generator(device=x.device).manual_seed(batch_seed(plan.request.seed, number))
        x_adv = config(model, x, y, generator=generator)
        clean_ok, robust_ok = correctness(model, x, x_adv, y)
        return clean_ok, robust_ok, []

    return run_pgd


def _settings(session: EvaluationSession, spec: SuiteSpec, setup) -> dict:
    """A suite's ``settings``: its attack config's own record, the budget, seed and batch size."""
    plan = session.plan
    config = _config(session, spec, setup)
    if config is None:
        return {"attack": None, "batch_size": plan.request.batch_size}
    common = {
        **plan.budget.to_dict(),
        "seed": plan.request.seed,
        "seed_rule": SEED_RULE,
        "batch_size": plan.request.batch_size,
        "norm": "Linf",
    }
    facts = session.boundaries[str(setup.name)] if spec.band is not None else {}
    return {**config.to_dict(), **common, "budget_source": plan.budget.source, **facts}


def _variant(session: EvaluationSession, spec: SuiteSpec, setup) -> str:
    boundary = _boundary_band(session, setup) if spec.band is not None else None
    return spec.variant(eps_label(session.plan.budget.eps), boundary)


def planned_record(session: EvaluationSession, suite: str, setup, choice: SubsetChoice) -> Record:
    """The record a sample suite will have (identity, settings, data), before it runs."""
    spec = SUITE_SPECS[suite]
    return session.base_record(
        setup,
        suite,
        spec.metric,
        _variant(session, spec, setup),
        session.data_of(setup, choice),
        _settings(session, spec, setup),
    )


def run_suite(
    session: EvaluationSession, suite: str, setup, dataset, choice: SubsetChoice, masking: dict | None
) -> None:
    spec = SUITE_SPECS[suite]
    record = planned_record(session, suite, setup, choice)
    if session.skipped(record):
        return
    began = time.perf_counter()
    attack = _attack_fn(session, spec, setup, record.fingerprint)
    clean, robust, total, messages, mask = session.counts(
        setup, dataset, choice.indices, f"{setup.name} {spec.metric}", attack
    )
    record = record.replace(
        correct=robust,
        total=total,
        accuracy=robust / total,
        clean_correct=clean,
        clean_accuracy=clean / total,
        check_warnings=messages,
        seconds=round(time.perf_counter() - began, 3),
        created=utc_now(),
        per_image=PerImage.of_mask(mask),
    )
    if spec.robust:
        # A copy of the whole verdict: a later check replacing the masking record changes nothing here.
        record.gradient_masking = dict(masking) if masking is not None else not_run_verdict()
    session.emit(record)
