"""Training curves from ``metrics.jsonl`` records: loss and accuracies per epoch, one line per run."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from freqtail.errors import InputError
from freqtail.io import atomic_path
from freqtail.report.pyplot import plt
from freqtail.report.spectrum_figures import check_figure_path

__all__ = ["plot_training_curves", "training_series"]

#: (record key, panel title, y label, is a fraction shown in %)
PANELS = (
    ("train_loss", "Training loss", "loss (objective)", False),
    ("train_acc", "Training accuracy", "accuracy (%)", True),
    ("test_acc", "Test accuracy (clean)", "accuracy (%)", True),
    ("test_robust_acc", "Test robust accuracy (PGD, training budget)", "accuracy (%)", True),
)


def training_series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """``(epochs, values)`` of ``key`` over the records, skipping epochs where it is missing or not finite."""
    epochs, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            epochs.append(int(record["epoch"]))
            values.append(float(value))
    return epochs, values


def plot_training_curves(
    runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Draw training loss, training accuracy, clean test accuracy and (adversarial runs) robust test
    accuracy per epoch, one coloured line per run, and write the figure atomically.

    Args:
        runs: ``(label, metrics records)`` pairs; records as in ``metrics.jsonl`` (``epoch``,
            ``train_loss``, ``train_acc``, ``test_acc``, ``test_robust_acc``; missing keys are skipped).
        path: output figure file (format from the suffix).
        title: figure title.

    Returns:
        ``Path(path)``.

    Raises:
        InputError: no run has any epoch record with a loss or an accuracy.
    """
    runs = [(label, list(records)) for label, records in runs if records]
    if not runs:
        raise InputError("There are no training metrics to plot.")
    path = Path(path)
    fmt = check_figure_path(path)
    panels = [p for p in PANELS if any(training_series(records, p[0])[0] for _, records in runs)]
    if not panels:
        raise InputError("The training metrics hold no loss or accuracy to plot.")
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(5.4 * columns, 3.3 * rows), squeeze=False, constrained_layout=True
    )
    try:
        for ax, (key, name, ylabel, percent) in zip(axes.ravel(), panels, strict=False):
            for index, (label, records) in enumerate(runs):
                epochs, values = training_series(records, key)
                if not epochs:
                    continue
                shown = [100 * v for v in values] if percent else values
                ax.plot(epochs, shown, "o-", ms=3.5, lw=1.4, color=f"C{index % 10}", label=label)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
            last = max((int(r["epoch"]) for _, records in runs for r in records), default=1)
            ax.set_xlim(0.5, last + 0.5)
            ax.legend(fontsize=8)
        for ax in axes.ravel()[len(panels) :]:
            ax.set_visible(False)
        fig.suptitle(title or "Training curves (metrics.jsonl)")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    return path
