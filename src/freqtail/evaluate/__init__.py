"""Honest evaluation: clean, PGD-20, CW, AutoAttack and corruptions under named threat models.

docs/design.md, "Threat models"; paper §4.3-4.4. Every number is a *record* that carries its threat
model, exact settings, number of evaluated images, dataset and checkpoint
(:mod:`freqtail.evaluate.results`).

>>> from freqtail.evaluate import EvaluationRequest, EvaluationTarget, evaluate_model
>>> request = EvaluationRequest(suites="clean,pgd20", n=200, threat_model="both")
>>> records = evaluate_model(model, request, EvaluationTarget("embedded", training_bass="dataset"))

Modules: :mod:`~freqtail.evaluate.request` (what a caller asks for, checked once),
:mod:`~freqtail.evaluate.threat_models` (which model and data each threat model uses; the names
in :mod:`~freqtail.evaluate.threat_model_names`),
:mod:`~freqtail.evaluate.suites` (what each suite runs; their names in
:mod:`~freqtail.evaluate.suite_names`, the budgets in :mod:`~freqtail.evaluate.budgets`),
:mod:`~freqtail.evaluate.plan` (a request checked against its target),
:mod:`~freqtail.evaluate.runner` (running the suites of
:mod:`~freqtail.evaluate.sample_suites`, :mod:`~freqtail.evaluate.masking_suite` and
:mod:`~freqtail.evaluate.corruption_suite` in one :mod:`~freqtail.evaluate.session`),
:mod:`~freqtail.evaluate.corruption_eval` (-C sets and category means),
:mod:`~freqtail.evaluate.sharding` (which images each process evaluates; the process group is
:mod:`freqtail.distributed`), :mod:`~freqtail.evaluate.records` (the record schema:
``RecordId``, ``Record``, per-image bits), :mod:`~freqtail.evaluate.results` (results.json),
:mod:`~freqtail.evaluate.tables` (results.md), :mod:`~freqtail.evaluate.compare`.
"""

from __future__ import annotations

from freqtail.lazy_exports import lazy_attributes

#: Public name -> the module that defines it.
_EXPORTS = {
    "stratified_subset": "freqtail.data.subsets",
    "DistContext": "freqtail.distributed",
    "all_reduce_counts": "freqtail.distributed",
    "init_distributed": "freqtail.distributed",
    "RunResults": "freqtail.evaluate.compare",
    "compare_markdown": "freqtail.evaluate.compare",
    "compare_runs": "freqtail.evaluate.compare",
    "load_run_results": "freqtail.evaluate.compare",
    "BASS_THEN_CORRUPT": "freqtail.evaluate.corruption_eval",
    "CORRUPT_THEN_BASS": "freqtail.evaluate.corruption_eval",
    "ORDER_NONE": "freqtail.evaluate.corruption_eval",
    "aggregate_corruptions": "freqtail.evaluate.corruption_eval",
    "corruption_outcomes": "freqtail.evaluate.corruption_eval",
    "EvaluationPlan": "freqtail.evaluate.plan",
    "plan_evaluation": "freqtail.evaluate.plan",
    "Record": "freqtail.evaluate.records",
    "RecordId": "freqtail.evaluate.records",
    "CorruptionOptions": "freqtail.evaluate.request",
    "EvaluationRequest": "freqtail.evaluate.request",
    "EvaluationTarget": "freqtail.evaluate.request",
    "MaskingOptions": "freqtail.evaluate.request",
    "load_records": "freqtail.evaluate.results",
    "load_results": "freqtail.evaluate.results",
    "merge_records": "freqtail.evaluate.results",
    "write_results": "freqtail.evaluate.results",
    "evaluate_model": "freqtail.evaluate.runner",
    "run_evaluation": "freqtail.evaluate.runner",
    "SUITES": "freqtail.evaluate.suite_names",
    "parse_suites": "freqtail.evaluate.suite_names",
    "Budget": "freqtail.evaluate.budgets",
    "default_budget": "freqtail.evaluate.budgets",
    "resolve_budget": "freqtail.evaluate.budgets",
    "results_markdown": "freqtail.evaluate.tables",
    "THREAT_MODELS": "freqtail.evaluate.threat_model_names",
    "applicable_threat_models": "freqtail.evaluate.threat_model_names",
    "ThreatModelSetup": "freqtail.evaluate.threat_models",
    "resolve_threat_models": "freqtail.evaluate.threat_models",
    "threat_model_setup": "freqtail.evaluate.threat_models",
}

__all__ = sorted(_EXPORTS)


# Lazy (PEP 562): the command line builds an EvaluationRequest (freqtail.evaluate.request, which
# imports no torch) to check evaluate's options before torch is imported, and importing it runs this
# package first.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
