"""The demo's summary (``demo-summary.json``) and its key-number table, shared by the demo and the report.

The summary is its own file with its own schema (format :data:`DEMO_SUMMARY_FORMAT`), never a
``results.json`` (that name means a run's evaluation records only, :mod:`freqtail.evaluate.results`).
Its ``key_numbers`` are one row per run and threat model (:func:`run_key_numbers`); the demo prints
them and the report shows them with the same table (:func:`key_number_table`), in two styles that
differ only in titles and decimals. Each row names its checkpoint (epoch, of how many, how it was
chosen), and :func:`last_epoch_notes` puts training's own numbers of the last epoch beside those of
the selected one wherever the two differ. Each percentage comes with its 95% Wilson score interval
(:func:`freqtail.evaluate.statistics.wilson_interval`) from the counts behind it, so a reader sees
which differences are noise; the corruption mean's counts pool every corruption x severity cell
(the same images recur in every cell, so its interval treats them as independent and is narrower
than one over images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from freqtail.evaluate.records import RecordId
from freqtail.evaluate.statistics import wilson_interval
from freqtail.evaluate.threat_model_names import THREAT_MODELS
from freqtail.formatting import MISSING, percent

#: The ``format`` of ``demo-summary.json``.
DEMO_SUMMARY_FORMAT = "freqtail-demo-summary"
#: The ``format`` of the summary older demos wrote as the demo folder's ``results.json`` (still read).
LEGACY_DEMO_FORMAT = "freqtail-demo"
#: The checkpoint every demo run is evaluated with.
DEMO_CHECKPOINT = "best"

#: The key-number table's columns: row key, the report's title, the command line's title.
KEY_NUMBER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("label", "run", "run"),
    ("threat_model", "threat model", "threat model"),
    ("checkpoint", "checkpoint", "checkpoint"),
    ("clean", "Clean", "Clean"),
    ("pgd20", "PGD-20", "PGD-20"),
    ("corruptions_mean", "Corruptions (mean)", "Corruptions"),
    ("n", "images (n)", "n"),
)
#: The percentages of each style: (decimals, suffix).
STYLES = {"report": (2, ""), "console": (1, "%")}
_PERCENT_KEYS = ("clean", "pgd20", "corruptions_mean")
#: The key of the (correct, total) counts behind each percentage of a row.
COUNT_KEYS = {"clean": "clean_counts", "pgd20": "pgd20_counts", "corruptions_mean": "corruptions_counts"}
#: Confidence level of the intervals the table shows.
CONFIDENCE = 0.95
#: The columns before the numbers (left-aligned text).
TEXT_COLUMNS = 3
#: What a row keeps of training's per-epoch record (``metrics.jsonl``) for the selected and last epochs.
EPOCH_KEYS = ("epoch", "test_acc", "test_images", "test_robust_acc", "robust_examples", "robust_attack")


def pooled_corruption_counts(record: Mapping[str, Any]) -> list[int] | None:
    """``[correct, total]`` summed over a corruption record's corruption x severity cells, or None
    when a cell lacks its counts."""
    correct = total = 0
    for severities in (record.get("per_corruption") or {}).values():
        for cell in (severities or {}).values():
            c, t = (cell or {}).get("correct"), (cell or {}).get("total")
            if not isinstance(c, int) or not isinstance(t, int) or isinstance(c, bool) or isinstance(t, bool):
                return None
            correct, total = correct + c, total + t
    return [correct, total] if total > 0 else None


def checkpoint_records(records: Sequence[Mapping[str, Any]], checkpoint: str = DEMO_CHECKPOINT) -> list:
    """The records of one checkpoint (by the ``checkpoint`` part of their ids)."""
    return [r for r in records if "id" in r and RecordId.of(r).checkpoint == checkpoint]


def _epoch_facts(metrics: Sequence[Mapping[str, Any]], epoch: Any) -> dict[str, Any] | None:
    record = next((r for r in metrics if r.get("epoch") == epoch), None)
    return None if record is None else {k: record.get(k) for k in EPOCH_KEYS if k in record}


def checkpoint_facts(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any] | None:
    """What the records were measured on: ``{"which", "epoch", "epochs", "rule", "split"}`` from the
    first record's ``checkpoint`` (``epochs``: the run's last trained epoch, from ``metrics``); None
    when no record says."""
    info = next((r.get("checkpoint") for r in records if r.get("checkpoint")), None)
    if not info:
        return None
    selected = info.get("selected_on") or {}
    last = metrics[-1].get("epoch") if metrics else None
    return {
        "which": info.get("which"),
        "epoch": info.get("epoch"),
        "epochs": last,
        "rule": selected.get("rule") or ("last-epoch" if info.get("which") == "last" else info.get("which")),
        "split": selected.get("split"),
    }


def run_key_numbers(
    name: str,
    label: str,
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """One row per threat model of a run: clean, PGD-20 and corruption-mean accuracy (fractions), the
    counts behind them, the number of evaluated images and the checkpoint they were measured on.

    ``metrics`` (the run's ``metrics.jsonl`` records) adds the checkpoint's epoch count and
    training's own numbers of the selected (``selected_epoch``) and last (``last_epoch``) epochs."""
    checkpoint = checkpoint_facts(records, metrics)
    epoch = (checkpoint or {}).get("epoch")
    selected_epoch = _epoch_facts(metrics, epoch) if epoch is not None else None
    last_epoch = dict(metrics[-1]) if metrics else None
    rows = []
    for threat in THREAT_MODELS:
        mine = [r for r in records if r.get("threat_model") == threat]
        if not mine:
            continue

        def find(metric: str, mine=mine) -> Mapping[str, Any] | None:
            return next((r for r in mine if r.get("metric") == metric), None)

        clean, pgd, corr = find("clean"), find("pgd-20-ce"), find("corruptions")
        rows.append(
            {
                "run": name,
                "label": label,
                "threat_model": threat,
                "clean": clean["accuracy"] if clean else None,
                "clean_counts": [clean["correct"], clean["total"]] if clean else None,
                "pgd20": pgd["accuracy"] if pgd else None,
                "pgd20_counts": [pgd["correct"], pgd["total"]] if pgd else None,
                "corruptions_mean": corr["mean"] if corr else None,
                "corruptions_counts": pooled_corruption_counts(corr) if corr else None,
                "corruption_order": corr.get("order") if corr else None,
                "corruption_cells": corr.get("cells") if corr else None,
                "n": (clean or pgd or corr or {}).get("data", {}).get("n"),
                "checkpoint": checkpoint,
                "selected_epoch": selected_epoch,
                "last_epoch": None
                if last_epoch is None
                else {k: last_epoch.get(k) for k in EPOCH_KEYS if k in last_epoch},
            }
        )
    return rows


def checkpoint_words(checkpoint: Mapping[str, Any] | None) -> str:
    """The checkpoint cell: ``"epoch 2 of 5, best on test"``, ``"epoch 5 of 5, last"``, or the tag."""
    if not checkpoint:
        return MISSING
    epoch, epochs = checkpoint.get("epoch"), checkpoint.get("epochs")
    if epoch is None:
        return str(checkpoint.get("which") or MISSING)
    where = f"epoch {epoch}" + (f" of {epochs}" if epochs is not None else "")
    if checkpoint.get("rule") == "best":
        split = checkpoint.get("split")
        return f"{where}, best on {split}" if split else f"{where}, best"
    if checkpoint.get("rule") == "last-epoch":
        return f"{where}, last"
    return where


def last_epoch_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per run whose key numbers are of another epoch than its last: training's own test
    numbers at the selected epoch beside those at the last epoch (``metrics.jsonl``)."""
    notes, seen = [], set()
    for row in rows:
        checkpoint, selected, last = row.get("checkpoint"), row.get("selected_epoch"), row.get("last_epoch")
        if row.get("run") in seen or not checkpoint or not selected or not last:
            continue
        seen.add(row.get("run"))
        if selected.get("epoch") == last.get("epoch"):
            continue
        label = row.get("label") or row.get("run")
        images = last.get("test_images")
        on = f" on {images} test images" if images is not None else ""
        numbers = f"clean {percent(selected.get('test_acc'))}% at epoch {selected['epoch']}"
        numbers += f" and {percent(last.get('test_acc'))}% at the last epoch, {last['epoch']}"
        if selected.get("test_robust_acc") is not None and last.get("test_robust_acc") is not None:
            attack = last.get("robust_attack") or "its attack"
            numbers += (
                f"; robust ({attack}, {last.get('robust_examples')} images) "
                f"{percent(selected['test_robust_acc'])}% and {percent(last['test_robust_acc'])}%"
            )
        notes.append(
            f"{label}: the numbers above are of epoch {selected['epoch']} ({checkpoint_words(checkpoint)}); "
            f"training's own evaluation{on} gave {numbers}."
        )
    return notes


def interval(counts: Any, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson interval (fractions) of ``[correct, total]`` counts, or None without usable counts."""
    if not isinstance(counts, (list, tuple)) or len(counts) != 2:
        return None
    correct, total = counts
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts) or not 0 <= correct <= total:
        return None
    return wilson_interval(correct, total, confidence) if total > 0 else None


def _cell(row: Mapping[str, Any], key: str, style: str) -> str:
    if key in _PERCENT_KEYS:
        digits, suffix = STYLES[style]
        value = percent(row.get(key), digits, suffix)
        bounds = interval(row.get(COUNT_KEYS[key]))
        if bounds is None or value == MISSING:
            return value
        return f"{value} ({percent(bounds[0], digits)}–{percent(bounds[1], digits)})"
    if key == "label":
        return str(row.get("label") or row.get("run"))
    if key == "checkpoint":
        return checkpoint_words(row.get("checkpoint"))
    value = row.get(key)
    return MISSING if value is None else str(value)


def key_number_table(
    rows: Sequence[Mapping[str, Any]], style: str = "report"
) -> tuple[list[str], list[list[str]]]:
    """``(header, rows of cells)`` of the key-number table; ``style`` "report" (percent with two
    decimals) or "console" (one decimal and "%", shorter titles: what ``freqtail demo`` prints).

    A percentage whose row has its counts is followed by its 95% Wilson interval in parentheses,
    ``"62.80 (58.48–66.92)"`` (report) or ``"62.8% (58.5–66.9)"`` (console) for 314 of 500.
    """
    title = 1 if style == "report" else 2
    header = [column[title] for column in KEY_NUMBER_COLUMNS]
    cells = [[_cell(row, column[0], style) for column in KEY_NUMBER_COLUMNS] for row in rows]
    return header, cells
