"""A grid folder's HTML report: :func:`write_grid_report` writes ``GRID/grid-report.html`` and its figure.

It reads the grid's table against the paper (:func:`~freqtail.workflows.grid_table.grid_table`, the
same typed table ``table.md`` / ``table.csv`` are rendered from), picks the figure's points
(:func:`freqtail.report.grid_figure.comparison_data`), writes the figure of measured against
published accuracy as ``measured-vs-published.png`` and ``.svg``, and then the self-contained page
(:func:`freqtail.report.grid_page.grid_report_html`, the PNG embedded); names in
:class:`~freqtail.runs.layout.GridLayout`. Every file is written atomically, so a reader never sees a
half-written one. :func:`~freqtail.workflows.grid_run.run_grid` rewrites the report after every
finished or failed cell, next to the table.

>>> from freqtail.workflows.grid_report import write_grid_report
>>> report = write_grid_report("grids/t1")
>>> report.html, len(report.figure.points)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from freqtail.io import atomic_write_text
from freqtail.report.grid_figure import ComparisonData, comparison_data, plot_comparison
from freqtail.report.grid_page import GridReportHeader, grid_report_html
from freqtail.runs.layout import GridLayout
from freqtail.workflows.grid_manifest import read_base, read_family
from freqtail.workflows.grid_table import grid_table


@dataclass(frozen=True)
class GridReport:
    """What :func:`write_grid_report` wrote.

    Attributes:
        html: the page; figure_png, figure_svg: the figure's files.
        figure: the points drawn and the cells and columns left out.
    """

    html: Path
    figure_png: Path
    figure_svg: Path
    figure: ComparisonData


def grid_origin(folder: str | os.PathLike) -> str:
    """What the grid in ``folder`` was built from: ``preset family t1``, ``base NAME`` or
    ``explicit cells``."""
    family = read_family(folder)
    if family is not None:
        return f"preset family {family}"
    base = read_base(folder)
    return f"base {base}" if base is not None else "explicit cells"


def write_grid_report(folder: str | os.PathLike) -> GridReport:
    """Write the grid's report and figure in ``folder`` (see the module docstring).

    Raises:
        InputError: no grid manifest in ``folder``, or a damaged one (one sentence);
        OutputError: a file cannot be written.
    """
    layout = GridLayout.of(folder)
    table = grid_table(layout.folder)
    figure = comparison_data(table)
    png, svg = plot_comparison(figure, layout.figure_png, layout.figure_svg)
    header = GridReportHeader(
        folder=str(layout.folder),
        origin=grid_origin(layout.folder),
        written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        figure_files=(png.name, svg.name),
    )
    html = atomic_write_text(layout.report_html, grid_report_html(table, figure, png, header))
    return GridReport(html, png, svg, figure)


__all__ = ["GridReport", "grid_origin", "write_grid_report"]
