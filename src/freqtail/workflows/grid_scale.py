"""The scales a grid runs at: ``paper`` (as written) and ``smoke`` (the whole pipeline on a CPU in minutes).

:func:`scale_spec` maps a :class:`~freqtail.workflows.grid_spec.GridSpec` onto a scale and
:func:`describe_scale` says in a few lines what that changed (the command line prints them before the
first cell).

``paper`` returns the spec unchanged. ``smoke`` keeps what a table compares, each cell's **objective**
(PGD-AT, TRADES, MART, AugMix, AugMix+BaSS, ERM) and its **BaSS mode** (``bass``, ``gamma``,
``bass_strength``, ``bass_branch``), its name, its seed and the grid's suites, and replaces the rest,
deterministically, by tiny budgets (:data:`SMOKE_OVERRIDES`):

* data: the embedded dataset (no download), a fixed subset of 256 training and 64 test images, its
  default augmentation, no workers;
* model: ``small-cnn``; the i-th distinct ``(dataset, model, model_options)`` of the grid (in cell
  order) gets width ``4 + 2 i``, so cells that differ only in their dataset or architecture (CIFAR-10
  and CIFAR-100, ResNet-18 and WRN-34-10) stay distinct cells (a grid refuses two cells that train the
  same configuration);
* training: one epoch of batches of 64 at a constant learning rate; the training attack takes 2 steps
  of 4/255 (the budget ``eps`` stays); robust evaluation during training is off; AugMix mixes one chain;
* evaluation (:data:`SMOKE_EVALUATION`): the grid's suites (AutoAttack included) on 32 test images in
  one batch, corruption sets generated from those images (``generate_c``) for two corruptions at
  severity 3;
* analyses: the grid's, in order; an eps sweep keeps its budgets (its evaluations take the 32 images
  above), an explanation takes a few images (:data:`SMOKE_ANALYSES`: 16 for the sensitivity and a
  3 x 3 landscape, 2 for the heat map).

A smoke grid is a different grid from its paper scale (another digest): give it its own folder.
"""

from __future__ import annotations

import json
from typing import Any

from freqtail.errors import ConfigError
from freqtail.workflows.grid_analyses import CellExplanation, GridAnalysis, parse_analysis
from freqtail.workflows.grid_spec import CellSpec, GridSpec

#: The scales :func:`scale_spec` knows.
SCALES = ("paper", "smoke")
#: Config keys the smoke scale sets on every cell (after the cell's own values).
SMOKE_OVERRIDES: dict[str, Any] = {
    "dataset": "embedded",
    "data_root": None,
    "augmentation": None,
    "train_subset": 256,
    "test_subset": 64,
    "val_subset": None,
    "selection": "test",
    "num_workers": 0,
    "model": "small-cnn",
    "normalize": "dataset",
    "pretrained": False,
    "epochs": 1,
    "steps": None,
    "batch_size": 64,
    "eval_batch_size": 64,
    "schedule": "constant",
    "milestones": [],
    "warmup_epochs": 0.0,
    "attack_steps": 2,
    "step_size": "4/255",
    "robust_eval_examples": 0,
    "augmix_width": 1,
    "progress": False,
}
#: First small-cnn width of the smoke scale and the step between distinct architectures.
SMOKE_WIDTH = 4
SMOKE_WIDTH_STEP = 2
#: Evaluation options the smoke scale sets (the suites stay the grid's).
SMOKE_EVALUATION: dict[str, Any] = {
    "n": 32,
    "batch_size": 32,
    "generate_c": True,
    "corruptions": ["gaussian_noise", "fog"],
    "severities": [3],
}
#: What the smoke scale sets on each kind of explanation (images per pass = the image count).
SMOKE_ANALYSES: dict[str, dict[str, Any]] = {
    "sensitivity": {"n": 16, "batch_size": 16},
    "landscape": {"n": 16, "batch_size": 16, "grid": 3},
    "heatmap": {"n": 2, "batch_size": 2},
}


def check_scale(scale: str) -> str:
    """``scale`` if it is one of :data:`SCALES`, else one sentence listing them."""
    if scale not in SCALES:
        raise ConfigError(f"Unknown scale {scale!r}; the scales are {', '.join(SCALES)}.")
    return scale


def _architecture(values: dict[str, Any]) -> str:
    """What the smoke scale folds into one small-cnn: the cell's dataset, model and its options."""
    return json.dumps([values["dataset"], values["model"], values["model_options"]], sort_keys=True)


def smoke_widths(spec: GridSpec) -> dict[str, int]:
    """Cell name -> the small-cnn width the smoke scale gives it (see the module docstring)."""
    widths: dict[str, int] = {}
    by_architecture: dict[str, int] = {}
    for cell in spec.cells():
        key = _architecture(cell.config.to_dict())
        if key not in by_architecture:
            by_architecture[key] = SMOKE_WIDTH + SMOKE_WIDTH_STEP * len(by_architecture)
        widths[cell.name] = by_architecture[key]
    return widths


def smoke_analysis(entry: GridAnalysis) -> GridAnalysis:
    """One analysis at the smoke scale: an explanation on :data:`SMOKE_ANALYSES`' few images (or its own
    count if that is smaller), an eps sweep as it is."""
    if not isinstance(entry, CellExplanation):
        return entry
    small = dict(SMOKE_ANALYSES[entry.kind])
    if entry.request.n is not None and entry.request.n < small["n"]:  # already smaller: keep it
        small.update(n=entry.request.n, batch_size=entry.request.n)
    return parse_analysis({**entry.to_mapping(), **small})


def scale_spec(spec: GridSpec, scale: str) -> GridSpec:
    """``spec`` at ``scale`` (:data:`SCALES`): ``paper`` returns it as is; ``smoke`` returns a grid of
    explicit cells with the same names, objectives, BaSS modes, suites and analyses and tiny budgets.

    Raises:
        ConfigError: an unknown scale (one sentence listing the scales).
    """
    if check_scale(scale) == "paper":
        return spec
    widths = smoke_widths(spec)
    cells = tuple(
        CellSpec(
            overrides=(
                *cell.overrides,
                *SMOKE_OVERRIDES.items(),
                ("model_options", {"width": widths[cell.name]}),
            ),
            base=cell.base,
            name=cell.name,
        )
        for cell in spec.cells()
    )
    evaluation = {**dict(spec.evaluation), **SMOKE_EVALUATION}
    return GridSpec(
        explicit=cells,
        suites=spec.suites,
        evaluation=tuple(evaluation.items()),
        analyses=tuple(smoke_analysis(entry) for entry in spec.analyses),
        family_name=spec.family_name,
    )


def describe_scale(spec: GridSpec, scale: str, only: str | None = None) -> list[str]:
    """Lines saying what ``scale`` runs of ``spec`` (the scaled spec, as :func:`scale_spec` returns it):
    the cell count, the suites, the analyses and, for ``smoke``, what was made small."""
    check_scale(scale)
    cells = spec.cells(only)
    chosen = f"{len(cells)} of {len(spec.cells())} cells" if only is not None else f"{len(cells)} cells"
    lines = [f"Scale {scale}: {chosen}, suites {', '.join(spec.suites)}."]
    if spec.analyses:
        lines.append(f"Analyses after each evaluation: {'; '.join(e.describe() for e in spec.analyses)}.")
    if scale == "smoke":
        widths = sorted({cell.config.model_options.get("width") for cell in cells})
        lines += [
            "Smoke scale: the embedded dataset (256 training, 64 test images), small-cnn (width "
            f"{', '.join(map(str, widths))}), 1 epoch, 2-step training attacks, no robust evaluation "
            "during training.",
            f"Smoke scale: evaluation on {SMOKE_EVALUATION['n']} test images, corruptions "
            f"{', '.join(SMOKE_EVALUATION['corruptions'])} generated at severity "
            f"{', '.join(map(str, SMOKE_EVALUATION['severities']))}; each cell keeps its objective and "
            "BaSS mode. The numbers check the pipeline, not the paper.",
        ]
    return lines


__all__ = [
    "SCALES",
    "SMOKE_ANALYSES",
    "SMOKE_EVALUATION",
    "SMOKE_OVERRIDES",
    "check_scale",
    "describe_scale",
    "scale_spec",
    "smoke_analysis",
    "smoke_widths",
]
