"""The demo's summary (``demo-summary.json``) and its key-number table, shared by the demo and the report.

The summary is its own file with its own schema (format :data:`DEMO_SUMMARY_FORMAT`), never a
``results.json`` (that name means a run's evaluation records only, :mod:`freqtail.evaluate.results`).
Its ``key_numbers`` are one row per run and threat model (:func:`run_key_numbers`); the demo prints
them and the report shows them with the same table (:func:`key_number_table`), in two styles that
differ only in titles and decimals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from freqtail.evaluate.records import RecordId
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
                "corruption_order": corr.get("order") if corr else None,
                "corruption_cells": corr.get("cells") if corr else None,
                "n": (clean or pgd or corr or {}).get("data", {}).get("n"),
            }
        )
    return rows


def _cell(row: Mapping[str, Any], key: str, style: str) -> str:
    if key in _PERCENT_KEYS:
        digits, suffix = STYLES[style]
        return percent(row.get(key), digits, suffix)
    if key == "label":
        return str(row.get("label") or row.get("run"))
    value = row.get(key)
    return MISSING if value is None else str(value)


def key_number_table(
    rows: Sequence[Mapping[str, Any]], style: str = "report"
) -> tuple[list[str], list[list[str]]]:
    """``(header, rows of cells)`` of the key-number table; ``style`` "report" (percent with two
    decimals) or "console" (one decimal and "%", shorter titles: what ``freqtail demo`` prints)."""
    title = 1 if style == "report" else 2
    header = [column[title] for column in KEY_NUMBER_COLUMNS]
    cells = [[_cell(row, column[0], style) for column in KEY_NUMBER_COLUMNS] for row in rows]
    return header, cells
