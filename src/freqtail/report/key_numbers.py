"""The demo's summary (``demo-summary.json``) and its key-number table, shared by the demo and the report.

The summary is its own file with its own schema (format :data:`DEMO_SUMMARY_FORMAT`), never a
``results.json`` (that name means a run's evaluation records only, :mod:`freqtail.evaluate.results`).
Its ``key_numbers`` are one row per run and threat model (:func:`run_key_numbers`); the demo prints
them and the report shows them with the same table (:func:`key_number_table`), in two styles that
differ only in titles and decimals. Each percentage comes with its 95% Wilson score interval
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
from freqtail.evaluate.threat_models import THREAT_MODELS
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


def run_key_numbers(name: str, label: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per threat model of a run: clean, PGD-20 and corruption-mean accuracy (fractions), the
    counts behind them and the number of evaluated images."""
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
            }
        )
    return rows


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
