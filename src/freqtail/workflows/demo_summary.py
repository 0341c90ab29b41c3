"""The demo's summary, ``demo-summary.json`` (format ``freqtail-demo-summary``,
:mod:`freqtail.report.key_numbers`): settings, step timings, every run's key numbers; and the
key-number table as the console prints it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from freqtail import __version__
from freqtail.data.corruptions import parse_corruptions, parse_severities
from freqtail.report.collect import collect_run
from freqtail.report.key_numbers import (
    DEMO_SUMMARY_FORMAT,
    TEXT_COLUMNS,
    key_number_table,
    last_epoch_notes,
    run_key_numbers,
)
from freqtail.workflows.demo_settings import DATASET, PGD_EPS, PGD_STEP, RUNS, DemoSettings, demo_spec
from freqtail.workflows.demo_steps import SPECTRUM_KEYS, best_records

DEMO_FORMAT = DEMO_SUMMARY_FORMAT


def evaluation_summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's evaluation records without their bulky parts (settings, data and counts stay)."""
    keep = ("id", "metric", "threat_model", "accuracy", "correct", "total", "mean", "categories", "order")
    out = []
    for record in records:
        entry = {k: record[k] for k in keep if k in record}
        settings = record.get("settings") or {}
        entry["settings"] = {
            k: settings[k]
            for k in (
                "name",
                "eps_255",
                "step_size_255",
                "steps",
                "loss",
                "restarts",
                "seed",
                "severities",
                "origin",
            )
            if k in settings
        }
        entry["n"] = (record.get("data") or {}).get("n")
        if record.get("metric") == "gradient-masking":
            entry["state"] = record.get("state")
            entry["masked"] = record.get("masked")
            entry["summary"] = record.get("summary")
        elif isinstance(record.get("gradient_masking"), dict):
            entry["masking_state"] = record["gradient_masking"].get("state")
        out.append(entry)
    return out


def corruption_words(settings: DemoSettings) -> str:

    names = parse_corruptions(settings.corruptions)
    levels = parse_severities(settings.severities)
    which = "all 19 corruptions" if len(names) == 19 else f"{len(names)} corruptions ({', '.join(names)})"
    return f"{which} at severity {', '.join(map(str, levels))} ({len(names) * len(levels)} cells)"


def aggregate(out: Path, settings: DemoSettings, timings: list[dict[str, Any]], total: float, load) -> dict:
    """The demo's summary (``demo-summary.json``): settings, stage timings, each run's key numbers."""
    spec = demo_spec(settings)
    runs, key_numbers = [], []
    for name, label, objective, bass in RUNS:
        artefacts = collect_run(out / name)
        records = best_records(artefacts.records)
        rows = run_key_numbers(name, label, records, artefacts.metrics)
        key_numbers += rows
        metrics = artefacts.metrics
        last = metrics[-1] if metrics else {}
        entry: dict[str, Any] = {
            "name": name,
            "label": label,
            "path": name,
            "objective": objective,
            "bass": bass,
            "config": spec.cell(name).config.to_dict(),
            "training": {
                k: last.get(k)
                for k in ("epoch", "train_loss", "train_acc", "test_acc", "test_images", "test_robust_acc")
                if k in last
            }
            | {
                "robust_attack": last.get("robust_attack"),
                "seconds": sum(r.get("epoch_time", 0) for r in metrics),
            },
            "key_numbers": rows,
            "evaluation": evaluation_summary(records),
        }
        for kind, keys in (
            ("sensitivity", ("num_images", "boundary_band", "hfc_energy_share", "top_hfc_share", "source")),
            (
                "landscape",
                ("grid", "span", "num_images", "boundary_band", "center", "loss_lfc_range", "loss_hfc_range"),
            ),
            (
                "heatmap",
                ("num_images", "eps", "clean_error", "mean_error", "max_error", "max_error_frequency"),
            ),
        ):
            data = getattr(artefacts, kind)
            if data is not None:
                entry[kind] = {k: data.get(k) for k in keys}
        runs.append(entry)
    facts = collect_run(out)
    spectrum, bass = facts.spectrum or {}, facts.bass or {}
    return {
        "format": DEMO_FORMAT,
        "version": 1,
        "quick": settings.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "freqtail_version": __version__,
        "settings": {
            "description": (
                f"small-cnn (width {settings.width}) on the embedded dataset (16 classes, 32x32): ERM for "
                f"{settings.erm_epochs} epoch(s) and PGD-AT ({settings.attack_steps} steps of "
                f"{settings.at_step_size}, eps {PGD_EPS}) for {settings.at_epochs} epoch(s), each without "
                "and with BaSS (bass=dataset: trained and tested on BaSS-converted images); "
                + (
                    f"{settings.train_subset} training images."
                    if settings.train_subset
                    else "all 6,400 training images."
                )
            ),
            "demo": settings.to_dict(),
            "dataset": DATASET,
            "test_images": 1600,
            "eval_n": settings.eval_n,
            "pgd": {"eps": PGD_EPS, "step_size": PGD_STEP, "steps": 20, "loss": "ce", "restarts": 1},
            "corruptions": {
                "names": settings.corruptions,
                "severities": settings.severities,
                "description": corruption_words(settings),
            },
        },
        "timings": {
            "stages": timings,
            "total_seconds": round(total, 1),
            "load_average": load,
            "threads": torch.get_num_threads(),  # intra-op threads: the demo's numbers move with them
        },
        "spectrum": {k: spectrum.get(k) for k in (*SPECTRUM_KEYS, "num_images", "source") if k in spectrum},
        "bass": {
            k: bass.get(k) for k in ("images", "degenerate", "spectrum_before", "spectrum_after") if k in bass
        },
        "runs": runs,
        "key_numbers": key_numbers,
    }


def format_key_numbers(rows: list[dict[str, Any]]) -> str:
    """The key-number table as aligned text, then a line per run whose numbers are not of its last
    epoch (:func:`freqtail.report.key_numbers.last_epoch_notes`): what ``freqtail demo`` prints; the
    report shows the same table, :func:`freqtail.report.key_numbers.key_number_table`."""
    header, lines = key_number_table(rows, style="console")
    widths = [max(len(x) for x in column) for column in zip(header, *lines, strict=True)]
    out = []
    for index, row in enumerate([header, *lines]):
        cells = [
            cell.ljust(w) if i < TEXT_COLUMNS else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells).rstrip())
        if index == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    notes = last_epoch_notes(rows)
    if notes:
        out += ["", *(f"  {note}" for note in notes)]
    return "\n".join(out)


__all__ = ["DEMO_FORMAT", "aggregate", "corruption_words", "evaluation_summary", "format_key_numbers"]
