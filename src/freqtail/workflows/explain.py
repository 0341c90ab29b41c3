"""Run-level explanations: frequency sensitivity, LFC/HFC loss landscape and Fourier heat map of a run.

One template, :func:`explain`, takes an opened :class:`~freqtail.workflows.run_folder.RunFolder`, an
analysis (:class:`SensitivityAnalysis`, :class:`LandscapeAnalysis`, :class:`HeatmapAnalysis`: the
analysis' own options, checked when it is built) and an :class:`ExplainRequest` (which images,
under which threat model, on which device). It analyses the model as one threat model sees it
(default: the paper's ``domain`` protocol for BaSS runs — the bare model on the BaSS-converted test
images — and ``standard`` otherwise; ``end-to-end`` keeps the differentiable BaSS front and feeds raw
images), on the same class-stratified subset ``evaluate`` takes for the same ``n`` and
``subset_seed``, and writes into the run's output folder::

    <kind>.npz              the raw arrays (reload with the result class's ``load``)
    figures/<kind>.<fmt>    the figure in each of ``figure_formats`` (png, pdf, svg by default;
                            sensitivity also figures/long_tail.<fmt>, landscape also
                            figures/landscape_3d.<fmt>)
    <kind>.json             the summary, written last: its presence means the analysis finished

The commands ``freqtail sensitivity | landscape | heatmap`` and the demo call it.

Under torchrun every process calls :func:`explain` with the same arguments and its
:class:`~freqtail.distributed.DistContext`: the model runs on the context's device, the analysis
shards its work over the ranks (sensitivity: images; landscape: grid points; heat map: frequencies)
and every rank gets the same full result; rank 0 alone writes the files, and the summary records
``world_size``. A failure on any rank (a threat model that does not apply, data that cannot be read,
an unwritable output folder found by rank 0) is raised on every rank with one sentence before any
rank waits for another (:func:`freqtail.distributed.raise_together`).

Example:
    >>> run = RunFolder.open("runs/demo/erm")
    >>> explained = explain(run, LandscapeAnalysis(grid=11), ExplainRequest.default(LandscapeAnalysis))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from freqtail.analysis.heatmap import fourier_heatmap
from freqtail.analysis.landscape import loss_landscape
from freqtail.analysis.sensitivity import frequency_sensitivity
from freqtail.distributed import DistContext, main_first, run_on_every_rank, run_on_main_and_share
from freqtail.evaluate.threat_model_names import ThreatModel
from freqtail.io import atomic_write_json, check_writable_folder
from freqtail.report.analysis_figures import (
    plot_heatmap,
    plot_landscape,
    plot_landscape_3d,
    plot_sensitivity,
)
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS
from freqtail.report.spectrum_figures import plot_long_tail
from freqtail.runs.layout import RunLayout
from freqtail.workflows.explain_options import (
    ExplainRequest,
    HeatmapOptions,
    LandscapeOptions,
    SensitivityOptions,
)
from freqtail.workflows.run_folder import RunFolder


def _figure_formats(request: ExplainRequest | None) -> tuple[str, ...]:
    return DEFAULT_FIGURE_FORMATS if request is None else tuple(request.figure_formats)


class Analysis(Protocol):
    """One kind of explanation: its name, default image count and batch, how it measures and saves."""

    kind: ClassVar[str]
    default_images: ClassVar[int]
    default_batch: ClassVar[int]

    def measure(
        self, model: Any, data: Any, request: ExplainRequest, output: RunLayout, context: DistContext
    ) -> Any:
        """The result object, the same full one on every rank of ``context``."""
        ...

    def save(
        self, result: Any, output: RunLayout, source: str, request: ExplainRequest | None = None
    ) -> list[Path]:
        """Write the arrays and the figures in ``request.figure_formats`` (None: the default formats);
        return the figures written."""
        ...


@dataclass(frozen=True)
class SensitivityAnalysis(SensitivityOptions):
    """The frequency sensitivity of a run:
    :class:`~freqtail.workflows.explain_options.SensitivityOptions` (the options, checked when built)
    that measure and save themselves."""

    def measure(
        self, model: Any, data: Any, request: ExplainRequest, output: RunLayout, context: DistContext
    ) -> Any:
        return frequency_sensitivity(
            model,
            data,
            n=request.n,
            subset_seed=request.subset_seed,
            batch_size=request.batch_size,
            top_fraction=self.top_fraction,
            ranking=self.ranking,
            partial_path=output.partial(self.kind),
            progress=request.progress,
            context=context,
        )

    def save(
        self, result: Any, output: RunLayout, source: str, request: ExplainRequest | None = None
    ) -> list[Path]:
        result.save(output.arrays(self.kind))
        formats = _figure_formats(request)
        return [
            *plot_sensitivity(result, output.figure(self.kind), formats=formats),
            *plot_long_tail(
                result.spectrum,
                output.figure("long_tail"),
                title=f"Long tail of the {source}",
                formats=formats,
            ),
        ]


@dataclass(frozen=True)
class LandscapeAnalysis(LandscapeOptions):
    """The loss landscapes of a run: :class:`~freqtail.workflows.explain_options.LandscapeOptions` (the
    options, checked when built) that measure and save themselves."""

    def measure(
        self, model: Any, data: Any, request: ExplainRequest, output: RunLayout, context: DistContext
    ) -> Any:
        return loss_landscape(
            model,
            data,
            boundary_band=self.boundary_band,
            grid=self.grid,
            span=self.span,
            seed=self.seed,
            n=request.n,
            subset_seed=request.subset_seed,
            batch_size=request.batch_size,
            partial_path=output.landscape_partial,
            progress=request.progress,
            context=context,
        )

    def save(
        self, result: Any, output: RunLayout, source: str, request: ExplainRequest | None = None
    ) -> list[Path]:
        arrays = result.save(output.arrays(self.kind))
        formats = _figure_formats(request)
        return [
            *plot_landscape(arrays, output.figure(self.kind), formats=formats),
            *plot_landscape_3d(result, output.figure("landscape_3d"), formats=formats),
        ]


@dataclass(frozen=True)
class HeatmapAnalysis(HeatmapOptions):
    """The Fourier heat map of a run: :class:`~freqtail.workflows.explain_options.HeatmapOptions` (the
    options, checked when built) that measure and save themselves."""

    def measure(
        self, model: Any, data: Any, request: ExplainRequest, output: RunLayout, context: DistContext
    ) -> Any:
        return fourier_heatmap(
            model,
            data,
            eps=self.eps,
            n=request.n,
            subset_seed=request.subset_seed,
            batch_size=request.batch_size,
            sign=self.sign,
            seed=self.seed,
            partial_path=output.partial(self.kind),
            progress=request.progress,
            context=context,
        )

    def save(
        self, result: Any, output: RunLayout, source: str, request: ExplainRequest | None = None
    ) -> list[Path]:
        result.save(output.arrays(self.kind))
        return [*plot_heatmap(result, output.figure(self.kind), formats=_figure_formats(request))]


#: Each analysis by its kind.
ANALYSES: dict[str, type[Analysis]] = {
    analysis.kind: analysis for analysis in (SensitivityAnalysis, LandscapeAnalysis, HeatmapAnalysis)
}


def analysis_of(options: SensitivityOptions | LandscapeOptions | HeatmapOptions) -> Analysis:
    """The analysis that measures with ``options`` (``options`` itself when it is one already)."""
    analysis_type = ANALYSES[options.kind]
    if isinstance(options, analysis_type):
        return options
    return analysis_type(**{f.name: getattr(options, f.name) for f in dataclasses.fields(options)})


@dataclass
class Explanation:
    """One finished analysis of a run.

    Attributes:
        kind: ``"sensitivity"``, ``"landscape"`` or ``"heatmap"``.
        result: the analysis result object (``FrequencySensitivity``, ``LossLandscape``, ``FourierHeatmap``).
        data: the JSON summary written to ``<kind>.json``.
        threat_model: the threat model the model and images were taken under.
        files: every file written (JSON, arrays, figures).
    """

    kind: str
    result: Any
    data: dict[str, Any]
    threat_model: ThreatModel
    files: list[Path]

    @property
    def json_path(self) -> Path:
        return self.files[0]


def explain(
    run: RunFolder,
    analysis: Analysis,
    request: ExplainRequest | None = None,
    context: DistContext | None = None,
) -> Explanation:
    """Run ``analysis`` on ``run`` and write its arrays, figures and summary (see the module docstring).

    Args:
        run: the opened run folder.
        analysis: what to measure, with its own options.
        request: which images, threat model and device (default: the analysis' defaults).
        context: the process group (:func:`freqtail.distributed.init_distributed`); every rank calls
            this, the model runs on ``context.device`` (``request.device`` with one process), rank 0
            writes the files and every rank returns the same :class:`Explanation`. None: one process.

    Raises:
        FreqtailError subclasses (one sentence, on every rank): a threat model that does not apply to
        the run, bad data, an unwritable output folder.
    """
    context = context if context is not None else DistContext()
    request = request or ExplainRequest.default(analysis)
    device = context.device if context.distributed else request.device
    threat, model = run_on_every_rank(lambda: _model(run, request, device), context)
    # Rank 0 builds the test set first: it fills the caches (BaSS conversions) the others then read.
    data = run_on_every_rank(lambda: main_first(lambda: run.test_data(threat), context), context)
    source = run.describe_data(threat)
    # Found now, not after the work: the folders rank 0 will write (the output one was checked when
    # the run was opened, on every rank).
    run_on_main_and_share(lambda: _writable(run.output.figures, "figures folder"), context)
    result = analysis.measure(model, data, request, run.output, context)

    def save() -> dict[str, Any]:
        figures = analysis.save(result, run.output, source, request)
        summary = result.to_dict()
        summary.update(
            source=source,
            run=str(run.path),
            threat_model=threat.value,
            figures=[str(f) for f in figures],
            world_size=context.world_size,
        )
        json_path = atomic_write_json(run.output.json(analysis.kind), summary)
        files = [json_path, run.output.arrays(analysis.kind), *figures]
        return {"summary": summary, "files": [str(path) for path in files]}

    saved = run_on_main_and_share(save, context)
    return Explanation(analysis.kind, result, saved["summary"], threat, [Path(f) for f in saved["files"]])


def _writable(folder: Path, what: str) -> None:
    check_writable_folder(folder, what)


def _model(run: RunFolder, request: ExplainRequest, device: Any) -> tuple[ThreatModel, Any]:
    """The threat model ``request`` names (None: the run's default) and the model under it on ``device``."""
    if request.threat_model is None:
        threat = run.settings.explanation_threat_model
    else:
        (threat,) = run.threat_models(request.threat_model.value)
    return threat, run.model_for(threat, device)
