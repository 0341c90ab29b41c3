""":func:`evaluate_run`: evaluate an opened run under every threat model that applies, into its folder.

The run-level counterpart of :func:`freqtail.evaluate.evaluate_model` (RobustBench's ``benchmark()``
with ``freqtail evaluate`` a thin ``main(args)`` around it): the run's own settings decide the
dataset, the BaSS strength, the threat models and the budget; every finished record is merged into
``results.json`` / ``results.md`` at once, under the folder's results lock, so an interrupted or
concurrent evaluation loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freqtail.distributed import DistContext
from freqtail.errors import ConfigError
from freqtail.evaluate import EvaluationRequest, plan_evaluation, run_evaluation
from freqtail.locks import live_holder
from freqtail.workflows.run_folder import RunFolder


@dataclass
class RunEvaluation:
    """What :func:`evaluate_run` did.

    Attributes:
        records: the records measured now (on rank 0; skipped ones are not included).
        warnings: one sentence per stored number replaced by one measured on other images.
        results: the ``results.json`` written; markdown: the ``results.md`` written.
        resumed: True when ``request.resume`` skipped everything asked for (it was all there).
    """

    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    results: Path | None = None
    markdown: Path | None = None
    resumed: bool = False


def evaluate_run(
    run: RunFolder,
    request: EvaluationRequest,
    *,
    context: DistContext | None = None,
    progress: bool = False,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    allow_training: bool = False,
) -> RunEvaluation:
    """Evaluate ``run`` and merge every number into its ``results.json`` as soon as it is measured.

    Args:
        run: an opened :class:`RunFolder` (its ``output`` folder receives the results).
        request: what to evaluate (:class:`freqtail.evaluate.EvaluationRequest`); the run decides the
            dataset, the BaSS strength, the threat models that apply and the default budget (its
            training budget for adversarially trained runs). With ``request.resume``, numbers already
            stored with identical settings (same fingerprint) are skipped.
        context: the process's place under torchrun (:func:`freqtail.distributed.init_distributed`);
            None = one process on the CPU.
        progress: progress bars (rank 0).
        on_record: called with each finished record after it was merged (rank 0).
        allow_training: evaluate although a training process holds the run folder (its checkpoint
            will be replaced; the numbers then describe a checkpoint the run no longer selects).

    Returns:
        :class:`RunEvaluation`.

    Raises:
        FreqtailError subclasses, one sentence each, before any attack runs when the request does not
        fit the run.
    """
    context = context or DistContext()
    plan = plan_evaluation(request, run.evaluation_target(request))
    trainer = live_holder(run.layout.train_lock)
    if trainer is not None and not allow_training:
        checkpoint = plan.target.checkpoint
        raise ConfigError(
            f"The run {run.layout.folder} is being trained by {trainer.describe()}: its "
            f"{checkpoint.get('which') or 'chosen'} checkpoint (epoch {checkpoint.get('epoch')}) will be "
            "replaced; evaluate when training ends, or pass --allow-training to evaluate that checkpoint now."
        )
    stored = {r.get("id"): r.get("fingerprint") for r in run.results()} if request.resume else {}
    warnings: list[str] = []

    def skip(record_id: str, fingerprint: str) -> bool:
        return stored.get(record_id) == fingerprint

    def save(record: dict[str, Any]) -> None:
        run.merge_results([record], warn=warnings.append)
        if on_record is not None:
            on_record(record)

    records = run_evaluation(
        plan,
        run.model,
        context=context,
        progress=progress,
        on_record=save,
        skip=skip if request.resume else None,
    )
    return RunEvaluation(
        records=records,
        warnings=warnings,
        results=run.output.results,
        markdown=run.output.results_md,
        resumed=bool(request.resume and not records),
    )
