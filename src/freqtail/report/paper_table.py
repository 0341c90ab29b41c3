"""A grid's measured cells beside the paper's published Tables 1, 3 and 4: :class:`PaperTable`.

Inputs are typed (:class:`MeasuredCell`): a cell's name, its published row (:class:`PublishedKey`:
table, method, model, dataset, BaSS; None for a cell the paper has no row for) or its point of a
figure (:class:`FigurePoint`: Figure 3, whose values the paper only plots), its state (``done``,
``running``, ``pending``, ``failed`` with one sentence why), the threat model the paper's protocol
measures it under, and its :class:`~freqtail.evaluate.records.Record` objects by threat model.
:func:`build_paper_table` lays them out as the paper does, and :class:`PaperTable` renders Markdown,
CSV and LaTeX (booktabs).

Columns and the records they come from (:data:`COLUMN_SOURCES`):

* Tables 1 and 3: Clean = ``clean``, PGD-20 = ``pgd-20-ce``, AA = ``autoattack-standard``;
* Table 4: Clean = ``clean``; Noise, Blur, Weather, Digital = the ``corruptions`` record's category
  means (``categories``); Mean = its ``mean`` over every corruption x severity cell.
* Figure 3 (:data:`FIGURE_COLUMNS`; measured values only, the paper prints no numbers): Clean;
  Corruptions = the ``corruptions`` record's ``mean``; PGD-20 (1/255) ... PGD-20 (8/255) = the
  ``pgd-20-ce`` record of exactly that budget (:data:`COLUMN_VARIANTS`, the grid's eps sweep).

Per cell and column: the measured accuracy in percent beside the published one, the number of
evaluated images n and the 95% Wilson score interval
(:func:`~freqtail.evaluate.statistics.wilson_interval`). A corruption column's n counts image x
corruption x severity evaluations (the same images recur in every cell), so its interval treats them as
independent and is narrower than an interval over images.

Per BaSS cell with a baseline cell in the grid (same table, method, model and dataset without BaSS,
same seed): the measured gain Δ = BaSS - baseline in percentage points, each cell under its own paper
threat model (``domain`` for a model trained on the BaSS dataset, ``standard`` otherwise; the table
says which), beside the published Δ (:func:`freqtail.paper.published_deltas`), with the exact
McNemar p-value and the 95% Newcombe interval of the paired difference computed from the two records'
per-image correctness over their common images (:func:`~freqtail.evaluate.statistics.aligned_masks`);
when that is impossible the entry says ``paired test unavailable: <reason>``.

Cells of one group (:attr:`MeasuredCell.group`: configurations that differ only by ``seed``) get a
seed summary: mean ± sample standard deviation (ddof = 1,
:func:`~freqtail.evaluate.statistics.seed_summary`) beside each seed's value.

A running, pending or failed cell shows its state in every column (never a zero, never NaN); a done
cell without the number shows "not evaluated". Which record a column takes when several fit is
:func:`select_record`'s rule: checkpoint ``best``, then ``last``, then the others by name; for robust
numbers the cell's own training budget (:attr:`MeasuredCell.budget`) first.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from freqtail.data.corruptions import CATEGORIES
from freqtail.errors import InputError
from freqtail.evaluate.records import Record
from freqtail.evaluate.statistics import (
    UNAVAILABLE,
    aligned_masks,
    mcnemar_exact,
    paired_difference_interval,
    seed_summary,
    wilson_interval,
)
from freqtail.evaluate.tables import markdown_table, signed_pp
from freqtail.formatting import MISSING, percent
from freqtail.paper import published_deltas, published_table, published_value

#: The cell states a grid manifest knows.
DONE, RUNNING, PENDING, FAILED = "done", "running", "pending", "failed"
STATES = (DONE, RUNNING, PENDING, FAILED)
#: What a done cell without the column's number shows.
NOT_EVALUATED = "not evaluated"
#: The confidence level of every interval.
CONFIDENCE = 0.95
#: Column title -> (record metric, what of the record: "accuracy", a corruption category, or "mean").
COLUMN_SOURCES: dict[str, tuple[str, str]] = {
    "Clean": ("clean", "accuracy"),
    "PGD-20": ("pgd-20-ce", "accuracy"),
    "AA": ("autoattack-standard", "accuracy"),
    "Noise": ("corruptions", "noise"),
    "Blur": ("corruptions", "blur"),
    "Weather": ("corruptions", "weather"),
    "Digital": ("corruptions", "digital"),
    "Mean": ("corruptions", "mean"),
}
#: Figure 3 (c)'s budgets, each the column ``PGD-20 (<budget>)`` taking the record of exactly that
#: budget (record-id variant ``eps=<budget>``).
FIGURE3_BUDGETS = ("1/255", "2/255", "4/255", "8/255")
COLUMN_SOURCES["Corruptions"] = ("corruptions", "mean")
COLUMN_SOURCES.update({f"PGD-20 ({budget})": ("pgd-20-ce", "accuracy") for budget in FIGURE3_BUDGETS})
#: Column title -> the record-id variant it takes (columns not listed take :func:`select_record`'s
#: choice of variant).
COLUMN_VARIANTS: dict[str, str] = {f"PGD-20 ({budget})": f"eps={budget}" for budget in FIGURE3_BUDGETS}
ADVERSARIAL_COLUMNS = ("Clean", "PGD-20", "AA")
CORRUPTION_COLUMNS = ("Clean", "Noise", "Blur", "Weather", "Digital", "Mean")
#: The published tables a grid cell can be compared with, in the paper's order, and their columns.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "table1": ADVERSARIAL_COLUMNS,
    "table3": ADVERSARIAL_COLUMNS,
    "table4": CORRUPTION_COLUMNS,
}
#: The paper's figures a grid cell can stand in, their columns and their section titles.
FIGURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "figure3": ("Clean", "Corruptions", *(f"PGD-20 ({budget})" for budget in FIGURE3_BUDGETS)),
}
FIGURE_TITLES: dict[str, str] = {
    "figure3": (
        "Figure 3: ResNet-18 standard training on CIFAR-10 with BaSS as augmentation (probability gamma) "
        "and as a new dataset; measured values only (the paper shows them as a figure and prints no "
        "numbers to compare with)"
    ),
}
#: The title of the section of cells without a published row.
OWN_TITLE = "Cells without a published row"
#: The CSV header (one row per cell and column; percentages and percentage points as numbers).
CSV_FIELDS = (
    "section",
    "cell",
    "table",
    "method",
    "model",
    "dataset",
    "bass",
    "seed",
    "group",
    "state",
    "why",
    "threat_model",
    "column",
    "status",
    "record",
    "measured_percent",
    "correct",
    "n",
    "ci_low_percent",
    "ci_high_percent",
    "published_percent",
    "baseline_cell",
    "baseline_threat_model",
    "delta_pp",
    "published_delta_pp",
    "mcnemar_p",
    "delta_ci_low_pp",
    "delta_ci_high_pp",
    "paired_n",
    "paired_note",
    "seed_count",
    "seed_mean_percent",
    "seed_sd_percent",
)
_CORRUPTION_REASON = (
    f"{UNAVAILABLE}a corruption column pools corruption x severity cells over the same images, "
    "which the per-image paired test does not cover."
)


@dataclass(frozen=True)
class PublishedKey:
    """A published row: ``published_row(table, method=..., model=..., dataset=..., bass=...)``.

    Attributes:
        table: "table1", "table3" or "table4"; method, model, dataset: as the paper prints them;
        bass: the paper's "+BaSS" row.
    """

    table: str
    method: str
    model: str | None
    dataset: str
    bass: bool

    def label(self) -> str:
        """``PGD-AT + BaSS, ResNet-18, CIFAR-10``."""
        return f"{self.method}{' + BaSS' if self.bass else ''}, {self.model or MISSING}, {self.dataset}"

    def baseline(self) -> PublishedKey:
        """The same row without BaSS."""
        return replace(self, bass=False)


@dataclass(frozen=True)
class FigurePoint:
    """A cell's place in one of the paper's figures (:data:`FIGURE_COLUMNS`).

    Attributes:
        figure: ``"figure3"``; label: the point as the figure names it (``gamma = 0.25``);
        order: its place along the figure (rows are sorted by it).
    """

    figure: str
    label: str
    order: float = 0.0


@dataclass(frozen=True)
class MeasuredCell:
    """One grid cell as the table receives it.

    Attributes:
        name: the cell's name (its run-folder name).
        key: its published row, or None when the paper has none (a researcher's own grid).
        state: one of :data:`STATES`; why: the failure sentence of a failed cell, else None.
        threat_model: the threat model the paper's protocol measures the cell under ("standard",
            "domain", ...); its columns take records of this threat model.
        records: threat model -> the cell's records under it (empty unless done).
        seed: the cell's training seed (None = unknown).
        group: cells with one group label differ only by ``seed`` (None = the cell is its own group).
        budget: the record-id variant of the cell's robust numbers at its training budget
            ("eps=8/255"), preferred when a run holds several budgets; None = no preference.
        figure: its point of a figure of the paper (:class:`FigurePoint`) for a cell without a
            published row; None = none.

    Raises:
        InputError: an unknown state or figure (one sentence).
    """

    name: str
    key: PublishedKey | None
    state: str
    why: str | None = None
    threat_model: str = "standard"
    records: Mapping[str, Sequence[Record]] = field(default_factory=lambda: MappingProxyType({}))
    seed: int | None = None
    group: str | None = None
    budget: str | None = None
    figure: FigurePoint | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise InputError(
                f"The grid cell {self.name} has the state {self.state!r}; a cell is one of "
                f"{', '.join(STATES)}."
            )
        if self.figure is not None and self.figure.figure not in FIGURE_COLUMNS:
            raise InputError(
                f"The grid cell {self.name} names the figure {self.figure.figure!r}; a grid table shows "
                f"{', '.join(FIGURE_COLUMNS)}."
            )
        frozen = {str(tm): tuple(records) for tm, records in self.records.items()}
        object.__setattr__(self, "records", MappingProxyType(frozen))


@dataclass(frozen=True)
class Value:
    """One cell x column.

    Attributes:
        column: the column title.
        status: "measured", :data:`NOT_EVALUATED`, or the cell's state when it is not done.
        accuracy: the measured accuracy as a fraction in [0, 1] (None unless measured).
        correct, total: the counts behind it (total = n; None when the record has no counts).
        low, high: the Wilson interval as fractions (None without counts).
        published: the published accuracy in percent as printed (None without a published row).
        record: the id of the record the number comes from.
    """

    column: str
    status: str
    accuracy: float | None = None
    correct: int | None = None
    total: int | None = None
    low: float | None = None
    high: float | None = None
    published: float | None = None
    record: str | None = None


@dataclass(frozen=True)
class Delta:
    """The BaSS gain of one column: BaSS cell - baseline cell.

    Attributes:
        column: the column title.
        measured: the difference of the two accuracies as a fraction in [-1, 1] (None until both are
            measured).
        published: the published difference in percentage points (None without one).
        p_value: the exact two-sided McNemar p-value; low, high: the Newcombe interval of the paired
            difference (fractions); paired_n: the images both records evaluated.
        note: why the paired numbers (or the difference) are missing, one sentence; None when present.
    """

    column: str
    measured: float | None = None
    published: float | None = None
    p_value: float | None = None
    low: float | None = None
    high: float | None = None
    paired_n: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class SeedStats:
    """One column over the seeds of a group.

    Attributes:
        column: the column title.
        values: ``(seed, accuracy fraction)`` of every cell of the group with the number.
        mean, sd: their mean and sample standard deviation (ddof = 1) as fractions; None without
            values (sd also with one value).
        missing: ``(cell, status)`` of the cells without the number.
    """

    column: str
    values: tuple[tuple[int | None, float], ...]
    mean: float | None
    sd: float | None
    missing: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TableRow:
    """One cell's row: its values and, for a BaSS cell with a baseline, its gains.

    Attributes:
        cell: the :class:`MeasuredCell` (its records included).
        values: one :class:`Value` per column of the section.
        baseline: the baseline cell's name, None when the row has no gain (not a BaSS row, or no
            baseline cell in the grid: see ``baseline_note``).
        baseline_threat_model: the threat model of the baseline's numbers.
        deltas: one :class:`Delta` per column (empty without a baseline).
        baseline_note: why a BaSS row has no gain, one sentence; None otherwise.
    """

    cell: MeasuredCell
    values: tuple[Value, ...]
    baseline: str | None = None
    baseline_threat_model: str | None = None
    deltas: tuple[Delta, ...] = ()
    baseline_note: str | None = None


@dataclass(frozen=True)
class SeedRow:
    """The seed summary of one group of cells that differ only by seed.

    Attributes:
        group: the group's label; key: its published row (None for own cells).
        cells: the group's cell names; stats: one :class:`SeedStats` per column.
    """

    group: str
    key: PublishedKey | None
    cells: tuple[str, ...]
    stats: tuple[SeedStats, ...]


@dataclass(frozen=True)
class TableSection:
    """One published table's cells (or a figure's, or the cells without a published row).

    Attributes:
        table: "table1", "table3", "table4", a figure ("figure3"), or None for :data:`OWN_TITLE`.
        title: the published caption (a figure's :data:`FIGURE_TITLES`, or :data:`OWN_TITLE`).
        columns: the column titles.
        rows: one :class:`TableRow` per cell, in the published table's row order, then by seed.
        seed_rows: one :class:`SeedRow` per group of two or more cells.
        notes: sentences on how this section's numbers are to be read.
    """

    table: str | None
    title: str
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]
    seed_rows: tuple[SeedRow, ...] = ()
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------ record choice
def _checkpoint_rank(tag: str) -> tuple[int, str]:
    return ({"best": 0, "last": 1}.get(tag, 2), tag)


def select_record(cell: MeasuredCell, metric: str, variant: str | None = None) -> Record | None:
    """The record of ``metric`` a cell's column shows: under the cell's threat model, checkpoint
    ``best`` before ``last`` before the others (by name), the cell's ``budget`` variant first, then
    the variants by name; only records of ``variant`` when it is given. None when the cell has no
    such record."""
    found = [
        r
        for r in cell.records.get(cell.threat_model, ())
        if r.id.metric == metric and (variant is None or r.id.variant == variant)
    ]
    if not found:
        return None
    return min(
        found,
        key=lambda r: (
            _checkpoint_rank(r.id.checkpoint),
            cell.budget is not None and r.id.variant != cell.budget,
            r.id.variant,
        ),
    )


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if int(value) == value else None


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def _category_counts(record: Record, category: str) -> tuple[int | None, int | None]:
    """Pooled (correct, total) over the category's corruption x severity cells of a corruption record."""
    table = record.extras.get("per_corruption") or {}
    names = CATEGORIES.get(category, ()) if category != "mean" else tuple(table)
    correct = total = 0
    for name in names:
        for cell in (table.get(name) or {}).values():
            c, t = _count((cell or {}).get("correct")), _count((cell or {}).get("total"))
            if c is None or t is None:
                return None, None
            correct, total = correct + c, total + t
    return (correct, total) if total > 0 else (None, None)


def _measure(cell: MeasuredCell, column: str, published: float | None, confidence: float) -> Value:
    if cell.state != DONE:
        return Value(column, cell.state, published=published)
    metric, part = COLUMN_SOURCES[column]
    record = select_record(cell, metric, COLUMN_VARIANTS.get(column))
    if record is None:
        return Value(column, NOT_EVALUATED, published=published)
    if part == "accuracy":
        correct, total = _count(record.correct), _count(record.total)
        accuracy = _fraction(record.accuracy)
    else:
        correct, total = _category_counts(record, part)
        source = (
            record.extras.get("mean") if part == "mean" else (record.extras.get("categories") or {}).get(part)
        )
        accuracy = _fraction(source)
    if correct is not None and total is not None and total > 0 and 0 <= correct <= total:
        if accuracy is None or part == "accuracy":
            accuracy = correct / total
        low, high = wilson_interval(correct, total, confidence)
    else:
        correct = total = low = high = None
    if accuracy is None:
        return Value(column, NOT_EVALUATED, published=published, record=str(record.id))
    return Value(column, "measured", accuracy, correct, total, low, high, published, str(record.id))


def _published(key: PublishedKey | None, column: str) -> float | None:
    if key is None:
        return None
    return published_value(
        key.table, method=key.method, model=key.model, dataset=key.dataset, bass=key.bass, column=column
    )


def _published_delta(key: PublishedKey, column: str) -> float | None:
    for delta in published_deltas(key.table):
        if (delta.method, delta.model, delta.dataset) == (key.method, key.model, key.dataset):
            return delta.values.get(column)
    return None


# -------------------------------------------------------------------------------------------- gains
def _delta(
    bass: MeasuredCell,
    base: MeasuredCell,
    column: str,
    bass_value: Value,
    base_value: Value,
    confidence: float,
) -> Delta:
    published = _published_delta(bass.key, column) if bass.key is not None else None
    waiting = [c for c in (bass, base) if c.state != DONE]
    if waiting:
        words = ", ".join(f"{c.name} ({c.state})" for c in waiting)
        return Delta(column, published=published, note=f"Waiting for {words}.")
    if bass_value.accuracy is None or base_value.accuracy is None:
        absent = bass.name if bass_value.accuracy is None else base.name
        return Delta(column, published=published, note=f"The cell {absent} has no {column} number.")
    measured = bass_value.accuracy - base_value.accuracy
    metric = COLUMN_SOURCES[column][0]
    if metric == "corruptions":
        return Delta(column, measured, published, note=_CORRUPTION_REASON)
    variant = COLUMN_VARIANTS.get(column)
    first, second = select_record(base, metric, variant), select_record(bass, metric, variant)
    try:
        masks, reason = aligned_masks(first, second)
    except InputError as err:
        masks, reason = None, f"{UNAVAILABLE}{err}"
    if masks is None:
        return Delta(column, measured, published, note=reason)
    test = mcnemar_exact(masks.first, masks.second)
    low, high = paired_difference_interval(masks.first, masks.second, confidence)
    return Delta(column, measured, published, test.p_value, low, high, test.n)


def _baseline_for(
    cell: MeasuredCell, cells: Sequence[MeasuredCell]
) -> tuple[MeasuredCell | None, str | None]:
    """The baseline cell of a BaSS cell: its key without BaSS, the same seed (or the only one)."""
    if cell.key is None or not cell.key.bass:
        return None, None
    candidates = [c for c in cells if c.key == cell.key.baseline()]
    if not candidates:
        return None, f"The grid has no baseline cell ({cell.key.baseline().label()}) for {cell.name}."
    same_seed = [c for c in candidates if c.seed == cell.seed]
    if same_seed:
        return same_seed[0], None
    if len(candidates) == 1:
        return candidates[0], None
    return None, f"The grid has no baseline cell with the seed {cell.seed} of {cell.name}."


# -------------------------------------------------------------------------------------------- seeds
def _seed_rows(rows: Sequence[TableRow], columns: Sequence[str]) -> tuple[SeedRow, ...]:
    groups: dict[str, list[TableRow]] = {}
    for row in rows:
        if row.cell.group is not None:
            groups.setdefault(row.cell.group, []).append(row)
    out = []
    for group, members in groups.items():
        if len(members) < 2:
            continue
        stats = []
        for index, column in enumerate(columns):
            values = [
                (row.cell.seed, row.values[index].accuracy)
                for row in members
                if row.values[index].accuracy is not None
            ]
            missing = tuple(
                (row.cell.name, row.values[index].status)
                for row in members
                if row.values[index].accuracy is None
            )
            mean, sd = seed_summary(v for _, v in values) if values else (None, None)
            stats.append(SeedStats(column, tuple(values), mean, sd, missing))
        out.append(SeedRow(group, members[0].cell.key, tuple(r.cell.name for r in members), tuple(stats)))
    return tuple(out)


# -------------------------------------------------------------------------------------------- build
def _own_columns(cells: Sequence[MeasuredCell]) -> tuple[str, ...]:
    metrics = {r.id.metric for c in cells for records in c.records.values() for r in records}
    columns = ["Clean"]
    if metrics & {"pgd-20-ce", "autoattack-standard"}:
        columns += ["PGD-20", "AA"]
    if "corruptions" in metrics:
        columns += [c for c in CORRUPTION_COLUMNS if c != "Clean"]
    return tuple(columns)


def _seed_order(cell: MeasuredCell) -> int:
    return cell.seed if cell.seed is not None else -1


def _row_order(key: PublishedKey) -> int:
    rows = published_table(key.table).rows
    for index, row in enumerate(rows):
        if (row.method, row.model, row.dataset, row.bass) == (key.method, key.model, key.dataset, key.bass):
            return index
    return len(rows)


def _section_notes(table: str | None, rows: Sequence[TableRow], confidence: float) -> tuple[str, ...]:
    level = f"{100 * confidence:g}%"
    models = sorted({row.cell.threat_model for row in rows})
    notes = [
        f"Accuracy in %; [low, high] = the {level} Wilson score interval of correct / n; n = evaluated "
        f"images. Threat models shown: {', '.join(models)} (a model trained on the BaSS dataset is "
        "measured under `domain`, the paper's protocol of testing on the BaSS-converted test set; every "
        "other model under `standard`). Each number is the record of checkpoint `best` (else `last`) at "
        "the cell's training budget; the CSV names every record's id."
    ]
    if any(row.deltas for row in rows):
        notes.append(
            f"Δ = BaSS cell - baseline cell in percentage points, each under its own threat model; p = exact "
            f"two-sided McNemar test and [low, high] = Newcombe's {level} hybrid score interval of the "
            "paired difference, on the images both records evaluated (paired n)."
        )
    if table in FIGURE_COLUMNS:
        notes.append(
            "PGD-20 (e): the PGD-20 record at exactly the L-inf budget e (step e / 4), from the grid's eps "
            "sweep; Corruptions: mean accuracy over every corruption x severity cell of the -C set the "
            "cell's threat model sees (CIFAR-10-C under `standard`; BaSS then corrupt, the paper's "
            "CIFAR-10-B-C, under `domain`), its n counting image x cell evaluations. The paper plots "
            "these values without printing them: there is no published number or gain to compare with."
        )
    if table == "table4" or any(v.column in CORRUPTION_COLUMNS[1:] for row in rows for v in row.values):
        weights = published_table("table4").mean_weights
        grouping = " + ".join(f"{w} {c}" for c, w in weights.items())
        notes.append(
            "Noise / Blur / Weather / Digital: mean accuracy over the category's corruption x severity "
            "cells; Mean: over every cell. Their n counts image x cell evaluations (the images recur in "
            "every cell), so the interval treats them as independent and is narrower than one over "
            f"images. The paper's Mean matches ({grouping}) / {sum(weights.values())} of its categories "
            "(4, 5, 4 and 6 corruptions); freqtail's categories hold 4, 5, 5 and 5 (spatter under "
            "weather), so the Weather and Digital columns may group one corruption differently."
        )
    return tuple(notes)


def build_paper_table(
    cells: Iterable[MeasuredCell], *, confidence: float = CONFIDENCE, notes: Sequence[str] = ()
) -> PaperTable:
    """The :class:`PaperTable` of ``cells`` (see the module docstring).

    Args:
        cells: the grid's cells, in the grid's order.
        confidence: the level of every interval, in (0, 1).
        notes: sentences the caller adds under the table (e.g. how cells were matched to rows).

    Raises:
        InputError: two cells with one name, a published key the paper does not have, or a
            confidence level outside (0, 1) (one sentence).
    """
    cells = list(cells)
    names = [cell.name for cell in cells]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise InputError(f"The grid table received the cell {twice} twice; give each cell one entry.")
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(
            f"The confidence level {confidence!r} is not strictly between 0 and 1; use e.g. 0.95."
        )
    sections = []
    groups: list[tuple[str | None, list[MeasuredCell]]] = [
        (table, [c for c in cells if c.key is not None and c.key.table == table]) for table in TABLE_COLUMNS
    ]
    unknown = [c for c in cells if c.key is not None and c.key.table not in TABLE_COLUMNS]
    if unknown:
        raise InputError(
            f"The grid cell {unknown[0].name} names the published {unknown[0].key.table}; a grid table "
            f"compares with {', '.join(TABLE_COLUMNS)}."
        )
    groups += [
        (figure, [c for c in cells if c.key is None and c.figure is not None and c.figure.figure == figure])
        for figure in FIGURE_COLUMNS
    ]
    groups.append((None, [c for c in cells if c.key is None and c.figure is None]))
    for table, members in groups:
        if not members:
            continue
        if table in TABLE_COLUMNS:
            members = sorted(members, key=lambda c: (_row_order(c.key), _seed_order(c)))
            columns = TABLE_COLUMNS[table]
        elif table in FIGURE_COLUMNS:
            members = sorted(members, key=lambda c: (c.figure.order, _seed_order(c)))
            columns = FIGURE_COLUMNS[table]
        else:
            columns = _own_columns(members)
        values = {
            cell.name: tuple(_measure(cell, col, _published(cell.key, col), confidence) for col in columns)
            for cell in members
        }
        rows = []
        for cell in members:
            base, why = _baseline_for(cell, members)
            if base is None:
                rows.append(TableRow(cell, values[cell.name], baseline_note=why))
                continue
            deltas = tuple(
                _delta(cell, base, col, values[cell.name][i], values[base.name][i], confidence)
                for i, col in enumerate(columns)
            )
            rows.append(TableRow(cell, values[cell.name], base.name, base.threat_model, deltas))
        if table in TABLE_COLUMNS:
            title = published_table(table).caption
        else:
            title = FIGURE_TITLES.get(table or "", OWN_TITLE)
        sections.append(
            TableSection(
                table,
                title,
                columns,
                tuple(rows),
                _seed_rows(rows, columns),
                _section_notes(table, rows, confidence),
            )
        )
    return PaperTable(tuple(sections), float(confidence), tuple(notes))


# ---------------------------------------------------------------------------------------- rendering
def _interval_pp(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{percent(low)}, {percent(high)}]"


def value_text(value: Value) -> str:
    """``83.40 [82.10, 84.60] n=1000 (paper 83.50)``; the status for a number not measured."""
    paper = "" if value.published is None else f" (paper {value.published:.2f})"
    if value.accuracy is None:
        return f"{value.status}{paper}"
    n = "" if value.total is None else f" n={value.total}"
    return f"{percent(value.accuracy)}{_interval_pp(value.low, value.high)}{n}{paper}"


def p_text(p_value: float) -> str:
    """A p-value in a few digits: ``0.034``, ``1.2e-05``."""
    return f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"


def delta_text(delta: Delta) -> str:
    """``+5.72 [+4.10, +7.30] p=0.0012 n=1000 (paper +5.72)``, or the measured part and the note."""
    paper = "" if delta.published is None else f" (paper {delta.published:+.2f})"
    if delta.measured is None:
        return f"{delta.note or MISSING}{paper}"
    text = signed_pp(delta.measured)
    if delta.p_value is not None and delta.low is not None and delta.high is not None:
        text += (
            f" [{signed_pp(delta.low)}, {signed_pp(delta.high)}] p={p_text(delta.p_value)} n={delta.paired_n}"
        )
    text += paper
    if delta.note:
        text += f"; {delta.note}"
    return text


def seed_text(stats: SeedStats) -> str:
    """``83.90 ± 0.57 (seed 0: 83.50; seed 1: 84.30; seed 2: running)``."""
    if stats.mean is None:
        head = MISSING
    elif stats.sd is None:
        head = f"{percent(stats.mean)} (one seed)"
    else:
        head = f"{percent(stats.mean)} ± {percent(stats.sd)}"
    parts = [f"seed {MISSING if s is None else s}: {percent(v)}" for s, v in stats.values]
    parts += [f"{cell}: {status}" for cell, status in stats.missing]
    return f"{head} ({'; '.join(parts)})" if parts else head


def _state_text(cell: MeasuredCell) -> str:
    return f"{cell.state}: {cell.why}" if cell.state == FAILED and cell.why else cell.state


def _key_text(key: PublishedKey | None) -> str:
    return MISSING if key is None else key.label()


def _seed_label(seed: int | None) -> str:
    return MISSING if seed is None else str(seed)


def row_cells(row: TableRow) -> list[str]:
    """A cell's row as texts under :data:`ROW_HEADER` and the section's columns (:func:`value_text`)."""
    cell = row.cell
    paper = cell.figure.label if cell.key is None and cell.figure is not None else _key_text(cell.key)
    lead = [cell.name, paper, _seed_label(cell.seed), cell.threat_model, _state_text(cell)]
    return lead + [value_text(v) for v in row.values]


def delta_cells(row: TableRow) -> list[str]:
    """A BaSS row's gains as texts under :data:`DELTA_HEADER` and ``Δ <column>`` (:func:`delta_text`)."""
    threat = f"{row.cell.threat_model} - {row.baseline_threat_model}"
    return [row.cell.name, row.baseline or MISSING, _seed_label(row.cell.seed), threat] + [
        delta_text(d) for d in row.deltas
    ]


def seed_cells(row: SeedRow) -> list[str]:
    """A seed group as texts under :data:`SEED_HEADER` and the section's columns (:func:`seed_text`)."""
    return [row.group, _key_text(row.key), ", ".join(row.cells)] + [seed_text(s) for s in row.stats]


def _md(cells: Sequence[str]) -> list[str]:
    """Cells safe inside a Markdown table row (``|`` escaped, one line)."""
    return [" ".join(str(c).split()).replace("|", "\\|") for c in cells]


ROW_HEADER = ("cell", "paper row", "seed", "threat model", "state")
DELTA_HEADER = ("BaSS cell", "baseline cell", "seed", "threat models")
SEED_HEADER = ("configuration", "paper row", "cells")
#: The titles of a section's gains and seed tables.
GAINS_TITLE = "BaSS gains (Δ, percentage points):"
SEEDS_TITLE = "Over seeds (mean ± sd, sd with ddof = 1):"

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``_`` -> ``\\_``, ``±`` -> ``$\\pm$``, ...)."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def _latex_tabular(header: Sequence[str], rows: Sequence[Sequence[str]], lead: int) -> list[str]:
    spec = "l" * lead + "r" * (len(header) - lead)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _number(value: float | int | None, scale: float = 1.0) -> str:
    """A CSV number: empty for None, else up to 10 significant digits (never NaN)."""
    if value is None:
        return ""
    number = float(value) * scale
    return format(number, ".10g") if math.isfinite(number) else ""


@dataclass(frozen=True)
class PaperTable:
    """A grid's cells in the paper's layout (see the module docstring).

    Attributes:
        sections: one :class:`TableSection` per published table with cells, then per figure with
            cells, then the cells without a published row.
        confidence: the level of every interval.
        notes: the caller's sentences (shown under the title).
    """

    sections: tuple[TableSection, ...]
    confidence: float = CONFIDENCE
    notes: tuple[str, ...] = ()

    def rows(self) -> tuple[TableRow, ...]:
        """Every cell's row, section by section."""
        return tuple(row for section in self.sections for row in section.rows)

    def to_markdown(self, title: str = "Grid against the paper") -> str:
        """The tables as GitHub Markdown: per section the cells, the BaSS gains and the seed summary."""
        lines = [f"# {title}", ""]
        lines += [f"- {note}" for note in self.notes]
        if not self.sections:
            lines += ["", "No cells."]
        for section in self.sections:
            lines += ["", f"## {section.title}", ""]
            header = [*ROW_HEADER, *section.columns]
            lines.append(markdown_table(header, [_md(row_cells(r)) for r in section.rows], numeric_from=5))
            gains = [r for r in section.rows if r.deltas]
            if gains:
                lines += ["", GAINS_TITLE, ""]
                header = [*DELTA_HEADER, *(f"Δ {c}" for c in section.columns)]
                lines.append(markdown_table(header, [_md(delta_cells(r)) for r in gains], numeric_from=4))
            if section.seed_rows:
                lines += ["", SEEDS_TITLE, ""]
                header = [*SEED_HEADER, *section.columns]
                lines.append(markdown_table(header, [_md(seed_cells(r)) for r in section.seed_rows], 3))
            missing = [r.baseline_note for r in section.rows if r.baseline_note]
            lines += ["", "Notes:"] + [f"- {note}" for note in (*section.notes, *missing)]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """The tables as a LaTeX fragment (booktabs: ``\\toprule``, ``\\midrule``, ``\\bottomrule``;
        needs ``\\usepackage{booktabs}`` and ``graphicx`` for its ``\\resizebox``), every text escaped."""
        lines = ["% freqtail grid table against the paper; needs \\usepackage{booktabs} and graphicx"]
        for section in self.sections:
            lines += ["", r"\begin{table}[ht]", r"\centering", rf"\caption{{{latex_escape(section.title)}}}"]
            lines += [r"\resizebox{\textwidth}{!}{%"]
            header = [*ROW_HEADER, *section.columns]
            lines += _latex_tabular(header, [row_cells(r) for r in section.rows], 5)
            lines[-1] += "}"
            gains = [r for r in section.rows if r.deltas]
            if gains:
                lines += [r"\par\medskip", r"\resizebox{\textwidth}{!}{%"]
                header = [*DELTA_HEADER, *(f"Δ {c}" for c in section.columns)]
                lines += _latex_tabular(header, [delta_cells(r) for r in gains], 4)
                lines[-1] += "}"
            if section.seed_rows:
                lines += [r"\par\medskip", r"\resizebox{\textwidth}{!}{%"]
                header = [*SEED_HEADER, *section.columns]
                lines += _latex_tabular(header, [seed_cells(r) for r in section.seed_rows], 3)
                lines[-1] += "}"
            lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> list[dict[str, str]]:
        """One mapping per cell and column with :data:`CSV_FIELDS` (numbers as text, empty = none)."""
        out = []
        for section in self.sections:
            seeds = {
                name: (row, stats)
                for row in section.seed_rows
                for name in row.cells
                for stats in [dict(zip(section.columns, row.stats, strict=True))]
            }
            for row in section.rows:
                cell, key = row.cell, row.cell.key
                for index, value in enumerate(row.values):
                    delta = row.deltas[index] if row.deltas else None
                    seed_row = seeds.get(cell.name)
                    stats = seed_row[1][value.column] if seed_row else None
                    out.append(
                        {
                            "section": section.table or "own",
                            "cell": cell.name,
                            "table": "" if key is None else key.table,
                            "method": "" if key is None else key.method,
                            "model": "" if key is None or key.model is None else key.model,
                            "dataset": "" if key is None else key.dataset,
                            "bass": "" if key is None else str(key.bass).lower(),
                            "seed": "" if cell.seed is None else str(cell.seed),
                            "group": cell.group or "",
                            "state": cell.state,
                            "why": cell.why or "",
                            "threat_model": cell.threat_model,
                            "column": value.column,
                            "status": value.status,
                            "record": value.record or "",
                            "measured_percent": _number(value.accuracy, 100),
                            "correct": _number(value.correct),
                            "n": _number(value.total),
                            "ci_low_percent": _number(value.low, 100),
                            "ci_high_percent": _number(value.high, 100),
                            "published_percent": _number(value.published),
                            "baseline_cell": row.baseline or "",
                            "baseline_threat_model": row.baseline_threat_model or "",
                            "delta_pp": _number(delta.measured if delta else None, 100),
                            "published_delta_pp": _number(delta.published if delta else None),
                            "mcnemar_p": _number(delta.p_value if delta else None),
                            "delta_ci_low_pp": _number(delta.low if delta else None, 100),
                            "delta_ci_high_pp": _number(delta.high if delta else None, 100),
                            "paired_n": _number(delta.paired_n if delta else None),
                            "paired_note": (delta.note or "") if delta else (row.baseline_note or ""),
                            "seed_count": "" if stats is None else str(len(stats.values)),
                            "seed_mean_percent": _number(stats.mean if stats else None, 100),
                            "seed_sd_percent": _number(stats.sd if stats else None, 100),
                        }
                    )
        return out

    def to_csv(self) -> str:
        """:meth:`csv_rows` as CSV text with a header line (:data:`CSV_FIELDS`)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.csv_rows())
        return buffer.getvalue()


__all__ = [
    "CONFIDENCE",
    "CSV_FIELDS",
    "COLUMN_SOURCES",
    "COLUMN_VARIANTS",
    "FIGURE3_BUDGETS",
    "FIGURE_COLUMNS",
    "FIGURE_TITLES",
    "DELTA_HEADER",
    "GAINS_TITLE",
    "ROW_HEADER",
    "SEED_HEADER",
    "SEEDS_TITLE",
    "STATES",
    "TABLE_COLUMNS",
    "Delta",
    "FigurePoint",
    "MeasuredCell",
    "PaperTable",
    "PublishedKey",
    "SeedRow",
    "SeedStats",
    "TableRow",
    "TableSection",
    "Value",
    "build_paper_table",
    "delta_cells",
    "delta_text",
    "latex_escape",
    "p_text",
    "row_cells",
    "seed_cells",
    "seed_text",
    "select_record",
    "value_text",
]
