"""Requests are checked once, when they are built, and hold parsed values (never text to re-read)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from freqtail.attacks.masking_verdicts import DEFAULT_SQUARE_QUERIES, MIN_JUDGED_IMAGES
from freqtail.errors import ConfigError, InputError
from freqtail.evaluate import EvaluationRequest, EvaluationTarget, MaskingOptions, plan_evaluation
from freqtail.evaluate.request import MASKING_IMAGES
from freqtail.evaluate.threat_model_names import ThreatModel
from freqtail.workflows import ExplainRequest, HeatmapAnalysis, LandscapeAnalysis, SensitivityAnalysis
from freqtail.workflows.run_model import is_bare_weights


def test_an_evaluation_request_parses_its_values_once():
    request = EvaluationRequest(
        suites="pgd-20, clean,pgd20", threat_model="E2E", eps="8/255", step_size=0.5 / 255
    )
    assert request.suites == ("pgd20", "clean")  # aliases resolved, duplicates dropped, order kept
    assert request.threat_model == "end-to-end"
    assert request.eps == 8 / 255 and isinstance(request.eps, float)
    assert request.step_size == 0.5 / 255
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.eps = 0.1  # type: ignore[misc]
    # The defaults have one home each: the masking check's come from the attack module.
    assert request.masking == MaskingOptions(MASKING_IMAGES, DEFAULT_SQUARE_QUERIES, MIN_JUDGED_IMAGES)
    assert EvaluationRequest.of(masking_queries=7).masking.queries == 7


@pytest.mark.parametrize(
    ("options", "error", "sentence"),
    [
        ({"suites": "pgd"}, ConfigError, "the PGD suite is pgd20"),
        ({"suites": "pgd30"}, ConfigError, "Unknown suite 'pgd30'"),
        ({"threat_model": "raw"}, ConfigError, "Unknown threat model 'raw'"),
        ({"eps": "8"}, InputError, "0..255 scale; use 8/255"),
        ({"step_size": "1/0"}, InputError, "Could not read the step size"),
        ({"step_size": "0/255"}, ConfigError, "--step-size must be positive (0 leaves every attack at its"),
        ({"n": 0}, ConfigError, "--n must be a positive integer, not 0."),
        ({"masking_min": 0}, ConfigError, "--masking-min must be a positive integer, not 0."),
        ({"masking_n": -1}, ConfigError, "--masking-n must be a non-negative integer, not -1."),
        ({"severities": "7"}, InputError, "--severities must list distinct integers from 1 to 5, not '7'."),
        ({"colour": "red"}, ConfigError, "Unknown evaluation option 'colour'."),
    ],
)
def test_a_bad_request_is_one_sentence_before_anything_is_loaded(options, error, sentence):
    with pytest.raises(error) as err:
        EvaluationRequest.of(**options)
    assert sentence in str(err.value) and "\n" not in str(err.value)


def test_the_plan_checks_what_depends_on_the_target():
    request = EvaluationRequest(suites="clean,aa")
    tiny = [(torch.zeros(3, 32, 32), 0)] * 4

    class ThreeClasses(list):
        name, num_classes, classes = "embedded", 3, ["a", "b", "c"]

    with pytest.raises(InputError, match="at least 4 classes"):
        plan_evaluation(request, EvaluationTarget("embedded", test_sets={None: ThreeClasses(tiny)}))
    with pytest.raises(ConfigError, match="applies only to models trained on BaSS data"):
        plan_evaluation(EvaluationRequest(threat_model="domain"), EvaluationTarget("embedded"))
    plan = plan_evaluation(EvaluationRequest(eps="4/255"), EvaluationTarget("embedded"))
    assert (plan.budget.eps, plan.budget.step_size, plan.budget.source) == (4 / 255, 1 / 255, "--eps")


def test_explain_requests_and_analyses_check_their_options():
    request = ExplainRequest.default(LandscapeAnalysis, n=None, threat_model="e2e")
    assert (request.n, request.batch_size, request.threat_model) == (None, 256, ThreatModel.END_TO_END)
    assert ExplainRequest.default(SensitivityAnalysis).n == 1000
    assert ExplainRequest.default(HeatmapAnalysis).batch_size == 512
    with pytest.raises(ConfigError, match="--batch-size must be a positive integer"):
        ExplainRequest(n=10, batch_size=0)
    for bad in ({"grid": 0}, {"span": 0.0}):
        with pytest.raises(InputError):
            LandscapeAnalysis(**bad)
    with pytest.raises(ConfigError, match="sign mode must be one of channel, image"):
        HeatmapAnalysis(sign="pixel")
    with pytest.raises(InputError, match="top fraction"):
        SensitivityAnalysis(top_fraction=1.5)


def test_one_rule_says_what_holds_bare_weights(tmp_path):
    (tmp_path / "checkpoint.json").write_text("{}")
    beside = {name: tmp_path / name for name in ("model.safetensors", "weights.pt")}
    alone = {name: tmp_path / "elsewhere" / name for name in ("model.safetensors", "weights.pth", "w.ckpt")}
    (tmp_path / "elsewhere").mkdir()
    for path in [*beside.values(), *alone.values()]:
        path.write_bytes(b"x")
    # A safetensors file beside checkpoint.json is freqtail's own; a torch.save file never is.
    assert not is_bare_weights(beside["model.safetensors"])
    assert is_bare_weights(beside["weights.pt"])
    assert all(is_bare_weights(path) for path in alone.values())
    assert not is_bare_weights(tmp_path) and not is_bare_weights(tmp_path / "missing.pt")
