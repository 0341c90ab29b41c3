"""What an explanation of a run is asked to do, checked when it is built: which images and where
(:class:`ExplainRequest`), and each analysis' own options (:class:`SensitivityOptions`,
:class:`LandscapeOptions`, :class:`HeatmapOptions`); :mod:`freqtail.workflows.explain` runs them (its
analyses are these options with the measuring added).

Nothing here imports torch: the explanation commands check their options with these records before
the library loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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
    check_grid,
    check_heatmap_eps,
    check_span,
    check_top_fraction,
)
from freqtail.checks import check_choice, check_int, check_optional_int, check_seed
from freqtail.errors import ConfigError
from freqtail.evaluate.threat_model_names import ThreatModel
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS, check_figure_formats


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses store their parsed values this way


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
    def default(cls, analysis: Any, **given: Any) -> ExplainRequest:
        """A request with the default image count and batch size of ``analysis`` (an analysis or its
        options, or their class), and ``given`` on top."""
        return cls(**{"n": analysis.default_images, "batch_size": analysis.default_batch, **given})


@dataclass(frozen=True)
class SensitivityOptions:
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


@dataclass(frozen=True)
class LandscapeOptions:
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
        check_seed(self.seed, "The landscape seed", error=ConfigError)
        check_optional_int(self.boundary_band, "The landscape boundary band", minimum=0, error=ConfigError)


@dataclass(frozen=True)
class HeatmapOptions:
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
        _set(self, "eps", check_heatmap_eps(self.eps))
        _set(self, "sign", check_choice(self.sign, SIGN_MODES, "The heat-map sign mode", error=ConfigError))
        check_seed(self.seed, "The heatmap seed", error=ConfigError)
