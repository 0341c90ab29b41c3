"""Figures of the model explanations (paper Fig. 1, 2, 4; Fourier heat maps) and of a data set's long tail.

Each function takes a result object (or what it saved: its ``to_dict()`` or its ``.npz`` path), draws
with matplotlib's Agg backend and writes the figure once per requested format — PNG, and PDF and SVG
as vector graphics with their text as text — each file atomically and, for PDF and SVG, byte for byte
the same on a rerun (:func:`freqtail.report.pyplot.save_figure`). ``path`` names the figure
(``figures/landscape.png``); each format replaces its suffix. Every function returns the files written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from freqtail.analysis.heatmap import HeatmapResult
from freqtail.analysis.landscape import LandscapeResult
from freqtail.errors import InputError
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS, figure_files
from freqtail.report.pyplot import plt, save_figure
from freqtail.report.spectrum_figures import plot_long_tail
from freqtail.spectrum import summarize

__all__ = [
    "plot_dataset_long_tail",
    "plot_heatmap",
    "plot_landscape",
    "plot_landscape_3d",
    "plot_sensitivity",
]

#: Contour levels of a landscape panel, and every how many of them a contour line is drawn.
_LEVELS, _LINE_EVERY = 16, 3
#: At most this many ticks per axis, so that tick labels never run into each other.
_MAX_TICKS = 5
#: The heat map's colormap: perceptually uniform (equal steps of error rate look equal, and it reads
#: in grey); jet, used before, has bright bands that suggest edges the data do not have.
HEATMAP_COLORMAP = "viridis"


def _sensitivity_fields(result: Any) -> dict[str, Any]:
    data = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(data, dict):
        raise InputError(
            f"plot_sensitivity needs a SensitivityResult or its dict, not {type(result).__name__}."
        )
    needed = ("mean_sorted_magnitude", "ranks", "density_grid", "boundary_band", "image_size")
    missing = [key for key in needed if key not in data]
    if missing:
        raise InputError(f"The sensitivity result lacks the key(s) {', '.join(missing)} needed for the plot.")
    return data


def plot_sensitivity(
    result: Any,
    path: str | os.PathLike,
    title: str | None = None,
    formats: Sequence[str] = DEFAULT_FIGURE_FORMATS,
) -> list[Path]:
    """Draw the frequency sensitivity as the paper's Fig. 2 does, in two rows, and write it.

    First row: the mean sorted gradient magnitude ``|c|`` against the rank index (log scale), the chosen
    rank positions marked. Second row: the kernel density of the frequency radius of the coefficient at
    each chosen rank position (darker = higher magnitude; a point mass as a vertical line), and the
    LFC/HFC boundary as a grey dashed line. The legend stands to the right of both rows, outside the
    axes, so it covers no curve.

    Args:
        result: a :class:`freqtail.analysis.SensitivityResult` or its ``to_dict()``.
        path: the figure's name (``figures/sensitivity.png``); its folder is created.
        title: figure title (default: image size, image count, HFC shares).
        formats: the formats to write (:data:`freqtail.report.figure_formats.FIGURE_FORMATS`).

    Returns:
        The files written, one per format.
    """
    data = _sensitivity_fields(result)
    figure_files(path, formats)  # a bad name or format fails before the drawing
    magnitude = np.asarray(data["mean_sorted_magnitude"], dtype=np.float64)
    grid = np.asarray(data["density_grid"], dtype=np.float64)
    b = int(data["boundary_band"])
    h, w = (int(v) for v in data["image_size"])
    ranks = data["ranks"]
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(ranks), 1)))

    fig, (ax_rank, ax_density) = plt.subplots(2, 1, figsize=(8.6, 7.2), layout="constrained")
    positive = magnitude > 0
    ax_rank.plot(np.arange(magnitude.size), magnitude, lw=1.2, color="0.2")
    if positive.any():
        ax_rank.set_yscale("log")
    for rank, color in zip(ranks, colors, strict=True):
        position = int(rank["position"])
        if magnitude[position] > 0 or not positive.any():
            ax_rank.plot(position, magnitude[position], "o", color=color, ms=6)
    ax_rank.set_xlabel("rank index (coefficients sorted by |c| per image)")
    ax_rank.set_ylabel("mean gradient magnitude |c|")
    ax_rank.set_title("Sorted gradient magnitude")
    ax_rank.grid(True, which="both", alpha=0.25)

    for rank, color in zip(ranks, colors, strict=True):
        label = f"rank {100 * float(rank['fraction']):.0f}% (#{int(rank['position'])})"
        density = rank.get("density")
        if density is None:
            ax_density.axvline(float(rank["mean_radius"]), color=color, lw=2, label=label + ", point mass")
        else:
            ax_density.plot(grid, np.asarray(density, dtype=np.float64), color=color, lw=1.5, label=label)
    ax_density.axvline(b, color="0.5", ls="--", lw=1.5, label=f"LFC/HFC boundary (band {b})")
    ax_density.set_xlim(grid[0], grid[-1])
    ax_density.set_xlabel("frequency radius of the coefficient")
    ax_density.set_ylabel("density over images")
    ax_density.set_title("Frequency radius at the chosen rank positions")
    # Beside both rows, outside the axes: it names the rank colours of both and covers no curve.
    fig.legend(*ax_density.get_legend_handles_labels(), loc="outside right center", fontsize=8)
    ax_density.grid(True, alpha=0.25)

    hfc = data.get("hfc_energy_share")
    top = data.get("top_hfc_share")
    default = f"{h}x{w} images, {data.get('num_images', '?')} used"
    if data.get("ranking", "definition") != "definition":
        default += f", {data['ranking']} ranking"
    if hfc is not None and top is not None:
        default += (
            f"\nHFC share of gradient energy {100 * hfc:.1f}%, "
            f"of the top {100 * float(data.get('top_fraction', 0)):.0f}% coefficients {100 * top:.1f}%"
        )
    fig.suptitle(title or default)
    return save_figure(fig, path, formats)


def _loaded(result: Any, result_class: type, caller: str, kind: str):
    """``result`` itself if it is a ``result_class``, else ``result_class.load(path)`` for a saved .npz."""
    if isinstance(result, result_class):
        return result
    if isinstance(result, (str, os.PathLike)):
        return result_class.load(result)
    raise InputError(
        f"{caller} needs a {kind} .npz path or a {result_class.__name__}, not {type(result).__name__}."
    )


def _landscape_panels(result: LandscapeResult) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(title, key, loss (G, G), nonfinite (G, G))`` of Fig. 1's panels: (a) HFC, (b) LFC."""
    return [
        ("(a) high frequencies (HFC)", "hfc", result.loss_hfc, result.nonfinite_hfc),
        ("(b) low frequencies (LFC)", "lfc", result.loss_lfc, result.nonfinite_lfc),
    ]


def _panel_title(name: str, key: str, center: dict[str, float] | None) -> str:
    if center is None:
        return name
    loss, accuracy = center["loss_" + key], 100 * center["acc_" + key]
    return f"{name}\nat the trained weights: loss {loss:.3f}, acc {accuracy:.1f}%"


def _landscape_title(result: LandscapeResult) -> str:
    h, w = result.image_size
    return (
        f"Loss landscape on HFC / LFC (boundary band {result.boundary_band}, "
        f"{result.grid}x{result.grid} grid,\n"
        f"{result.num_images} images of {h}x{w}, direction seed {result.seed})"
    )


def _limit_ticks(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(_MAX_TICKS))
    ax.yaxis.set_major_locator(MaxNLocator(_MAX_TICKS))


def plot_landscape(
    npz_path: Any,
    path: str | os.PathLike,
    title: str | None = None,
    formats: Sequence[str] = DEFAULT_FIGURE_FORMATS,
) -> list[Path]:
    """Redraw a saved loss landscape as the paper's Fig. 1 (and 4): HFC (a) and LFC (b) side by side.

    Each panel is a filled contour plot of the cross-entropy loss on the ``(alpha, beta)`` grid with
    contour lines on top (every third level, labelled) and its own colour bar; the trained weights
    (alpha = beta = 0) are a black star, grid points whose loss was not finite red crosses. A grid of
    one point shows its loss as text.

    Args:
        npz_path: a ``landscape.npz`` written by :meth:`freqtail.analysis.LandscapeResult.save` (or the
            result itself).
        path: the figure's name (``figures/landscape.png``); its folder is created.
        title: figure title (default: boundary, grid, image count).
        formats: the formats to write (:data:`freqtail.report.figure_formats.FIGURE_FORMATS`).

    Returns:
        The files written, one per format.
    """
    result = _loaded(npz_path, LandscapeResult, "plot_landscape", "landscape")
    figure_files(path, formats)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.4), layout="constrained")
    center = result.center()
    alphas, betas = result.alphas, result.betas
    for ax, (name, key, loss, nonfinite) in zip(axes, _landscape_panels(result), strict=True):
        if loss.shape[0] >= 2 and loss.shape[1] >= 2:
            lo, hi = float(loss.min()), float(loss.max())
            levels = np.linspace(lo, hi, _LEVELS) if hi > lo else np.array([lo - 0.5, lo + 0.5])
            # loss[i, j] is at (alpha_i, beta_j): alpha on the x axis, so transpose for contour's (y, x).
            filled = ax.contourf(alphas, betas, loss.T, levels=levels, cmap="viridis")
            if hi > lo:
                lines = ax.contour(
                    alphas, betas, loss.T, levels=levels[::_LINE_EVERY], colors="white", linewidths=0.7
                )
                ax.clabel(lines, fontsize=7, fmt="%.2f", inline=True)
            bar = fig.colorbar(filled, ax=ax, label="cross-entropy loss", shrink=0.9)
            bar.locator = MaxNLocator(_MAX_TICKS + 1)
            bar.update_ticks()
        else:
            ax.text(0.5, 0.5, f"loss {float(loss.flat[0]):.4g}", transform=ax.transAxes, ha="center")
        if nonfinite.any():
            i, j = np.nonzero(nonfinite)
            ax.plot(alphas[i], betas[j], "x", color="red", ms=5, label="non-finite loss")
        ax.plot(0.0, 0.0, "*", color="black", ms=14, label="trained weights")
        ax.set_title(_panel_title(name, key, center), fontsize=10)
        ax.set_xlabel(r"$\alpha$ (direction 1)")
        ax.set_ylabel(r"$\beta$ (direction 2)")
        ax.set_aspect("equal", adjustable="box")
        _limit_ticks(ax)
    # One legend for both panels, below them: inside an axes it would hide part of the landscape.
    handles = {}
    for ax in axes:
        handles.update({label: handle for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)})
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles), fontsize=9)
    fig.suptitle(title or _landscape_title(result))
    return save_figure(fig, path, formats)


def plot_landscape_3d(
    npz_path: Any,
    path: str | os.PathLike,
    title: str | None = None,
    formats: Sequence[str] = DEFAULT_FIGURE_FORMATS,
) -> list[Path]:
    """Draw a loss landscape as two 3-D surfaces, HFC (a) and LFC (b), the loss as height.

    The trained weights are a black star at ``(0, 0, loss there)`` drawn above the surface (when
    alpha = beta = 0 is a grid point); a grid of one point is drawn as that single point.

    Args:
        npz_path: a ``landscape.npz`` or the :class:`freqtail.analysis.LandscapeResult` itself.
        path: the figure's name (``figures/landscape_3d.png``); its folder is created.
        title: figure title (default: boundary, grid, image count).
        formats: the formats to write (:data:`freqtail.report.figure_formats.FIGURE_FORMATS`).

    Returns:
        The files written, one per format.
    """
    result = _loaded(npz_path, LandscapeResult, "plot_landscape_3d", "landscape")
    figure_files(path, formats)
    fig = plt.figure(figsize=(11, 5.4), layout="constrained")
    center = result.center()
    alpha_grid, beta_grid = np.meshgrid(result.alphas, result.betas, indexing="ij")  # (G, G), as loss
    for index, (name, key, loss, _) in enumerate(_landscape_panels(result), start=1):
        # computed_zorder=False: draw in the order given, so the star is never hidden by the surface.
        ax = fig.add_subplot(1, 2, index, projection="3d", computed_zorder=False)
        if loss.shape[0] >= 2 and loss.shape[1] >= 2:
            ax.plot_surface(alpha_grid, beta_grid, loss, cmap="viridis", linewidth=0, antialiased=False)
        else:
            ax.plot(alpha_grid.ravel(), beta_grid.ravel(), loss.ravel(), "o", color="C0")
        if center is not None:
            ax.plot([0.0], [0.0], [center["loss_" + key]], "*", color="black", ms=14, label="trained weights")
            ax.legend(fontsize=8, loc="upper right")
        ax.set_title(_panel_title(name, key, center), fontsize=10)
        ax.set_xlabel(r"$\alpha$")
        ax.set_ylabel(r"$\beta$")
        ax.set_zlabel("cross-entropy loss", labelpad=10)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(_MAX_TICKS))
    fig.suptitle(title or _landscape_title(result))
    return save_figure(fig, path, formats)


def plot_heatmap(
    result: Any,
    path: str | os.PathLike,
    title: str | None = None,
    formats: Sequence[str] = DEFAULT_FIGURE_FORMATS,
) -> list[Path]:
    """Draw a Fourier heat map: error rate per perturbation frequency, DC at the centre.

    Args:
        result: a :class:`freqtail.analysis.HeatmapResult` or the path of its saved ``.npz``.
        path: the figure's name (``figures/heatmap.png``); its folder is created.
        title: figure title (default: eps, image count, clean error).
        formats: the formats to write (:data:`freqtail.report.figure_formats.FIGURE_FORMATS`).

    Returns:
        The files written, one per format (the map itself is an image inside the PDF and SVG; axes and
        text are vector).
    """
    result = _loaded(result, HeatmapResult, "plot_heatmap", "heat-map")
    figure_files(path, formats)
    h, w = result.image_size
    extent = (-(w // 2) - 0.5, (w - 1) // 2 + 0.5, (h - 1) // 2 + 0.5, -(h // 2) - 0.5)
    fig, ax = plt.subplots(figsize=(5.6, 4.8), constrained_layout=True)
    image = ax.imshow(
        result.error_rate, cmap=HEATMAP_COLORMAP, vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, label="error rate")
    ax.set_xlabel("horizontal frequency dv")
    ax.set_ylabel("vertical frequency du")
    ax.set_title(
        title
        or f"Fourier heat map, eps={result.eps:g} (L2 per channel)\n{result.num_images} images, "
        f"clean error {100 * result.clean_error:.1f}%"
    )
    return save_figure(fig, path, formats)


def plot_dataset_long_tail(
    images: Any,
    path: str | os.PathLike,
    ratio: float = 0.8,
    title: str | None = None,
    formats: Sequence[str] = DEFAULT_FIGURE_FORMATS,
) -> tuple[list[Path], Any]:
    """Measure a data set's long tail (:func:`freqtail.spectrum.summarize`) and draw it with
    :func:`freqtail.report.spectrum_figures.plot_long_tail` (pi per band, power-law fits, 80/20
    boundary, spectral entropy per band).

    Args:
        images: anything :func:`freqtail.spectrum.summarize` takes (uint8 (N, H, W, C), float tensors,
            or an iterable of batches such as ``freqtail.data.iter_uint8_batches(name)``).
        path: the figure's name; its folder is created.
        formats: the formats to write.

    Returns:
        ``(files written, summary)``.
    """
    figure_files(path, formats)
    summary = summarize(images, ratio=ratio)
    return plot_long_tail(summary, path, title=title, formats=formats), summary
