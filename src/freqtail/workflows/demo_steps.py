"""The demo's steps in words, read from the files they wrote, and its dataset-level steps.

* :func:`spectrum_step` / :func:`bass_step` write ``spectrum.json`` / ``bass.json`` and their figures
  into the demo folder; :func:`spectrum_words` / :func:`bass_words` say them in one line;
* :func:`step_words` says a finished step of a run (train, evaluate, an explanation) in one line, from
  the run folder's files, so a reused step reads the same as a computed one;
* :class:`EpochProgress`: the trainer callback printing one line per epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from freqtail.bass import balance_spectrum
from freqtail.data import iter_uint8_batches
from freqtail.data.registry import load_arrays
from freqtail.formatting import percent
from freqtail.io import atomic_write_json
from freqtail.report.bass_figures import plot_bass_examples
from freqtail.report.collect import collect_run
from freqtail.report.key_numbers import checkpoint_records, run_key_numbers
from freqtail.report.spectrum_figures import plot_long_tail
from freqtail.runs.layout import RunLayout
from freqtail.spectrum import summarize
from freqtail.workflows.demo_settings import DATASET, LABELS, RUNS, DemoSettings
from freqtail.workflows.grid_run import EVALUATE_STEP, TRAIN_STEP

# ----------------------------------------------------------------------------- dataset-level steps
SPECTRUM_KEYS = ("boundary_band", "lfc_power_share", "entropy", "entropy_normalized", "alpha", "alpha_r2")


def spectrum_step(out: Path) -> None:
    summary = summarize(iter_uint8_batches(DATASET, "train", batch_size=512))
    data = summary.to_dict()
    h, w = summary.image_size
    data["source"] = (
        f"the {summary.num_images} training images of the embedded dataset ({h}x{w}, 16 classes of "
        "photographs bundled with scikit-image)"
    )
    files = RunLayout.of(out)
    plot_long_tail(summary, files.figure("spectrum"), title=f"Long tail of {summary.num_images} images")
    atomic_write_json(files.json("spectrum"), data)


def spectrum_words(data: dict[str, Any]) -> str:
    return (
        f"80/20 boundary band {data['boundary_band']} ({data['boundary_fraction_nyquist']:.3f} of Nyquist): "
        f"LFC holds {100 * data['lfc_power_share']:.1f}% of the power, alpha {data['alpha']:.2f}"
    )


def bass_step(out: Path, settings: DemoSettings) -> None:
    images, labels, classes = load_arrays(DATASET, "train")
    outputs, masks = [], []
    for start in range(0, len(images), 512):
        converted, degenerate = balance_spectrum(
            np.ascontiguousarray(images[start : start + 512]), return_degenerate=True
        )
        outputs.append(converted)
        masks.append(np.asarray(degenerate, dtype=bool))
    converted, degenerate = np.concatenate(outputs), np.concatenate(masks)
    before, after = summarize(images), summarize(converted)
    # One image of evenly spaced classes, and one degenerate image (if any) to show the rule.
    count = settings.bass_examples
    chosen = [
        int(np.flatnonzero(labels == c)[0]) for c in np.linspace(0, len(classes) - 1, count).astype(int)
    ]
    if degenerate.any():
        chosen[-1] = int(np.flatnonzero(degenerate)[0])
    files = RunLayout.of(out)
    plot_bass_examples(images[chosen], files.figure("bass_examples"), max_images=count)
    atomic_write_json(
        files.json("bass"),
        {
            "images": len(images),
            "degenerate": int(degenerate.sum()),
            "strength": 1.0,
            "source": f"the {len(images)} training images of the embedded dataset",
            "example_indices": chosen,
            "example_classes": [classes[int(labels[i])] for i in chosen],
            # pi (band proportions) lets the report compare both spectra at one boundary.
            "spectrum_before": {k: before.to_dict()[k] for k in (*SPECTRUM_KEYS, "pi")},
            "spectrum_after": {k: after.to_dict()[k] for k in (*SPECTRUM_KEYS, "pi")},
        },
    )


def bass_words(data: dict[str, Any]) -> str:
    before, after = data["spectrum_before"], data["spectrum_after"]
    return (
        f"{data['images']} images, {data['degenerate']} with a degenerate channel (left unchanged); spectral "
        f"entropy {before['entropy']:.2f} -> {after['entropy']:.2f} nats, LFC share "
        f"{100 * before['lfc_power_share']:.1f}% -> {100 * after['lfc_power_share']:.1f}%"
    )


def read_json(path: Path) -> dict[str, Any] | None:
    """A step's JSON output, or None when it is missing or unreadable (the step then runs again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def safe_words(words: Callable[..., str], *args: Any) -> str:
    """A step's summary in words; its files may be incomplete in a folder someone edited."""
    try:
        return words(*args)
    except (KeyError, TypeError, ValueError, IndexError):
        return "done (its summary cannot be read from its files)"


def best_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the ``best`` checkpoint (the one every demo run is evaluated with)."""
    return checkpoint_records(records)


# ----------------------------------------------------------------------------- the grid's steps
def step_what(step: str, name: str, settings: DemoSettings) -> str:
    """What a cell step does, in words (the summary's ``timings``)."""
    label = LABELS[name]
    if step == TRAIN_STEP:
        spec = next(run for run in RUNS if run[0] == name)
        epochs = settings.erm_epochs if spec[2] == "erm" else settings.at_epochs
        return f"train {label}, {epochs} epoch(s)"
    if step == EVALUATE_STEP:
        return f"evaluate {label}: clean, PGD-20 (+ LFC, HFC), corruptions on {settings.eval_n} images"
    return f"{step} of {name}"


def train_words(run_dir: Path, settings: DemoSettings) -> str:
    artefacts = collect_run(run_dir)
    metrics = artefacts.metrics
    last = metrics[-1] if metrics else {}
    text = f"{last.get('epoch', len(metrics))} epoch(s), test acc {100 * (last.get('test_acc') or 0):.1f}%"
    if last.get("test_robust_acc") is not None:
        text += f", robust acc {100 * last['test_robust_acc']:.1f}% (PGD-{settings.robust_eval_steps})"
    bass = (artefacts.config or {}).get("bass")
    return text + (" (bass-dataset test set)" if bass else "")


def evaluate_words(run_dir: Path) -> str:
    parts = []
    records = best_records(collect_run(run_dir).records)
    for row in run_key_numbers(run_dir.name, run_dir.name, records):
        parts.append(
            f"{row['threat_model']}: clean {pct(row['clean'])}, PGD-20 {pct(row['pgd20'])}"
            f"{band_words(records, row['threat_model'])}, corruptions {pct(row['corruptions_mean'])}"
        )
    return "; ".join(parts)


def band_words(records: list[dict[str, Any]], threat_model: str) -> str:
    """`` (LFC 20.0%, HFC 23.0% at b = 6)``: a threat model's band-restricted PGD-20, or "" without it."""
    found = {
        r["metric"]: r
        for r in records
        if r.get("threat_model") == threat_model and r.get("metric") in ("pgd-20-ce-lfc", "pgd-20-ce-hfc")
    }
    if not found:
        return ""
    lfc, hfc = found.get("pgd-20-ce-lfc"), found.get("pgd-20-ce-hfc")
    boundary = next(iter(found.values()))["settings"].get("boundary_band")
    return (
        f" (LFC {pct(lfc['accuracy'] if lfc else None)}, HFC {pct(hfc['accuracy'] if hfc else None)} "
        f"at b = {boundary})"
    )


def pct(value: Any) -> str:
    """A fraction as the demo's console lines write it (``52.7%``)."""
    return percent(value, 1, "%")


def explanation_words(run_dir: Path, kind: str) -> str:
    data = getattr(collect_run(run_dir), kind)
    if kind == "sensitivity":
        return (
            f"HFC share of the input gradient's energy {100 * data['hfc_energy_share']:.1f}% "
            f"(boundary band {data['boundary_band']}, {data['num_images']} images)"
        )
    if kind == "landscape":
        lfc, hfc = data["loss_lfc_range"], data["loss_hfc_range"]
        return (
            f"{data['grid']}x{data['grid']} grid: LFC loss {lfc[0]:.2f}..{lfc[1]:.2f}, "
            f"HFC loss {hfc[0]:.2f}..{hfc[1]:.2f}"
        )
    return (
        f"{data['num_images']} images: mean error {100 * data['mean_error']:.1f}% over frequencies "
        f"(clean {100 * data['clean_error']:.1f}%)"
    )


def step_words(step: str, run_dir: Path, settings: DemoSettings) -> str:
    """A finished cell step's one-line summary, read from the run folder's files."""
    if step == TRAIN_STEP:
        return safe_words(train_words, run_dir, settings)
    if step == EVALUATE_STEP:
        return safe_words(evaluate_words, run_dir)
    return safe_words(explanation_words, run_dir, step)


#: The indent of the console lines within a step (under the ``[m:ss.s] k/17`` of the step lines).
CONSOLE_INDENT = 14


class EpochProgress:
    """Trainer callback: one console line per finished epoch (the demo's per-epoch progress)."""

    def __init__(self, echo: Callable[[str], None], name: str) -> None:
        self.echo, self.name = echo, name

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        text = f"epoch {record['epoch']}/{trainer.total_epochs}: loss {record['train_loss']:.3f}"
        if record.get("test_acc") is not None:
            text += f", test acc {100 * record['test_acc']:.1f}%"
        if record.get("test_robust_acc") is not None:
            text += f", robust acc {100 * record['test_robust_acc']:.1f}%"
        self.echo(f"{'':{CONSOLE_INDENT}}{self.name:<22} {text} ({record['epoch_time']:.1f} s)")


__all__ = [
    "CONSOLE_INDENT",
    "SPECTRUM_KEYS",
    "EpochProgress",
    "bass_step",
    "bass_words",
    "best_records",
    "pct",
    "read_json",
    "safe_words",
    "spectrum_step",
    "spectrum_words",
    "step_what",
    "step_words",
]
