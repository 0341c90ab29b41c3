"""Run-level explanations: frequency sensitivity, LFC/HFC loss landscape and Fourier heat map of a run.

Each function takes an opened :class:`~freqtail.runs.RunFolder`, analyses the model as one threat
model sees it (default: the paper's ``domain`` protocol for BaSS runs — the bare model on the
BaSS-converted test images — and ``standard`` otherwise; ``end-to-end`` keeps the differentiable
BaSS front and feeds raw images), on the same class-stratified subset ``evaluate`` takes for the
same ``n`` and ``subset_seed``, and writes into the run's output folder::

    <kind>.npz              the raw arrays (reload with the result class's ``load``)
    figures/<kind>.png      the figure (sensitivity also figures/long_tail.png)
    <kind>.json             the summary, written last: its presence means the analysis finished

The commands ``freqtail sensitivity | landscape | heatmap`` and the demo call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freqtail.evaluate.threat_models import ThreatModel
from freqtail.runs.folder import RunFolder


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


def _setup(run: RunFolder, threat_model: str | ThreatModel | None, device: Any):
    """(threat model, model view on ``device``, test data, sentence naming the data)."""
    if threat_model is None:
        chosen = run.settings.explanation_threat_model
    else:
        (chosen,) = run.threat_models(ThreatModel.parse(threat_model).value)
    return chosen, run.model_for(chosen, device), run.test_data(chosen), run.describe_data(chosen)


def _finish(run: RunFolder, kind: str, result: Any, data: dict[str, Any], threat: ThreatModel, figures):
    from freqtail.io import atomic_write_json

    data.update(run=str(run.path), threat_model=threat.value, figures=[str(f) for f in figures])
    json_path = atomic_write_json(run.output.json(kind), data)
    return Explanation(kind, result, data, threat, [json_path, run.output.arrays(kind), *figures])


def explain_sensitivity(
    run: RunFolder,
    *,
    threat_model: str | ThreatModel | None = None,
    n: int | None = 1000,
    subset_seed: int = 0,
    batch_size: int = 128,
    top_fraction: float | None = None,
    device: Any = "cpu",
    progress: bool = False,
) -> Explanation:
    """Frequency sensitivity of the run's model (paper §3.2.2, Fig. 2); see
    :func:`freqtail.analysis.frequency_sensitivity` for the measurement and its arguments."""
    from freqtail.analysis.constants import DEFAULT_TOP_FRACTION
    from freqtail.analysis.sensitivity import check_top_fraction, frequency_sensitivity
    from freqtail.report.analysis_figures import plot_sensitivity
    from freqtail.report.spectrum_figures import plot_long_tail

    top = check_top_fraction(DEFAULT_TOP_FRACTION if top_fraction is None else top_fraction)
    threat, model, data, source = _setup(run, threat_model, device)
    result = frequency_sensitivity(
        model, data, n=n, subset_seed=subset_seed, batch_size=batch_size, top_fraction=top, progress=progress
    )
    result.save(run.output.arrays("sensitivity"))
    figures = [
        plot_sensitivity(result, run.output.figure("sensitivity")),
        plot_long_tail(result.spectrum, run.output.figure("long_tail"), title=f"Long tail of the {source}"),
    ]
    summary = result.to_dict()
    summary["source"] = source
    return _finish(run, "sensitivity", result, summary, threat, figures)


def explain_landscape(
    run: RunFolder,
    *,
    threat_model: str | ThreatModel | None = None,
    n: int | None = 500,
    subset_seed: int = 0,
    batch_size: int = 256,
    grid: int = 21,
    span: float = 1.0,
    seed: int = 0,
    boundary_band: int | None = None,
    device: Any = "cpu",
    progress: bool = False,
) -> Explanation:
    """Loss landscapes on the LFC and HFC test images (paper §3.1, Fig. 1 and 4); see
    :func:`freqtail.analysis.loss_landscape`. Resumes from ``landscape.partial.npz`` when interrupted."""
    from freqtail.analysis.landscape import check_grid, check_span, loss_landscape
    from freqtail.report.analysis_figures import plot_landscape

    check_grid(grid)
    span = check_span(span)
    threat, model, data, source = _setup(run, threat_model, device)
    result = loss_landscape(
        model,
        data,
        boundary_band=boundary_band,
        grid=grid,
        span=span,
        seed=seed,
        n=n,
        subset_seed=subset_seed,
        batch_size=batch_size,
        partial_path=run.output.landscape_partial,
        progress=progress,
    )
    arrays = result.save(run.output.arrays("landscape"))
    figures = [plot_landscape(arrays, run.output.figure("landscape"))]
    summary = result.to_dict()
    summary["source"] = source
    return _finish(run, "landscape", result, summary, threat, figures)


def explain_heatmap(
    run: RunFolder,
    *,
    threat_model: str | ThreatModel | None = None,
    n: int | None = 100,
    subset_seed: int = 0,
    batch_size: int = 512,
    eps: float | None = None,
    sign: str | None = None,
    seed: int = 0,
    device: Any = "cpu",
    progress: bool = False,
) -> Explanation:
    """Fourier heat map of the run's model (Yin et al. 2019); see
    :func:`freqtail.analysis.fourier_heatmap`."""
    from freqtail.analysis.constants import DEFAULT_EPS, DEFAULT_SIGN
    from freqtail.analysis.heatmap import check_eps, fourier_heatmap
    from freqtail.report.analysis_figures import plot_heatmap

    eps = check_eps(DEFAULT_EPS if eps is None else eps)
    threat, model, data, source = _setup(run, threat_model, device)
    result = fourier_heatmap(
        model,
        data,
        eps=eps,
        n=n,
        subset_seed=subset_seed,
        batch_size=batch_size,
        sign=DEFAULT_SIGN if sign is None else sign,
        seed=seed,
        progress=progress,
    )
    result.save(run.output.arrays("heatmap"))
    figures = [plot_heatmap(result, run.output.figure("heatmap"))]
    summary = result.to_dict()
    summary["source"] = source
    return _finish(run, "heatmap", result, summary, threat, figures)
