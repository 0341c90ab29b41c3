""":func:`evaluate_run`: evaluate an opened run under every threat model that applies, into its folder.

The run-level counterpart of :func:`freqtail.evaluate.evaluate_model` (RobustBench's ``benchmark()``
with ``freqtail evaluate`` a thin ``main(args)`` around it): the run's own settings decide the
dataset, the BaSS strength, the threat models and the budget; every finished record is merged into
``results.json`` / ``results.md`` at once, under the folder's results lock, so an interrupted or
concurrent evaluation loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freqtail.runs.folder import RunFolder


@dataclass
class RunEvaluation:
    """What :func:`evaluate_run` did.

    Attributes:
        records: the records measured now (on rank 0; skipped ones are not included).
        warnings: one sentence per stored number replaced by one measured on other images.
        results: the ``results.json`` written; markdown: the ``results.md`` written.
        resumed: True when ``resume`` skipped everything asked for (it was all there).
    """

    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    results: Path | None = None
    markdown: Path | None = None
    resumed: bool = False


def evaluate_run(
    run: RunFolder,
    *,
    suites: str | Sequence[str] = "clean,pgd20",
    threat_model: str | None = "auto",
    n: int | None = None,
    eps: str | float | None = None,
    step_size: str | float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    subset_seed: int = 0,
    masking_n: int = 100,
    masking_queries: int = 1000,
    masking_min: int | None = None,
    c_root: str | None = None,
    bc_root: str | None = None,
    generate_c: bool = False,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    band_boundary: int | None = None,
    num_workers: int = 0,
    execution: Any = None,
    resume: bool = False,
    context: Any = None,
    progress: bool = False,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunEvaluation:
    """Evaluate ``run`` and merge every number into its ``results.json`` as soon as it is measured.

    Args:
        run: an opened :class:`RunFolder` (its ``output`` folder receives the results).
        suites: ``"clean,pgd20,pgd20-lfc,pgd20-hfc,cw,aa,aa-fast,corruptions"`` or a list
            (:mod:`freqtail.evaluate.suites`).
        threat_model: ``"auto"`` (every one that applies), ``"both"`` or one name.
        n: a seeded, class-stratified subset of n test images (None = all), the same images the
            analyses take for the same ``n`` and ``subset_seed``.
        eps, step_size: the budget (default: the run's training budget, else the paper's).
        batch_size, seed, subset_seed: see :func:`freqtail.evaluate.plan_evaluation`.
        masking_n, masking_queries, masking_min: the gradient-masking check of the robust suites.
        c_root, bc_root, generate_c, corruptions, severities: the corruption suite's -C sets.
        band_boundary: the boundary band b of the band suites (pgd20-lfc: bands < b, pgd20-hfc: bands
            >= b); None measures each threat model's 80/20 boundary on its evaluated test images.
        num_workers: data-loader workers for folder datasets.
        execution: :class:`freqtail.models.ExecutionOptions` (channels-last, ``torch.compile``) or a
            mapping of them; None = eager. Every record's settings state them; with ``resume``, a
            number measured with other options is measured again.
        resume: skip numbers already stored with identical settings (same fingerprint).
        context: the process's place under torchrun (:func:`freqtail.distributed.init_distributed`);
            None = one process on the CPU.
        progress: progress bars (rank 0).
        on_record: called with each finished record after it was merged (rank 0).

    Returns:
        :class:`RunEvaluation`.

    Raises:
        FreqtailError subclasses, one sentence each, before any attack runs when the request is bad.
    """
    from freqtail.attacks.masking import MIN_JUDGED_IMAGES
    from freqtail.distributed import DistContext
    from freqtail.evaluate import plan_evaluation, run_evaluation

    settings = run.settings
    context = context or DistContext()
    threat_models = run.threat_models(threat_model)
    plan = plan_evaluation(
        dataset=settings.dataset,
        suites=suites,
        threat_model=threat_model,
        training_bass=settings.bass,
        has_front=settings.has_front,
        bass_strength=settings.bass_strength,
        data_root=settings.data_root,
        eps=eps,
        step_size=step_size,
        run_config=settings.config,
        n=n,
        batch_size=batch_size,
        seed=seed,
        subset_seed=subset_seed,
        masking_n=masking_n,
        masking_queries=masking_queries,
        masking_min=MIN_JUDGED_IMAGES if masking_min is None else masking_min,
        c_root=c_root,
        bc_root=bc_root,
        generate_c=generate_c,
        corruptions=corruptions,
        severities=severities,
        band_boundary=band_boundary,
        work_dir=run.output.eval_cache,
        checkpoint=run.checkpoint_facts(),
        checkpoint_tag=run.checkpoint_tag,
        model_classes=run.num_classes,
        num_workers=num_workers,
        test_sets=run.test_sets(threat_models),
        execution=execution,
    )
    stored = {r.get("id"): r.get("fingerprint") for r in run.results()} if resume else {}
    warnings: list[str] = []

    def skip(record_id: str, fingerprint: str) -> bool:
        return stored.get(record_id) == fingerprint

    def save(record: dict[str, Any]) -> None:
        run.merge_results([record], warn=warnings.append)
        if on_record is not None:
            on_record(record)

    records = run_evaluation(
        plan, run.model, context=context, progress=progress, on_record=save, skip=skip if resume else None
    )
    return RunEvaluation(
        records=records,
        warnings=warnings,
        results=run.output.results,
        markdown=run.output.results_md,
        resumed=bool(resume and not records),
    )
