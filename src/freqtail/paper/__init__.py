"""The paper's published numbers, as package data: Tables 1-4 of Lin, Gao, Yang and Sang, "Revisiting
Visual Model Robustness: A Frequency Long-Tailed Distribution View" (NeurIPS 2023).

Every value is an accuracy in percent exactly as printed (two decimals); a value the print does not
show unambiguously is None. ``tables.json`` (beside this module) holds the transcription with each
table's caption, the settings the paper states for it (budgets, attacks, models) and a comment on
everything read with care:

* ``table1`` — PGD-AT, TRADES and MART without and with BaSS; ResNet-18 and WRN-34-10; CIFAR-10 and
  CIFAR-100; columns Clean, PGD-20, AA (l-infinity, eps = 8/255, step 2/255). The rows the paper prints
  as deltas are kept too (:attr:`PublishedTable.printed_deltas`).
* ``table2`` — DAJAT and PORT (architecture not stated: ``model`` None) against the row printed
  "Ours", which is Table 1's TRADES + BaSS WRN-34-10; columns Clean, AA.
* ``table3`` — Restricted-ImageNet, ResNet-50, PGD-AT and TRADES without and with BaSS; Clean, PGD-20,
  AA (eps = 4/255, step 1/255); printed transposed, stored one row per method.
* ``table4`` — AugMix without and with BaSS on WRN-40-2, DenseNet, ResNeXt-29 and ResNet-50, CIFAR-10
  and CIFAR-100; Clean and the CIFAR-C accuracies Noise, Blur, Weather, Digital, Mean. Mean is not the
  plain mean of the four categories but matches ``(4 Noise + 5 Blur + 4 Weather + 6 Digital) / 19``
  within rounding (:attr:`PublishedTable.mean_weights`): a mean over 19 corruptions whose grouping
  the paper does not list; freqtail's categories hold 4, 5, 5 and 5 (spatter under weather), so the
  paper's Weather and Digital columns may group one corruption differently.

>>> from freqtail.paper import published_value, published_deltas
>>> published_value("table1", method="TRADES", model="WRN-34-10", dataset="CIFAR-10", bass=True, column="AA")
62.69
>>> published_deltas("table1")[0].values["Clean"]  # PGD-AT, ResNet-18, CIFAR-10: 89.22 - 83.50
5.72

Names are spelled as the paper prints them: methods ``"PGD-AT"``, ``"TRADES"``, ``"MART"``,
``"AugMix"``, ``"DAJAT"``, ``"PORT"``; models ``"ResNet-18"``, ``"WRN-34-10"``, ``"ResNet-50"``,
``"WRN-40-2"``, ``"DenseNet"``, ``"ResNeXt-29"``; datasets ``"CIFAR-10"``, ``"CIFAR-100"``,
``"Restricted-ImageNet"``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from freqtail.errors import ConfigError, InputError

#: The package data file of the transcription.
DATA_FILE = "tables.json"
#: The format version of :data:`DATA_FILE` this module reads.
FORMAT = 1


@dataclass(frozen=True)
class PublishedRow:
    """One printed row: a method, with or without BaSS, on one model and dataset.

    Attributes:
        method: the defence or training method as printed ("PGD-AT", "AugMix", ...).
        model: the architecture ("ResNet-18", ...), or None where the paper does not name it.
        dataset: "CIFAR-10", "CIFAR-100" or "Restricted-ImageNet".
        bass: True for the paper's "+BaSS" rows.
        values: column -> accuracy in percent as printed (None where the print is unreadable).
        note: what the row is printed as, where that differs from the fields (e.g. "Ours").
    """

    method: str
    model: str | None
    dataset: str
    bass: bool
    values: Mapping[str, float | None]
    note: str | None = None


@dataclass(frozen=True)
class PublishedDelta:
    """A published BaSS gain: the "+BaSS" row minus the baseline row, in percentage points.

    Attributes:
        method, model, dataset: the pair's shared fields.
        values: column -> difference in percentage points, rounded to the printed two decimals
            (None where either value is None).
    """

    method: str
    model: str | None
    dataset: str
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class PublishedTable:
    """One table of the paper.

    Attributes:
        name: "table1" .. "table4".
        caption: the printed caption.
        columns: the value columns, in printed order.
        rows: the printed rows (Table 3 transposed to one row per method).
        section: the paper's section the table belongs to.
        settings: what the paper states for the table (budget, attack, training, models), as text.
        comment: how ambiguous parts of the print were read.
        printed_deltas: the delta rows the paper prints (Table 1 only; empty elsewhere).
        mean_weights: Table 4: category -> weight of the printed Mean (empty elsewhere).
        citation: the paper.
    """

    name: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[PublishedRow, ...]
    section: str = ""
    settings: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    comment: str = ""
    printed_deltas: tuple[PublishedDelta, ...] = ()
    mean_weights: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    citation: str = ""


def _values(raw: Mapping[str, Any], columns: tuple[str, ...], where: str) -> Mapping[str, float | None]:
    if set(raw) != set(columns):
        raise ConfigError(f"The published {where} has the columns {sorted(raw)}, not {list(columns)}.")
    out = {}
    for column in columns:
        value = raw[column]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"The published {where} holds {value!r} in {column}, which is not a number.")
        out[column] = None if value is None else float(value)
    return MappingProxyType(out)


def _table(name: str, raw: Mapping[str, Any], citation: str) -> PublishedTable:
    columns = tuple(raw["columns"])
    rows = tuple(
        PublishedRow(
            method=row["method"],
            model=row["model"],
            dataset=row["dataset"],
            bass=bool(row["bass"]),
            values=_values(row["values"], columns, f"{name} row {number}"),
            note=row.get("note"),
        )
        for number, row in enumerate(raw["rows"], 1)
    )
    printed = tuple(
        PublishedDelta(
            method=row["method"],
            model=row["model"],
            dataset=row["dataset"],
            values=_values(row["values"], columns, f"{name} printed delta {number}"),
        )
        for number, row in enumerate(raw.get("printed_deltas", ()), 1)
    )
    return PublishedTable(
        name=name,
        caption=raw["caption"],
        columns=columns,
        rows=rows,
        section=raw.get("section", ""),
        settings=MappingProxyType(dict(raw.get("settings", {}))),
        comment=raw.get("comment", ""),
        printed_deltas=printed,
        mean_weights=MappingProxyType(dict(raw.get("mean_weights", {}))),
        citation=citation,
    )


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Mapping[str, Any], dict[str, PublishedTable]]:
    text = resources.files(__name__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ConfigError(
            f"The published tables are in format {data.get('format')!r}; this freqtail reads format {FORMAT}."
        )
    paper = MappingProxyType(dict(data["paper"]))
    tables = {name: _table(name, raw, paper["citation"]) for name, raw in data["tables"].items()}
    return paper, tables


def paper_reference() -> Mapping[str, Any]:
    """The paper the tables come from: ``title``, ``authors``, ``venue``, ``citation``."""
    return _load()[0]


def published_tables() -> dict[str, PublishedTable]:
    """Every published table by name ("table1" .. "table4"), in the paper's order."""
    return dict(_load()[1])


def published_table(name: str) -> PublishedTable:
    """One published table.

    Raises:
        InputError: no table of that name (one sentence listing the names).
    """
    tables = _load()[1]
    if name not in tables:
        raise InputError(f"The paper has no table {name!r}; the published tables are {', '.join(tables)}.")
    return tables[name]


def published_row(table: str, *, method: str, model: str | None, dataset: str, bass: bool) -> PublishedRow:
    """The one row of ``table`` with these fields.

    Raises:
        InputError: no such table or row (one sentence listing what the table holds).
    """
    found = published_table(table)
    matches = [
        row
        for row in found.rows
        if (row.method, row.model, row.dataset, row.bass) == (method, model, dataset, bool(bass))
    ]
    if not matches:
        held = "; ".join(sorted({f"{r.method} / {r.model} / {r.dataset}" for r in found.rows}))
        raise InputError(
            f"The paper's {table} has no row {method} / {model} / {dataset} "
            f"{'with' if bass else 'without'} BaSS; it holds {held}."
        )
    return matches[0]


def published_value(
    table: str, *, method: str, model: str | None, dataset: str, bass: bool, column: str
) -> float | None:
    """The printed accuracy (percent) in one cell, or None where the print is unreadable.

    Raises:
        InputError: no such table, row or column (one sentence).
    """
    row = published_row(table, method=method, model=model, dataset=dataset, bass=bass)
    if column not in row.values:
        raise InputError(
            f"The paper's {table} has no column {column!r}; its columns are {', '.join(row.values)}."
        )
    return row.values[column]


def published_deltas(table: str) -> tuple[PublishedDelta, ...]:
    """The published BaSS gains of ``table``: each "+BaSS" row minus its baseline row (same method,
    model and dataset, without BaSS), in percentage points rounded to two decimals, in row order.

    Rows without a baseline in the same table (Table 2's "Ours") have no delta.

    Raises:
        InputError: no table of that name (one sentence).
    """
    found = published_table(table)
    baselines = {(r.method, r.model, r.dataset): r for r in found.rows if not r.bass}
    deltas = []
    for row in found.rows:
        base = baselines.get((row.method, row.model, row.dataset))
        if not row.bass or base is None:
            continue
        values = {
            column: None
            if row.values[column] is None or base.values[column] is None
            else round(row.values[column] - base.values[column], 2)
            for column in found.columns
        }
        deltas.append(PublishedDelta(row.method, row.model, row.dataset, MappingProxyType(values)))
    return tuple(deltas)
