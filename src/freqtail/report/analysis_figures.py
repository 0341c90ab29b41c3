"""Figures of the model explanations (paper Fig. 1, 2, 4; Fourier heat maps) and of a data set's long tail.

Each function takes a result object (or what it saved: its ``to_dict()`` or its ``.npz`` path), draws
with matplotlib's Agg backend, writes the figure atomically (format from the suffix) and returns its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from freqtail.analysis.heatmap import HeatmapResult
from freqtail.analysis.landscape import LandscapeResult
from freqtail.errors import InputError
from freqtail.io import atomic_path
from freqtail.report.pyplot import plt
from freqtail.report.spectrum_figures import check_figure_path, plot_long_tail
from freqtail.spectrum import summarize

__all__ = ["plot_dataset_long_tail", "plot_heatmap", "plot_landscape", "plot_sensitivity"]


def _save(fig, path: Path, fmt: str) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return path


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


def plot_sensitivity(result: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the frequency sensitivity (paper Fig. 2) and write it atomically to ``path``.

    Left: the mean sorted gradient magnitude ``|c|`` per rank (log scale), chosen ranks marked.
    Right: the kernel density of the frequency radius of the coefficient at each chosen rank (darker =
    higher magnitude), a point mass as a vertical line, and the LFC/HFC boundary as a grey dashed line.

    Args:
        result: a :class:`freqtail.analysis.SensitivityResult` or its ``to_dict()``.
        path: output file (``.png``, ``.pdf``, ``.svg`` ...); its folder is created.
        title: figure title (default: image size, image count, HFC shares).
    """
    data = _sensitivity_fields(result)
    path = Path(path)
    fmt = check_figure_path(path)
    magnitude = np.asarray(data["mean_sorted_magnitude"], dtype=np.float64)
    grid = np.asarray(data["density_grid"], dtype=np.float64)
    b = int(data["boundary_band"])
    h, w = (int(v) for v in data["image_size"])
    ranks = data["ranks"]
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(ranks), 1)))

    fig, (ax_rank, ax_density) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    positive = magnitude > 0
    index = np.arange(magnitude.size)
    ax_rank.plot(index, magnitude, lw=1.2, color="0.2")
    if positive.any():
        ax_rank.set_yscale("log")
    for rank, color in zip(ranks, colors, strict=True):
        position = int(rank["position"])
        if magnitude[position] > 0 or not positive.any():
            ax_rank.plot(position, magnitude[position], "o", color=color, ms=6)
    ax_rank.set_xlabel("rank (coefficients sorted by |c| per image)")
    ax_rank.set_ylabel("mean gradient magnitude |c|")
    ax_rank.set_title("Sorted gradient spectrum")
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
    ax_density.set_title("Where the coefficient at each rank lies")
    ax_density.legend(fontsize=8, loc="upper left")
    ax_density.grid(True, alpha=0.25)

    hfc = data.get("hfc_energy_share")
    top = data.get("top_hfc_share")
    default = f"{h}x{w} images, {data.get('num_images', '?')} used"
    if hfc is not None and top is not None:
        default += (
            f"; HFC share of gradient energy {100 * hfc:.1f}%, "
            f"of the top {100 * float(data.get('top_fraction', 0)):.0f}% coefficients {100 * top:.1f}%"
        )
    fig.suptitle(title or default)
    return _save(fig, path, fmt)


def _loaded(result: Any, result_class: type, caller: str, kind: str):
    """``result`` itself if it is a ``result_class``, else ``result_class.load(path)`` for a saved .npz."""
    if isinstance(result, result_class):
        return result
    if isinstance(result, (str, os.PathLike)):
        return result_class.load(result)
    raise InputError(
        f"{caller} needs a {kind} .npz path or a {result_class.__name__}, not {type(result).__name__}."
    )


def plot_landscape(npz_path: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Redraw a saved loss landscape (paper Fig. 1 and 4): LFC and HFC contour plots side by side.

    Args:
        npz_path: a ``landscape.npz`` written by :meth:`freqtail.analysis.LandscapeResult.save` (or the
            result itself).
        path: output figure file.
        title: figure title (default: boundary, grid, image count).

    The trained weights (alpha = beta = 0) are marked with a black star; grid points whose loss was not
    finite are marked with red crosses.
    """
    result = _loaded(npz_path, LandscapeResult, "plot_landscape", "landscape")
    path = Path(path)
    fmt = check_figure_path(path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    panels = (
        ("low frequencies (LFC)", result.loss_lfc, result.nonfinite_lfc),
        ("high frequencies (HFC)", result.loss_hfc, result.nonfinite_hfc),
    )
    center = result.center()
    for ax, (name, loss, nonfinite) in zip(axes, panels, strict=True):
        alphas, betas = result.alphas, result.betas
        if loss.shape[0] >= 2 and loss.shape[1] >= 2:
            lo, hi = float(loss.min()), float(loss.max())
            levels = np.linspace(lo, hi, 16) if hi > lo else np.array([lo - 0.5, lo + 0.5])
            # loss[i, j] is at (alpha_i, beta_j): alpha on the x axis, so transpose for contour's (y, x).
            filled = ax.contourf(alphas, betas, loss.T, levels=levels, cmap="viridis")
            if hi > lo:
                lines = ax.contour(alphas, betas, loss.T, levels=levels[::3], colors="white", linewidths=0.6)
                ax.clabel(lines, fontsize=7, fmt="%.2f")
            fig.colorbar(filled, ax=ax, label="cross-entropy loss")
        else:
            ax.text(0.5, 0.5, f"loss {float(loss.flat[0]):.4g}", transform=ax.transAxes, ha="center")
        if nonfinite.any():
            i, j = np.nonzero(nonfinite)
            ax.plot(alphas[i], betas[j], "x", color="red", ms=5, label="non-finite loss")
        ax.plot(0.0, 0.0, "*", color="black", ms=14, label="trained weights")
        part = "lfc" if "LFC" in name else "hfc"
        subtitle = name
        if center is not None:
            subtitle += f": loss {center['loss_' + part]:.3f}, acc {100 * center['acc_' + part]:.1f}%"
        ax.set_title(subtitle)
        ax.set_xlabel(r"$\alpha$ (direction 1)")
        ax.set_ylabel(r"$\beta$ (direction 2)")
        ax.set_aspect("equal", adjustable="box")
        ax.legend(fontsize=8, loc="upper right")
    h, w = result.image_size
    fig.suptitle(
        title
        or f"Loss landscape on LFC / HFC (boundary band {result.boundary_band}, "
        f"{result.grid}x{result.grid} grid, "
        f"{result.num_images} images of {h}x{w}, seed {result.seed})"
    )
    return _save(fig, path, fmt)


def plot_heatmap(result: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw a Fourier heat map: error rate per perturbation frequency, DC at the centre.

    Args:
        result: a :class:`freqtail.analysis.HeatmapResult` or the path of its saved ``.npz``.
        path: output figure file.
        title: figure title (default: eps, image count, clean error).
    """
    result = _loaded(result, HeatmapResult, "plot_heatmap", "heat-map")
    path = Path(path)
    fmt = check_figure_path(path)
    h, w = result.image_size
    extent = (-(w // 2) - 0.5, (w - 1) // 2 + 0.5, (h - 1) // 2 + 0.5, -(h // 2) - 0.5)
    fig, ax = plt.subplots(figsize=(5.6, 4.8), constrained_layout=True)
    image = ax.imshow(
        result.error_rate, cmap="jet", vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, label="error rate")
    ax.set_xlabel("horizontal frequency dv")
    ax.set_ylabel("vertical frequency du")
    ax.set_title(
        title
        or f"Fourier heat map, eps={result.eps:g} (L2 per channel)\n{result.num_images} images, "
        f"clean error {100 * result.clean_error:.1f}%"
    )
    return _save(fig, path, fmt)


def plot_dataset_long_tail(
    images: Any, path: str | os.PathLike, ratio: float = 0.8, title: str | None = None
) -> tuple[Path, Any]:
    """Measure a data set's long tail (:func:`freqtail.spectrum.summarize`) and draw it with
    :func:`freqtail.report.spectrum_figures.plot_long_tail` (pi per band, power-law fits, 80/20
    boundary, spectral entropy per band).

    Args:
        images: anything :func:`freqtail.spectrum.summarize` takes (uint8 (N, H, W, C), float tensors,
            or an iterable of batches such as ``freqtail.data.iter_uint8_batches(name)``).
        path: output figure file.

    Returns:
        ``(path, summary)``.
    """
    check_figure_path(path)
    summary = summarize(images, ratio=ratio)
    return plot_long_tail(summary, path, title=title), summary
