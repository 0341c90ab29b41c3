"""What a grid cell runs after its evaluation: typed analysis entries, checked once when built.

A :class:`~freqtail.workflows.grid_spec.GridSpec` lists its analyses (``analyses:`` in YAML); each
entry is one of

* :class:`EpsSweep` (``kind: eps-sweep``): the evaluation of one robust suite at several L-inf
  budgets, e.g. ``{kind: eps-sweep, eps: [1/255, 2/255, 4/255, 8/255], suite: pgd20}`` (Figure 3 (c)).
  Each budget is an :class:`~freqtail.evaluate.EvaluationRequest` with that ``eps`` (step eps / 4, the
  grid's other evaluation options unchanged), evaluated by
  :func:`~freqtail.workflows.evaluation.evaluate_run`; its records are keyed by the budget
  (``best|standard|pgd-20-ce|eps=2/255``), so every budget's numbers stand side by side in the run's
  ``results.json``. At the eps the grid's own evaluation already uses (the run's training budget,
  else the paper's for its image size) the sweep is that evaluation itself, with its step: one record
  per budget, never measured twice;
* :class:`CellExplanation` (``kind: sensitivity | landscape | heatmap``): one explanation of the run
  (:func:`~freqtail.workflows.explain.explain` with :class:`~freqtail.workflows.explain.SensitivityAnalysis`,
  :class:`~freqtail.workflows.explain.LandscapeAnalysis` or
  :class:`~freqtail.workflows.explain.HeatmapAnalysis`), with the request keys ``n``, ``batch_size``,
  ``threat_model``, ``subset_seed`` (defaults: the analysis' own) and the analysis' options
  (:data:`EXPLANATION_OPTIONS`), e.g. ``{kind: landscape, cells: 'erm*', n: 64, grid: 5, span: 1.0}``.

Every entry may name the cells it applies to (``cells:`` a shell pattern on cell names, or a list of
them; omitted = every cell). Both are resumable: a budget whose numbers are stored is skipped
(``resume``), an explanation whose ``<kind>.json`` exists is not run again.

An unknown kind or key, or a bad value, is one :class:`~freqtail.errors.ConfigError` sentence naming
the entry.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from freqtail.attacks.eps import parse_eps
from freqtail.data.catalog import dataset_info
from freqtail.errors import ConfigError, FreqtailError
from freqtail.evaluate.budgets import resolve_budget
from freqtail.evaluate.request import EvaluationRequest
from freqtail.evaluate.results import eps_label
from freqtail.evaluate.suite_names import SUITES, parse_suites
from freqtail.workflows.explain_options import (
    ExplainRequest,
    HeatmapOptions,
    LandscapeOptions,
    SensitivityOptions,
)

if TYPE_CHECKING:  # a run folder opens its checkpoint with torch; a sweep only reads its settings
    from freqtail.workflows.run_folder import RunFolder

#: The analysis kinds, in the order the docs list them.
EPS_SWEEP = "eps-sweep"
#: Each explanation kind and the options it is built from (:mod:`freqtail.workflows.explain_options`).
EXPLANATIONS: dict[str, type] = {
    "sensitivity": SensitivityOptions,
    "landscape": LandscapeOptions,
    "heatmap": HeatmapOptions,
}
KINDS = (EPS_SWEEP, *EXPLANATIONS)
#: Suites an eps sweep may sweep: those that take a budget.
SWEEP_SUITES = tuple(suite for suite in SUITES if suite not in ("clean", "corruptions"))
#: Keys of every entry; of an eps sweep; of an explanation's request; of each explanation's options.
COMMON_KEYS = ("kind", "cells")
SWEEP_KEYS = ("eps", "suite")
REQUEST_KEYS = ("n", "batch_size", "threat_model", "subset_seed")
EXPLANATION_OPTIONS: dict[str, tuple[str, ...]] = {
    "sensitivity": ("top_fraction",),
    "landscape": ("grid", "span", "seed", "boundary_band"),
    "heatmap": ("eps", "sign", "seed"),
}


def _cells(cells: Any, what: str) -> tuple[str, ...] | None:
    """``cells:`` -> a tuple of shell patterns, or None (every cell)."""
    if cells is None:
        return None
    patterns = [cells] if isinstance(cells, str) else cells
    if not isinstance(patterns, (list, tuple)) or not patterns:
        raise ConfigError(f"The cells of {what} must be a shell pattern on cell names or a list of them.")
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"The cells of {what} must be non-empty shell patterns, not {pattern!r}.")
    return tuple(patterns)


def _cells_mapping(cells: tuple[str, ...] | None) -> dict[str, Any]:
    if cells is None:
        return {}
    return {"cells": cells[0] if len(cells) == 1 else list(cells)}


def _cells_words(cells: tuple[str, ...] | None) -> str:
    return "every cell" if cells is None else f"cells {', '.join(cells)}"


class _Entry:
    """What both kinds share: which cells an entry applies to."""

    cells: tuple[str, ...] | None

    def applies_to(self, name: str) -> bool:
        """Whether the cell called ``name`` runs this analysis."""
        return self.cells is None or any(fnmatch.fnmatchcase(name, p) for p in self.cells)


@dataclass(frozen=True)
class EpsSweep(_Entry):
    """The evaluation of one robust suite at several budgets (see the module docstring).

    Attributes:
        eps: the L-inf budgets on the [0, 1] scale (``"2/255"`` texts are read), in the order given,
            without repeats.
        suite: the swept suite, one of :data:`SWEEP_SUITES` (aliases read as the suite they name).
        cells: shell patterns of the cells it applies to; None = every cell.
    """

    kind: ClassVar[str] = EPS_SWEEP
    eps: tuple[float, ...]
    suite: str = "pgd20"
    cells: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        what = f"the {EPS_SWEEP} analysis"
        values = self.eps
        if isinstance(values, (str, int, float)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(
                f"The eps of {what} must be a non-empty list of budgets such as [1/255, 8/255]."
            )
        parsed = []
        for value in values:
            try:
                parsed.append(parse_eps(value))
            except FreqtailError as err:
                raise ConfigError(f"In {what}: {err}") from None
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"The eps of {what} lists a budget twice: {[eps_label(e) for e in parsed]}.")
        object.__setattr__(self, "eps", tuple(parsed))
        names = parse_suites([self.suite]) if isinstance(self.suite, str) else []
        if len(names) != 1 or names[0] not in SWEEP_SUITES:
            raise ConfigError(
                f"The {EPS_SWEEP} analysis cannot sweep the suite {self.suite!r}; it sweeps one of "
                f"{', '.join(SWEEP_SUITES)}."
            )
        object.__setattr__(self, "suite", names[0])
        object.__setattr__(self, "cells", _cells(self.cells, what))

    def to_mapping(self) -> dict[str, Any]:
        """The entry's YAML/JSON form (budgets as floats on the [0, 1] scale)."""
        return {"kind": self.kind, **_cells_mapping(self.cells), "eps": list(self.eps), "suite": self.suite}

    def describe(self) -> str:
        """``eps-sweep of pgd20 at 1/255, 2/255 (every cell)``."""
        budgets = ", ".join(eps_label(e) for e in self.eps)
        return f"{self.kind} of {self.suite} at {budgets} ({_cells_words(self.cells)})"

    def requests(self, run: RunFolder, evaluation: EvaluationRequest) -> list[EvaluationRequest]:
        """One request per budget: ``evaluation`` with only the swept suite, at that eps and step
        eps / 4; at the eps ``evaluation`` itself resolves to for this run, ``evaluation`` as is with its
        own step (its records are the grid evaluation's: a record id holds one number per eps, and
        this one is skipped when stored, never measured a second time with another step)."""
        settings = run.settings
        image_size = tuple(dataset_info(settings.dataset).image_size)
        own = resolve_budget(image_size, evaluation.eps, evaluation.step_size, settings.training_budget)
        out = []
        for eps in self.eps:
            if math.isclose(own.eps, eps, rel_tol=1e-9):
                out.append(dataclasses.replace(evaluation, suites=(self.suite,)))
            else:
                out.append(dataclasses.replace(evaluation, suites=(self.suite,), eps=eps, step_size=None))
        return out


@dataclass(frozen=True)
class CellExplanation(_Entry):
    """One explanation of a cell's run (see the module docstring).

    Attributes:
        analysis: the explanation's options, a
            :class:`~freqtail.workflows.explain_options.SensitivityOptions`,
            :class:`~freqtail.workflows.explain_options.LandscapeOptions` or
            :class:`~freqtail.workflows.explain_options.HeatmapOptions` (checked by it; an analysis of
            :mod:`freqtail.workflows.explain` is one too).
        request: which images, under which threat model (device: the CPU, as the grid's evaluation).
        cells: shell patterns of the cells it applies to; None = every cell.
    """

    analysis: SensitivityOptions | LandscapeOptions | HeatmapOptions
    request: ExplainRequest
    cells: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.analysis, tuple(EXPLANATIONS.values())):
            raise ConfigError(
                "An explanation analysis of a grid is a SensitivityAnalysis, LandscapeAnalysis or "
                f"HeatmapAnalysis (or their options), not {type(self.analysis).__name__}."
            )
        if not isinstance(self.request, ExplainRequest):
            raise ConfigError(f"The {self.kind} analysis of a grid needs an ExplainRequest.")
        object.__setattr__(self, "cells", _cells(self.cells, f"the {self.kind} analysis"))

    @property
    def kind(self) -> str:
        return self.analysis.kind

    def to_mapping(self) -> dict[str, Any]:
        """The entry's YAML/JSON form: the kind, the cells, the request keys and every option."""
        request = self.request
        return {
            "kind": self.kind,
            **_cells_mapping(self.cells),
            "n": request.n,
            "batch_size": request.batch_size,
            "threat_model": None if request.threat_model is None else request.threat_model.value,
            "subset_seed": request.subset_seed,
            **{key: getattr(self.analysis, key) for key in EXPLANATION_OPTIONS[self.kind]},
        }

    def describe(self) -> str:
        """``landscape on 64 images (cells erm, erm-bass)``."""
        images = "every test image" if self.request.n is None else f"{self.request.n} images"
        return f"{self.kind} on {images} ({_cells_words(self.cells)})"


#: One analysis entry of a grid.
GridAnalysis = EpsSweep | CellExplanation


def parse_analysis(entry: Any, where: str = "the grid", index: int = 1) -> GridAnalysis:
    """One entry of ``analyses:`` (a mapping with ``kind``; an entry object is taken as is).

    Raises:
        ConfigError: not a mapping, an unknown kind or key (the sentence lists the valid ones), or a
            bad value (the sentence names the entry).
    """
    if isinstance(entry, (EpsSweep, CellExplanation)):
        return entry
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"Each entry of the analyses of {where} must be a mapping with a kind "
            f"({', '.join(KINDS)}), not {entry!r}."
        )
    values = {str(key).replace("-", "_"): value for key, value in entry.items()}
    kind = values.get("kind")
    if kind not in KINDS:
        raise ConfigError(
            f"Unknown analysis kind {kind!r} in analysis {index} of {where}; the kinds are "
            f"{', '.join(KINDS)}."
        )
    valid = (
        *COMMON_KEYS,
        *(SWEEP_KEYS if kind == EPS_SWEEP else (*REQUEST_KEYS, *EXPLANATION_OPTIONS[kind])),
    )
    unknown = [key for key in values if key not in valid]
    if unknown:
        raise ConfigError(
            f"Unknown key {unknown[0]!r} in analysis {index} ({kind}) of {where}; valid keys are: "
            f"{', '.join(valid)}."
        )
    try:
        if kind == EPS_SWEEP:
            if "eps" not in values:
                raise ConfigError(
                    f"The {EPS_SWEEP} analysis needs eps: a list of budgets such as [1/255, 8/255]."
                )
            return EpsSweep(values["eps"], values.get("suite", "pgd20"), values.get("cells"))
        analysis_type = EXPLANATIONS[kind]
        options = {key: values[key] for key in EXPLANATION_OPTIONS[kind] if key in values}
        given = {key: values[key] for key in REQUEST_KEYS if key in values}
        return CellExplanation(
            analysis_type(**options), ExplainRequest.default(analysis_type, **given), values.get("cells")
        )
    except FreqtailError as err:
        raise ConfigError(f"In analysis {index} ({kind}) of {where}: {err}") from None


def parse_analyses(entries: Any, where: str = "the grid") -> tuple[GridAnalysis, ...]:
    """``analyses:`` (a list of entries; None = none) -> typed entries (see :func:`parse_analysis`)."""
    if entries is None:
        return ()
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigError(f"The analyses of {where} must be a list of entries, each a mapping with a kind.")
    return tuple(parse_analysis(entry, where, index) for index, entry in enumerate(entries, 1))


__all__ = [
    "EPS_SWEEP",
    "EXPLANATIONS",
    "EXPLANATION_OPTIONS",
    "KINDS",
    "SWEEP_SUITES",
    "CellExplanation",
    "EpsSweep",
    "GridAnalysis",
    "parse_analyses",
    "parse_analysis",
]
