"""BaSS before/after figure: example images and their log-amplitude spectra, original and balanced."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from freqtail.bass import balance_spectrum
from freqtail.checks import check_int
from freqtail.images import check_uint8_images
from freqtail.io import atomic_path
from freqtail.report.pyplot import plt
from freqtail.report.spectrum_figures import check_figure_path

__all__ = ["log_amplitude_spectrum", "plot_bass_examples"]


def log_amplitude_spectrum(images: np.ndarray) -> np.ndarray:
    """Channel-mean ``log(1 + |fftshift(fft2(x))|)`` of uint8 images, 0..255 scale: (N, H, W) float64."""
    batch = check_uint8_images(images).astype(np.float64)
    spectrum = np.fft.fftshift(np.fft.fft2(batch, axes=(1, 2)), axes=(1, 2))
    return np.log1p(np.abs(spectrum)).mean(axis=-1)


def plot_bass_examples(
    images_uint8: np.ndarray,
    out: str | os.PathLike,
    strength: float = 1.0,
    max_images: int = 6,
    title: str | None = None,
) -> Path:
    """Draw images before and after BaSS with their spectra, and write the figure atomically.

    Rows: the original images, their BaSS versions (:func:`freqtail.bass.balance_spectrum`, uint8 as
    published), and the log-amplitude spectra of both (channel mean, DC at the centre, one colour scale
    for both rows so the lifted high frequencies show). Channels that hit BaSS's degenerate rule (returned
    unchanged while the image's other channels are converted) are named above the BaSS image.

    Args:
        images_uint8: uint8 (N, H, W, C) or (H, W, C), C in {1, 3}; the first ``max_images`` are drawn.
        out: output figure file (format from the suffix).
        strength: BaSS strength in [0, 1] (1 = published).
        max_images: columns of the figure.
        title: figure title.

    Returns:
        ``Path(out)``.
    """
    check_int(max_images, "max_images", minimum=1)
    batch = check_uint8_images(images_uint8, "images to show")[:max_images]
    path = Path(out)
    fmt = check_figure_path(path)
    balanced, degenerate = balance_spectrum(
        np.ascontiguousarray(batch), strength, return_degenerate="channels"
    )  # degenerate: bool (N, C)
    before, after = log_amplitude_spectrum(batch), log_amplitude_spectrum(balanced)
    vmin, vmax = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    count = batch.shape[0]
    gray = batch.shape[-1] == 1
    fig, axes = plt.subplots(4, count, figsize=(1.9 * count + 1.2, 8), squeeze=False, constrained_layout=True)
    rows = (
        ("original", batch, None),
        (f"BaSS (strength {strength:g})", balanced, None),
        ("log |F| original", before, (vmin, vmax)),
        ("log |F| BaSS", after, (vmin, vmax)),
    )
    shown = None
    for r, (label, values, scale) in enumerate(rows):
        for c in range(count):
            ax = axes[r, c]
            if scale is None:
                picture = values[c, ..., 0] if gray else values[c]
                ax.imshow(picture, cmap="gray" if gray else None, vmin=0, vmax=255, interpolation="nearest")
            else:
                shown = ax.imshow(
                    values[c], cmap="magma", vmin=scale[0], vmax=scale[1], interpolation="nearest"
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == 1 and bool(degenerate[c].any()):
                ax.set_title(_unchanged_channels_label(degenerate[c]), fontsize=8)
    if shown is not None:
        fig.colorbar(shown, ax=axes[2:, :].ravel().tolist(), shrink=0.8, label="log(1 + |F|)")
    fig.suptitle(title or "Balanced Spectrum Sampling: images and spectra before and after")
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    return path


def _unchanged_channels_label(channels: np.ndarray) -> str:
    """``"unchanged: all channels"`` or e.g. ``"unchanged: G"`` for one image's degenerate channels (C,)."""
    if channels.all():
        return "unchanged: all channels"
    names = "RGB" if channels.size == 3 else [str(i) for i in range(channels.size)]
    return "unchanged: " + ", ".join(names[i] for i in np.flatnonzero(channels))
