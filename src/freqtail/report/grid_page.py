"""A grid's report page: its table against the paper and the measured-against-published figure, as
one self-contained HTML file (:func:`grid_report_html`, rendered by :mod:`freqtail.report.page`).

The page holds, in order:

* a header (:class:`GridReportHeader`): the grid folder, what the grid was built from (a preset family
  or a base), the cells per state, when the page was written and by which freqtail;
* the figure (:mod:`freqtail.report.grid_figure`, its PNG embedded as a ``data:`` URI), how to read
  it, and every cell or column the figure leaves out with its state and why (never a zero);
* per published table (then the cells without a published row) the same rows and texts as
  ``table.md`` (:func:`~freqtail.report.paper_table.row_cells`, ``delta_cells``, ``seed_cells``):
  measured beside published with n and the 95% Wilson interval, the BaSS gains with the McNemar
  p-value and the paired interval, the mean ± sd over seeds, and the section's notes.

Nothing here reads a folder but the figure's PNG; the caller (:mod:`freqtail.workflows.grid_report`)
gathers the inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from freqtail import __version__
from freqtail.report.grid_figure import ComparisonData
from freqtail.report.page import Bullets, Figure, Heading, Page, Paragraph, Section, Table, render_html, slug
from freqtail.report.paper_table import (
    DELTA_HEADER,
    GAINS_TITLE,
    ROW_HEADER,
    SEED_HEADER,
    SEEDS_TITLE,
    STATES,
    PaperTable,
    TableSection,
    delta_cells,
    row_cells,
    seed_cells,
)

#: The caption of each section's table of cells.
CELLS_CAPTION = "Cells: measured % [95% Wilson interval] n=evaluations (paper %)"
FIGURE_SECTION = "Measured against published"
#: How to read the figure (shown under it).
FIGURE_HELP = (
    "Each point is one cell and column: x is the paper's number, y the measured one, both in percent; "
    "the vertical bar is the 95% Wilson interval of the measured number (how far it may be from what "
    "the whole test set would give). Points on the dashed diagonal match the paper, points above beat "
    "it, points below fall short. One marker and colour per column; filled markers are BaSS rows, open "
    "ones rows without BaSS, so a filled point above its open partner is a BaSS gain. At "
    "`--scale smoke` the measured numbers check the pipeline, not the paper."
)


@dataclass(frozen=True)
class GridReportHeader:
    """The facts at the top of a grid's report.

    Attributes:
        folder: the grid folder as the page names it.
        origin: what the grid was built from ("preset family t1", "base t1-cifar10-resnet18-pgd-at").
        written: when the page was written (UTC, ``YYYY-MM-DDTHH:MM:SSZ``).
        figure_files: the names of the figure's files beside the page (PNG, SVG).
        version: the freqtail that wrote it.
    """

    folder: str
    origin: str
    written: str
    figure_files: tuple[str, ...] = ()
    version: str = __version__


def state_counts(table: PaperTable) -> dict[str, int]:
    """Cells per state (:data:`~freqtail.report.paper_table.STATES`, every state, zeros included)."""
    counts = dict.fromkeys(STATES, 0)
    for row in table.rows():
        counts[row.cell.state] += 1
    return counts


def _counts_text(table: PaperTable) -> str:
    counts = state_counts(table)
    return ", ".join(f"{count} {state}" for state, count in counts.items()) + f" (of {sum(counts.values())})"


def _header_blocks(header: GridReportHeader, table: PaperTable) -> list:
    rows = [
        ["grid folder", f"`{header.folder}`"],
        ["built from", header.origin],
        ["cells", _counts_text(table)],
        ["written", header.written],
        ["freqtail", header.version],
    ]
    blocks: list = [Table(["grid", "value"], rows, numeric_from=2)]
    if table.notes:
        blocks.append(Bullets(list(table.notes)))
    return blocks


def _figure_section(figure: ComparisonData, png: Path, header: GridReportHeader) -> Section:
    caption = f"{len(figure.points)} measured numbers beside their published ones."
    blocks: list = [Figure(png, caption), Paragraph(FIGURE_HELP)]
    if header.figure_files:
        names = " and ".join(f"`{name}`" for name in header.figure_files)
        blocks.append(Paragraph(f"The figure is also in {names} beside this page."))
    blocks.append(Heading("Not in the figure"))
    if figure.unplotted:
        blocks.append(Bullets([entry.text() for entry in figure.unplotted]))
    else:
        blocks.append(Paragraph("Every cell and column with a published number is in the figure."))
    return Section(FIGURE_SECTION, slug(FIGURE_SECTION), blocks)


def _table_section(section: TableSection) -> Section:
    header = [*ROW_HEADER, *section.columns]
    blocks: list = [
        Table(header, [row_cells(r) for r in section.rows], numeric_from=5, caption=CELLS_CAPTION)
    ]
    gains = [r for r in section.rows if r.deltas]
    if gains:
        header = [*DELTA_HEADER, *(f"Δ {c}" for c in section.columns)]
        blocks.append(Table(header, [delta_cells(r) for r in gains], numeric_from=4, caption=GAINS_TITLE))
    if section.seed_rows:
        header = [*SEED_HEADER, *section.columns]
        blocks.append(
            Table(header, [seed_cells(r) for r in section.seed_rows], numeric_from=3, caption=SEEDS_TITLE)
        )
    notes = [*section.notes, *(r.baseline_note for r in section.rows if r.baseline_note)]
    if notes:
        blocks += [Paragraph("**Notes**"), Bullets(notes)]  # a heading would repeat one id per section
    return Section(section.title, slug(section.table or section.title), blocks)


def grid_report_page(
    table: PaperTable, figure: ComparisonData, figure_png: str | os.PathLike, header: GridReportHeader
) -> Page:
    """The report as a :class:`~freqtail.report.page.Page` (see the module docstring)."""
    sections = [_figure_section(figure, Path(figure_png), header)]
    sections += [_table_section(section) for section in table.sections]
    if not table.sections:
        sections.append(Section("Cells", "cells", [Paragraph("The grid has no cells.")]))
    name = Path(header.folder).name or header.folder
    return Page(f"Grid {name} against the paper", _header_blocks(header, table), sections)


def grid_report_html(
    table: PaperTable, figure: ComparisonData, figure_png: str | os.PathLike, header: GridReportHeader
) -> str:
    """The report as one self-contained HTML document (inline CSS, the figure's PNG embedded)."""
    footer = f"Written by freqtail {header.version} at {header.written}."
    return render_html(grid_report_page(table, figure, figure_png, header), footer=footer)


__all__ = ["GridReportHeader", "grid_report_html", "grid_report_page", "state_counts"]
