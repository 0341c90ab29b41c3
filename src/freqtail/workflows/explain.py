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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from freqtail.analysis.constants import (
    DEFAULT_EPS,
    DEFAULT_RANKING,
    DEFAULT_SIGN,
    DEFAULT_TOP_FRACTION,
    HEATMAP_BATCH,
    HEATMAP_IMAGES,
    LANDSCAPE_BATCH,
    LANDSCAPE_GRID,
    LANDSCAPE_IMAGES,
    LANDSCAPE_SPAN,
    RANKINGS,
    SENSITIVITY_BATCH,
    SENSITIVITY_IMAGES,
    SIGN_MODES,
)
from freqtail.analysis.heatmap import check_eps, fourier_heatmap
from freqtail.analysis.landscape import check_grid, check_span, loss_landscape
from freqtail.analysis.sensitivity import check_top_fraction, frequency_sensitivity
from freqtail.checks import check_choice, check_int, check_optional_int
from freqtail.distributed import DistContext, main_first, run_on_every_rank, run_on_main_and_share
from freqtail.errors import ConfigError
from freqtail.evaluate.threat_models import ThreatModel
from freqtail.io import atomic_write_json, check_writable_folder
from freqtail.report.analysis_figures import (
    plot_heatmap,
    plot_landscape,
    plot_landscape_3d,
    plot_sensitivity,
)
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS, check_figure_formats
from freqtail.report.spectrum_figures import plot_long_tail
from freqtail.runs.layout import RunLayout
from freqtail.workflows.run_folder import RunFolder


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses store their parsed values this way


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
class ExplainRequest:
    """Which images an analysis of a run takes, and where it runs.

    Attributes:
        n: test images, a seeded class-stratified subset (None = all); the same images
            ``freqtail evaluate --n N`` takes for the same ``n`` and ``subset_seed``.
        batch_size: images per pass.
        threat_model: the model and images as this threat model sees them; None = the run's default
            (``domain`` for BaSS runs, else ``standard``).
        subset_seed: seed of the subset.
        device: where the model runs (a torch device or its name).
        progress: progress bars.
        figure_formats: the formats each figure is written in, ``figures/<kind>.<fmt>`` (names from
            :data:`freqtail.report.figure_formats.FIGURE_FORMATS`, or one comma-separated string).
    """

    n: int | None
    batch_size: int
    threat_model: ThreatModel | None = None
    subset_seed: int = 0
    device: Any = "cpu"
    progress: bool = False
    figure_formats: Sequence[str] = DEFAULT_FIGURE_FORMATS

    def __post_init__(self) -> None:
        check_optional_int(self.n, "The image count --n", minimum=1, error=ConfigError)
        check_int(self.batch_size, "The batch size --batch-size", minimum=1, error=ConfigError)
        check_int(self.subset_seed, "The subset seed --subset-seed", minimum=0, error=ConfigError)
        if self.threat_model is not None:
            _set(self, "threat_model", ThreatModel.parse(self.threat_model))
        formats = check_figure_formats(
            self.figure_formats, "The figure formats --figure-format", error=ConfigError
        )
        _set(self, "figure_formats", formats)

    @classmethod
    def default(cls, analysis: type[Analysis] | Analysis, **given: Any) -> ExplainRequest:
        """A request with ``analysis``' default image count and batch size, and ``given`` on top."""
        return cls(**{"n": analysis.default_images, "batch_size": analysis.default_batch, **given})


@dataclass(frozen=True)
class SensitivityAnalysis:
    """Frequency sensitivity (paper §3.2.2, Fig. 2; :func:`freqtail.analysis.frequency_sensitivity`);
    resumes from the global batches every rank finished (``sensitivity.partial.rank<r>.npz``).

    Attributes:
        top_fraction: share of the largest coefficients whose HFC share is reported, in (0, 1].
        ranking: ``definition`` or ``published-notebook`` (32x32 images only;
            :mod:`freqtail.analysis.sensitivity_ranking`).
    """

    kind: ClassVar[str] = "sensitivity"
    default_images: ClassVar[int] = SENSITIVITY_IMAGES
    default_batch: ClassVar[int] = SENSITIVITY_BATCH
    top_fraction: float = DEFAULT_TOP_FRACTION
    ranking: str = DEFAULT_RANKING

    def __post_init__(self) -> None:
        _set(self, "top_fraction", check_top_fraction(self.top_fraction))
        check_choice(self.ranking, RANKINGS, "The sensitivity ranking --ranking", error=ConfigError)

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
class LandscapeAnalysis:
    """Loss landscapes on the LFC and HFC test images (paper §3.1, Fig. 1 and 4;
    :func:`freqtail.analysis.loss_landscape`); resumes from the points every rank finished
    (``landscape.partial.rank<r>.npz``).

    Attributes:
        grid: points per axis; span: the grid covers [-span, span]^2; seed: of the two directions;
        boundary_band: the LFC/HFC boundary band (None = the 80/20 rule on the images).
    """

    kind: ClassVar[str] = "landscape"
    default_images: ClassVar[int] = LANDSCAPE_IMAGES
    default_batch: ClassVar[int] = LANDSCAPE_BATCH
    grid: int = LANDSCAPE_GRID
    span: float = LANDSCAPE_SPAN
    seed: int = 0
    boundary_band: int | None = None

    def __post_init__(self) -> None:
        _set(self, "grid", check_grid(self.grid))
        _set(self, "span", check_span(self.span))

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
class HeatmapAnalysis:
    """Fourier heat map (Yin et al. 2019; :func:`freqtail.analysis.fourier_heatmap`); resumes from the
    frequencies every rank finished (``heatmap.partial.rank<r>.npz``).

    Attributes:
        eps: L2 norm of each basis perturbation per channel ([0, 1] scale); sign: ``channel`` or
        ``image`` (:data:`freqtail.analysis.constants.SIGN_MODES`); seed: of the random signs.
    """

    kind: ClassVar[str] = "heatmap"
    default_images: ClassVar[int] = HEATMAP_IMAGES
    default_batch: ClassVar[int] = HEATMAP_BATCH
    eps: float = DEFAULT_EPS
    sign: str = DEFAULT_SIGN
    seed: int = 0

    def __post_init__(self) -> None:
        _set(self, "eps", check_eps(self.eps))
        _set(self, "sign", check_choice(self.sign, SIGN_MODES, "The heat-map sign mode", error=ConfigError))

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
