"""A grid's measured accuracy against the paper's published one: :func:`comparison_data` picks the
points from a :class:`~freqtail.report.paper_table.PaperTable`, :func:`plot_comparison` draws them.

One point per matched (cell, column) with a measured value: x = the published accuracy (percent, as
printed), y = the measured one (percent), a vertical error bar for its 95% Wilson interval (the
table's :attr:`~freqtail.report.paper_table.Value.low` / ``high``; none when the record has no
counts), one marker and colour per column (:data:`COLUMN_STYLES`), filled for a BaSS row and open for
a row without BaSS, and the diagonal y = x where measured equals published. Points above the diagonal beat
the paper, points below fall short of it.

Nothing is ever plotted as zero: a cell that is running, pending or failed, a column that was not
evaluated, a cell without a published row or a column without a published number becomes an
:class:`Unplotted` entry (shown under the figure) instead of a point.

In the SVG each point's marker is the group ``point|<cell>|<column>`` and its error bar the group
``interval|<cell>|<column>`` (:func:`point_id`), so what was drawn can be read back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from matplotlib.lines import Line2D

from freqtail.io import atomic_path
from freqtail.report.paper_table import DONE, FAILED, NOT_EVALUATED, TABLE_COLUMNS, PaperTable
from freqtail.report.pyplot import plt
from freqtail.report.spectrum_figures import check_figure_path

#: The columns of the published tables, in the grid table's order (a figure's columns, Figure 3's,
#: have no published number, so no point of this figure).
PUBLISHED_COLUMNS = tuple(dict.fromkeys(column for columns in TABLE_COLUMNS.values() for column in columns))
#: Column title -> (marker, colour): one per published column.
COLUMN_STYLES: dict[str, tuple[str, str]] = dict(
    zip(
        PUBLISHED_COLUMNS,
        zip("os^vD<>P", [plt.get_cmap("tab10").colors[i] for i in (0, 1, 2, 3, 4, 5, 6, 8)], strict=True),
        strict=True,
    )
)
#: What an :class:`Unplotted` entry says when the cell is done but the point is still missing.
NO_PUBLISHED_ROW = "no published row"
NO_PUBLISHED_VALUE = "no published number"
#: The figure's title.
TITLE = "Measured against published accuracy (95% Wilson intervals)"


@dataclass(frozen=True)
class ComparisonPoint:
    """One plotted (cell, column).

    Attributes:
        cell: the cell's name; column: the column title (Clean, PGD-20, ...); table: the published
            table ("table1", "table3", "table4"); bass: the cell is a BaSS row (filled marker).
        published: the published accuracy in percent (x); measured: the measured one in percent (y).
        low, high: the 95% Wilson interval in percent (None when the record has no counts).
        n: the evaluations behind the measured number (None without counts).
    """

    cell: str
    column: str
    table: str
    bass: bool
    published: float
    measured: float
    low: float | None
    high: float | None
    n: int | None


@dataclass(frozen=True)
class Unplotted:
    """A cell, or some of its columns, without a point.

    Attributes:
        cell: the cell's name.
        status: the cell's state (running, pending, failed) when it is not done, else
            :data:`~freqtail.report.paper_table.NOT_EVALUATED`, :data:`NO_PUBLISHED_ROW` or
            :data:`NO_PUBLISHED_VALUE`.
        columns: the columns concerned (all of the cell's for a cell that is not done).
        why: the failure sentence of a failed cell, else None.
    """

    cell: str
    status: str
    columns: tuple[str, ...]
    why: str | None = None

    def text(self) -> str:
        """``cell: failed (why)``, ``cell: running``, ``cell: not evaluated (AA, PGD-20)``."""
        if self.why:
            return f"{self.cell}: {self.status} ({self.why})"
        if self.status in (NOT_EVALUATED, NO_PUBLISHED_VALUE):
            return f"{self.cell}: {self.status} ({', '.join(self.columns)})"
        return f"{self.cell}: {self.status}"


@dataclass(frozen=True)
class ComparisonData:
    """What the figure shows: its points and what it leaves out (each in table order)."""

    points: tuple[ComparisonPoint, ...]
    unplotted: tuple[Unplotted, ...]


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def comparison_data(table: PaperTable) -> ComparisonData:
    """The points of every matched (cell, column) of ``table`` with a measured value, and an
    :class:`Unplotted` entry for everything else (see the module docstring)."""
    points: list[ComparisonPoint] = []
    unplotted: list[Unplotted] = []
    for row in table.rows():
        cell = row.cell
        columns = tuple(value.column for value in row.values)
        if cell.state != DONE:
            unplotted.append(
                Unplotted(cell.name, cell.state, columns, cell.why if cell.state == FAILED else None)
            )
            continue
        if cell.key is None:
            unplotted.append(Unplotted(cell.name, NO_PUBLISHED_ROW, columns))
            continue
        missing = tuple(v.column for v in row.values if v.accuracy is None)
        unpublished = tuple(v.column for v in row.values if v.accuracy is not None and v.published is None)
        if missing:
            unplotted.append(Unplotted(cell.name, NOT_EVALUATED, missing))
        if unpublished:
            unplotted.append(Unplotted(cell.name, NO_PUBLISHED_VALUE, unpublished))
        points += [
            ComparisonPoint(
                cell=cell.name,
                column=value.column,
                table=cell.key.table,
                bass=cell.key.bass,
                published=float(value.published),
                measured=100.0 * value.accuracy,
                low=_percent(value.low),
                high=_percent(value.high),
                n=value.total,
            )
            for value in row.values
            if value.accuracy is not None and value.published is not None
        ]
    return ComparisonData(tuple(points), tuple(unplotted))


def point_id(kind: str, point: ComparisonPoint) -> str:
    """The SVG group id of a point's marker (``kind="point"``) or error bar (``"interval"``)."""
    return f"{kind}|{point.cell}|{point.column}"


def _limits(points: tuple[ComparisonPoint, ...]) -> tuple[float, float]:
    """Axis limits in percent holding every point and error bar, padded, within [0, 100]."""
    if not points:
        return 0.0, 100.0
    values = [v for p in points for v in (p.published, p.measured, p.low, p.high) if v is not None]
    low, high = min(values), max(values)
    pad = max(2.0, 0.05 * (high - low))
    return max(0.0, low - pad), min(100.0, high + pad)


def plot_comparison(
    data: ComparisonData, png: str | os.PathLike, svg: str | os.PathLike, title: str | None = None
) -> tuple[Path, Path]:
    """Draw ``data`` (see the module docstring) and write it atomically as ``png`` and ``svg``.

    Args:
        data: from :func:`comparison_data`.
        png, svg: the two output files (their suffixes name the formats).
        title: the figure's title (default :data:`TITLE`).

    Returns:
        ``(Path(png), Path(svg))``.

    Raises:
        InputError: a path matplotlib cannot write (one sentence).
    """
    targets = [(Path(png), check_figure_path(png)), (Path(svg), check_figure_path(svg))]
    low, high = _limits(data.points)
    fig, ax = plt.subplots(figsize=(6.4, 6.0), constrained_layout=True)
    try:
        ax.plot([low, high], [low, high], color="0.55", linestyle="--", linewidth=1, zorder=1)
        for point in data.points:
            marker, colour = COLUMN_STYLES[point.column]
            yerr = None
            if point.low is not None and point.high is not None:
                yerr = [[point.measured - point.low], [point.high - point.measured]]
            drawn = ax.errorbar(
                [point.published],
                [point.measured],
                yerr=yerr,
                fmt=marker,
                color=colour,
                markerfacecolor=colour if point.bass else "white",
                markersize=7,
                elinewidth=1,
                capsize=3,
                zorder=3,
            )
            drawn.lines[0].set_gid(point_id("point", point))
            for bars in drawn.lines[2]:
                bars.set_gid(point_id("interval", point))
        if not data.points:
            ax.text(
                0.5,
                0.5,
                "No cell has a measured number beside a published one yet.",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.35",
            )
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_xlabel("published accuracy (%)")
        ax.set_ylabel("measured accuracy (%)")
        ax.grid(True, color="0.9")
        ax.set_title(title or TITLE, fontsize=11)
        shown = [c for c in COLUMN_STYLES if any(p.column == c for p in data.points)]
        handles = [
            Line2D([], [], marker=COLUMN_STYLES[c][0], color=COLUMN_STYLES[c][1], linestyle="", label=c)
            for c in shown
        ]
        handles += [
            Line2D([], [], marker="o", color="0.3", linestyle="", label="BaSS row (filled)"),
            Line2D(
                [], [], marker="o", color="0.3", markerfacecolor="white", linestyle="", label="no BaSS (open)"
            ),
            Line2D([], [], color="0.55", linestyle="--", label="measured = published"),
        ]
        ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
        # A fixed hash salt and no date make the SVG's ids and text the same for the same points.
        with plt.rc_context({"svg.hashsalt": "freqtail-grid-figure"}):
            for path, fmt in targets:
                with atomic_path(path) as tmp:
                    fig.savefig(tmp, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
    finally:
        plt.close(fig)
    return targets[0][0], targets[1][0]


__all__ = [
    "COLUMN_STYLES",
    "ComparisonData",
    "ComparisonPoint",
    "Unplotted",
    "comparison_data",
    "plot_comparison",
    "point_id",
]
