"""Honest evaluation: clean, PGD-20, CW, AutoAttack and corruptions under named threat models.

docs/design.md, "Threat models"; paper §4.3-4.4. Every number is a *record* that carries its threat
model, exact settings, number of evaluated images, dataset and checkpoint
(:mod:`freqtail.evaluate.results`).

>>> from freqtail.evaluate import EvaluationRequest, EvaluationTarget, evaluate_model
>>> request = EvaluationRequest(suites="clean,pgd20", n=200, threat_model="both")
>>> records = evaluate_model(model, request, EvaluationTarget("embedded", training_bass="dataset"))

Modules: :mod:`~freqtail.evaluate.request` (what a caller asks for, checked once),
:mod:`~freqtail.evaluate.threat_models` (which model and data each threat model uses),
:mod:`~freqtail.evaluate.suites` (suite names, budgets), :mod:`~freqtail.evaluate.plan` (a request
checked against its target), :mod:`~freqtail.evaluate.runner` (running the suites of
:mod:`~freqtail.evaluate.sample_suites`, :mod:`~freqtail.evaluate.masking_suite` and
:mod:`~freqtail.evaluate.corruption_suite` in one :mod:`~freqtail.evaluate.session`),
:mod:`~freqtail.evaluate.corruption_eval` (-C sets and category means),
:mod:`~freqtail.evaluate.sharding` (which images each process evaluates; the process group is
:mod:`freqtail.distributed`), :mod:`~freqtail.evaluate.records` (the record schema:
``RecordId``, ``Record``, per-image bits), :mod:`~freqtail.evaluate.results` (results.json),
:mod:`~freqtail.evaluate.tables` (results.md), :mod:`~freqtail.evaluate.compare`.
"""

from __future__ import annotations

from freqtail.data.subsets import stratified_subset
from freqtail.distributed import DistContext, all_reduce_counts, init_distributed
from freqtail.evaluate.compare import RunResults, compare_markdown, compare_runs, load_run_results
from freqtail.evaluate.corruption_eval import (
    BASS_THEN_CORRUPT,
    CORRUPT_THEN_BASS,
    ORDER_NONE,
    aggregate_corruptions,
    corruption_outcomes,
)
from freqtail.evaluate.plan import EvaluationPlan, plan_evaluation
from freqtail.evaluate.records import Record, RecordId
from freqtail.evaluate.request import CorruptionOptions, EvaluationRequest, EvaluationTarget, MaskingOptions
from freqtail.evaluate.results import load_records, load_results, merge_records, write_results
from freqtail.evaluate.runner import evaluate_model, run_evaluation
from freqtail.evaluate.suites import SUITES, Budget, default_budget, parse_suites, resolve_budget
from freqtail.evaluate.tables import results_markdown
from freqtail.evaluate.threat_models import (
    THREAT_MODELS,
    ThreatModelSetup,
    applicable_threat_models,
    resolve_threat_models,
    threat_model_setup,
)

__all__ = [
    "BASS_THEN_CORRUPT",
    "CORRUPT_THEN_BASS",
    "ORDER_NONE",
    "SUITES",
    "THREAT_MODELS",
    "Budget",
    "CorruptionOptions",
    "DistContext",
    "EvaluationPlan",
    "EvaluationRequest",
    "EvaluationTarget",
    "MaskingOptions",
    "Record",
    "RecordId",
    "RunResults",
    "ThreatModelSetup",
    "aggregate_corruptions",
    "all_reduce_counts",
    "applicable_threat_models",
    "compare_markdown",
    "compare_runs",
    "corruption_outcomes",
    "default_budget",
    "evaluate_model",
    "init_distributed",
    "load_records",
    "load_results",
    "load_run_results",
    "merge_records",
    "parse_suites",
    "plan_evaluation",
    "resolve_budget",
    "resolve_threat_models",
    "results_markdown",
    "run_evaluation",
    "stratified_subset",
    "threat_model_setup",
    "write_results",
]
