"""Figures of the frequency long tail (paper §2, §3.3) from a :class:`~freqtail.spectrum.SpectrumSummary`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from freqtail.errors import InputError
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS, figure_files
from freqtail.report.pyplot import plt, save_figure
from freqtail.spectrum import full_ring_max_band


def _fields(summary: Any) -> dict[str, Any]:
    """Accept a SpectrumSummary or its ``to_dict()`` (e.g. read back from results.json)."""
    data = summary.to_dict() if hasattr(summary, "to_dict") else summary
    if not isinstance(data, dict):
        raise InputError(f"plot_long_tail needs a SpectrumSummary or its dict, not {type(summary).__name__}.")
    missing = [key for key in ("pi", "boundary_band", "entropy_per_band", "image_size") if key not in data]
    if missing:
        raise InputError(f"The spectrum summary lacks the key(s) {', '.join(missing)} needed for the plot.")
    return data


def check_figure_path(path: str | os.PathLike) -> str:
    """Return the figure format named by ``path``'s suffix, or raise InputError if matplotlib lacks it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    supported = Figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise InputError(
            f"Cannot write a figure to {path}: its suffix must be one of .{', .'.join(sorted(supported))}."
        )
    if path.is_dir():
        raise InputError(f"Cannot write a figure to {path}: it is a folder.")
    return fmt


def plot_long_tail(
    summary: Any,
    path: str | os.PathLike,
    title: str | None = None,
    formats: Sequence[str] = DEFAULT_FIGURE_FORMATS,
) -> list[Path]:
    """Draw the long tail and write it atomically once per format (``path``'s suffix replaced by each).

    Left: the band proportions ``pi[k]`` (k >= 1) on log-log axes with the fitted power law
    ``exp(c) * k ** -alpha``, the 80/20 boundary band and the Nyquist radius marked, LFC shaded; the
    boundary over the inscribed bands only (``boundary_band_inscribed``) is a second, dashed line when
    the summary has it (dicts saved before it existed are drawn without it).
    Right: the spectral entropy ``H[k] = -pi[k] ln pi[k]`` per band with the same marks.

    Args:
        summary: a :class:`freqtail.spectrum.SpectrumSummary` or its ``to_dict()``.
        path: the figure's name (``figures/long_tail.png``; a ``.png``/``.pdf``/``.svg`` suffix or none);
            its folder is created.
        title: figure title (default: describes the image size and count).
        formats: the formats to write (:data:`freqtail.report.figure_formats.FIGURE_FORMATS`).

    Returns:
        The files written, one per format.
    """
    data = _fields(summary)
    figure_files(path, formats)  # a bad name or format fails before the drawing
    pi = np.asarray(data["pi"], dtype=np.float64)
    entropy = np.asarray(data["entropy_per_band"], dtype=np.float64)
    bands = np.arange(pi.size)
    b = int(data["boundary_band"])
    b_inscribed = data.get("boundary_band_inscribed")
    percent = round(100 * float(data.get("ratio", 0.8)))
    rule = f"{percent}/{100 - percent}"
    h, w = (int(v) for v in data["image_size"])
    nyquist = min(h, w) / 2.0
    rings = full_ring_max_band(h, w)
    shown = (bands >= 1) & (pi > 0)

    fig, (ax_pi, ax_h) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    try:
        ax_pi.loglog(
            bands[shown], pi[shown], "o-", ms=3, lw=1, color="C0", label=r"$\pi_k$ (mean over images)"
        )
        fits = (("alpha", "all bands", "--", "C3", None), ("alpha_rings", "full rings", "-.", "C4", rings))
        for key, what, style, color, last in fits:
            alpha, intercept, r2 = data.get(key), data.get(f"{key}_intercept"), data.get(f"{key}_r2")
            k = bands[shown & (bands <= (bands[-1] if last is None else last))].astype(np.float64)
            if alpha is None or intercept is None or k.size < 2:
                continue
            label = rf"power law, {what}: $\alpha$={alpha:.2f}" + (
                f" ($R^2$={r2:.2f})" if r2 is not None else ""
            )
            ax_pi.loglog(k, np.exp(intercept) * k ** (-alpha), style, color=color, lw=1.2, label=label)
        for ax in (ax_pi, ax_h):
            if 1 <= b <= bands[-1]:
                ax.axvspan(1, b, color="C2", alpha=0.08, lw=0)
                ax.axvline(b, color="C2", lw=1.5, label=f"{rule} boundary b={b} (all bands)")
            if b_inscribed is not None and 1 <= b_inscribed <= bands[-1]:
                ax.axvline(
                    b_inscribed,
                    color="C5",
                    ls="--",
                    lw=1.5,
                    label=f"{rule} boundary b={int(b_inscribed)} (inscribed bands k<={min(h, w) // 2})",
                )
            if 1 <= nyquist <= bands[-1]:
                ax.axvline(nyquist, color="0.5", ls=":", lw=1, label=f"Nyquist radius {nyquist:g}")
            ax.set_xlabel("frequency band k (radius)")
            ax.grid(True, which="both", alpha=0.25)
        ax_pi.set_ylabel(r"share of non-DC power $\pi_k$")
        ax_pi.set_title("Frequency long tail")
        ax_pi.legend(fontsize=8, loc="lower left")

        ax_h.semilogx(bands[bands >= 1], entropy[bands >= 1], "o-", ms=3, lw=1, color="C1")
        ax_h.set_ylabel(r"spectral entropy $H_k=-\pi_k\ln\pi_k$ (nats)")
        total = data.get("entropy")
        ax_h.set_title(
            "Spectral entropy per band" + (f" (total {total:.2f} nats)" if total is not None else "")
        )
        ax_h.legend(fontsize=8, loc="upper right")

        count = data.get("num_images")
        fig.suptitle(title or f"{h}x{w} images" + (f", {count} images" if count is not None else ""))
    except BaseException:
        plt.close(fig)
        raise
    return save_figure(fig, path, formats)
