"""The demo's settings and its grid: :class:`DemoSettings` (:data:`FULL`, :data:`QUICK`) and
:func:`demo_spec`, the four training runs as the cells of one :class:`~freqtail.workflows.grid_spec.GridSpec`
with their evaluation and explanations (:mod:`freqtail.workflows.demo` runs it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from freqtail.errors import ConfigError
from freqtail.train import TrainConfig
from freqtail.workflows.explain import (
    ExplainRequest,
    HeatmapAnalysis,
    LandscapeAnalysis,
    SensitivityAnalysis,
)
from freqtail.workflows.grid_analyses import CellExplanation
from freqtail.workflows.grid_spec import CellSpec, GridSpec

#: The dataset every demo step uses (bundled with freqtail: no download).
DATASET = "embedded"


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is. :data:`FULL` (about 5 minutes on 2 CPU cores) and :data:`QUICK` (under a
    minute; for tests and CI) are the two the command offers.

    Attributes:
        quick: the ``--quick`` settings (said so in the output and the report).
        width: small-cnn width.
        train_subset, test_subset: training images / per-epoch test images (None = all).
        erm_epochs, at_epochs: epochs of the ERM and the PGD-AT runs.
        attack_steps, at_step_size: PGD-AT's training attack (eps 8/255).
        robust_eval_examples, robust_eval_steps: the trainer's per-epoch robust accuracy.
        eval_n: test images evaluated (a seeded subset of the 1,600).
        masking_n, masking_queries: the gradient-masking check before PGD-20.
        corruptions, severities: the corruption subset (``freqtail evaluate`` syntax).
        sensitivity_n, landscape_n, landscape_grid, heatmap_n: sizes of the explanations.
        bass_examples: images in the BaSS figure.
    """

    quick: bool
    width: int
    train_subset: int | None
    test_subset: int | None
    erm_epochs: int
    at_epochs: int
    attack_steps: int
    at_step_size: str
    robust_eval_examples: int
    robust_eval_steps: int
    eval_n: int
    masking_n: int
    masking_queries: int
    corruptions: str
    severities: str
    sensitivity_n: int
    landscape_n: int
    landscape_grid: int
    heatmap_n: int
    bass_examples: int = 6

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = DemoSettings(
    quick=False,
    width=16,
    train_subset=None,
    test_subset=None,
    erm_epochs=8,
    at_epochs=5,
    attack_steps=3,
    at_step_size="3/255",
    robust_eval_examples=256,
    robust_eval_steps=10,
    eval_n=500,
    masking_n=100,
    masking_queries=500,
    corruptions="all",
    severities="1,3,5",
    sensitivity_n=500,
    landscape_n=256,
    landscape_grid=9,
    heatmap_n=64,  # a cell's error rate moves in steps of 1/64 = 1.6% (16 images: 6.25%)
)
QUICK = DemoSettings(
    quick=True,
    width=8,
    train_subset=1024,
    test_subset=256,
    erm_epochs=1,
    at_epochs=1,
    attack_steps=2,
    at_step_size="4/255",
    robust_eval_examples=64,
    robust_eval_steps=5,
    eval_n=64,
    masking_n=16,
    masking_queries=100,
    corruptions="all",
    severities="3",
    sensitivity_n=64,
    landscape_n=64,
    landscape_grid=5,
    heatmap_n=2,
)
#: The four training runs: folder, label, objective, BaSS mode.
RUNS = (
    ("erm", "ERM", "erm", None),
    ("erm-bass", "ERM + BaSS", "erm", "dataset"),
    ("pgd-at", "PGD-AT", "pgd-at", None),
    ("pgd-at-bass", "PGD-AT + BaSS", "pgd-at", "dataset"),
)
#: Runs the explanations (sensitivity, landscape, heat map) are computed for.
EXPLAINED = ("erm", "erm-bass")
PGD_EPS, PGD_STEP = "8/255", "2/255"


#: The evaluation suites of every run; the band suites attack the same evaluated images, at each threat
#: model's own 80/20 boundary.
SUITES = ("clean", "pgd20", "pgd20-lfc", "pgd20-hfc", "corruptions")
#: How the four run folders are labelled in the console, the summary and the report.
LABELS = {name: label for name, label, _, _ in RUNS}


def run_overrides(settings: DemoSettings, objective: str, bass: str | None) -> dict[str, Any]:
    """The config keys of one demo run (over the config defaults)."""
    overrides: dict[str, Any] = {
        "dataset": DATASET,
        "model": "small-cnn",
        "model_options": {"width": settings.width},
        "objective": objective,
        "bass": bass,
        "epochs": settings.erm_epochs if objective == "erm" else settings.at_epochs,
        "train_subset": settings.train_subset,
        "test_subset": settings.test_subset,
        "batch_size": 128,
        "seed": 0,
        "progress": False,
    }
    if objective != "erm":
        overrides.update(
            eps=PGD_EPS,
            step_size=settings.at_step_size,
            attack_steps=settings.attack_steps,
            robust_eval_examples=settings.robust_eval_examples,
            robust_eval_steps=settings.robust_eval_steps,
        )
    return overrides


def demo_spec(settings: DemoSettings) -> GridSpec:
    """The demo's grid: one explicit cell per run of :data:`RUNS` (named like its folder), evaluated
    with :data:`SUITES` on ``settings.eval_n`` images, and the explanations of :data:`EXPLAINED`."""
    cells = tuple(
        CellSpec(tuple(run_overrides(settings, objective, bass).items()), name=name)
        for name, _, objective, bass in RUNS
    )
    evaluation = {
        "n": settings.eval_n,
        # No eps: every run's budget is 8/255 anyway (the paper default for 32x32 images, and PGD-AT's
        # training budget), and the records then name where it came from.
        "step_size": PGD_STEP,
        "generate_c": True,
        "corruptions": settings.corruptions,
        "severities": settings.severities,
        "masking_n": settings.masking_n,
        "masking_queries": settings.masking_queries,
    }
    analyses = (
        CellExplanation(
            SensitivityAnalysis(),
            ExplainRequest.default(SensitivityAnalysis, n=settings.sensitivity_n),
            EXPLAINED,
        ),
        CellExplanation(
            LandscapeAnalysis(grid=settings.landscape_grid, span=1.0),
            ExplainRequest.default(LandscapeAnalysis, n=settings.landscape_n),
            EXPLAINED,
        ),
        CellExplanation(
            HeatmapAnalysis(), ExplainRequest.default(HeatmapAnalysis, n=settings.heatmap_n), EXPLAINED
        ),
    )
    return GridSpec(explicit=cells, suites=SUITES, evaluation=tuple(evaluation.items()), analyses=analyses)


def train_config(settings: DemoSettings, objective: str, bass: str | None) -> TrainConfig:
    """The :class:`freqtail.train.TrainConfig` of one demo run (its grid cell's config)."""
    names = [name for name, _, o, b in RUNS if (o, b) == (objective, bass)]
    if not names:
        raise ConfigError(f"The demo has no run with objective {objective!r} and BaSS mode {bass!r}.")
    return demo_spec(settings).cell(names[0]).config


__all__ = [
    "DATASET",
    "EXPLAINED",
    "FULL",
    "LABELS",
    "PGD_EPS",
    "PGD_STEP",
    "QUICK",
    "RUNS",
    "SUITES",
    "DemoSettings",
    "demo_spec",
    "run_overrides",
    "train_config",
]
