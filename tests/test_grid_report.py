"""The grid's HTML report: the table of table.csv, one figure of measured against published accuracy.

The grid is the one of tests/test_grid_support.py (hand-made records, states set through the real
manifest). Every expectation comes from an independent source: the numbers of ``table.csv`` (written
by the table's own renderer), the manifest's states, the SVG the figure wrote (each point's marker
and error bar read back from the file), and the PNG file the page must embed byte for byte.
"""
# ruff: noqa: F811  (the grid fixture imported from test_grid_support is a parameter here)

from __future__ import annotations

import base64
import csv
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest

from freqtail import __version__
from freqtail.cli import main
from freqtail.evaluate.results import write_results
from freqtail.report.paper_table import GAINS_TITLE, SEEDS_TITLE
from freqtail.runs.layout import GridLayout, RunLayout
from freqtail.workflows.grid_manifest import GridManifest, read_states
from freqtail.workflows.grid_report import write_grid_report
from freqtail.workflows.grid_run import run_grid
from freqtail.workflows.grid_spec import CellSpec, GridSpec
from freqtail.workflows.grid_table import write_grid_table
from test_grid_support import BASE, BASS, MART, OWN, RECORDS, TRADES, grid  # noqa: F401

SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
NUMBER = r"[+-]?\d+\.\d+"


class _Tables(HTMLParser):
    """Every ``<table>`` of a page as ``(caption, header, rows)`` (texts unescaped), and the list items
    and the embedded image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []
        self.items: list[str] = []
        self.images: list[str] = []
        self._text: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(("", [], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th", "caption", "li"):
            self._text = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._text is not None:
            self._row.append("".join(self._text))
        elif tag == "caption":
            caption, header, rows = self.tables[-1]
            self.tables[-1] = ("".join(self._text), header, rows)
        elif tag == "li":
            self.items.append("".join(self._text))
        elif tag == "tr":
            caption, header, rows = self.tables[-1]
            if header:
                rows.append(self._row)
            else:
                header.extend(self._row)
        if tag in ("td", "th", "caption", "li"):
            self._text = None


@pytest.fixture(scope="module")
def report(grid):
    write_grid_table(grid)
    written = write_grid_report(grid)
    page = _Tables()
    page.feed(written.html.read_text(encoding="utf-8"))
    rows = list(csv.DictReader(GridLayout.of(grid).table_csv.open(encoding="utf-8")))
    return written, page, rows


def _cells(page: _Tables, caption: str) -> dict[tuple[str, str], str]:
    """(first column, column title) -> text of every table with this caption."""
    out = {}
    for table_caption, header, rows in page.tables:
        if table_caption == caption:
            for row in rows:
                out.update({(row[0], title): text for title, text in zip(header, row, strict=True)})
    return out


def _two(value: str) -> str:
    return f"{float(value):.2f}"


def test_the_html_table_shows_the_numbers_of_table_csv(report):
    _, page, rows = report
    cells = _cells(page, "Cells: measured % [95% Wilson interval] n=evaluations (paper %)")
    assert len([key for key in cells if key[1] in {r["column"] for r in rows}]) == len(rows)
    for row in rows:
        text = cells[(row["cell"], row["column"])]
        paper = f" (paper {_two(row['published_percent'])})" if row["published_percent"] else ""
        if row["measured_percent"]:
            interval = f"[{_two(row['ci_low_percent'])}, {_two(row['ci_high_percent'])}]"
            assert text == f"{_two(row['measured_percent'])} {interval} n={row['n']}{paper}"
        else:
            assert text == f"{row['status']}{paper}"
        assert cells[(row["cell"], "state")].startswith(row["state"])
    gains = _cells(page, GAINS_TITLE)
    for row in (r for r in rows if r["delta_pp"]):
        text = gains[(row["cell"], f"Δ {row['column']}")]
        assert text.startswith(f"{float(row['delta_pp']):+.2f}")
        if row["mcnemar_p"]:
            assert f"n={row['paired_n']}" in text
            shown, p_value = float(re.search(r"p=(\S+)", text).group(1)), float(row["mcnemar_p"])
            assert abs(shown - p_value) <= 5e-4 + 0.05 * p_value  # printed to 3 decimals (or 2 digits)
    seeds = _cells(page, SEEDS_TITLE)
    for row in (r for r in rows if r["seed_sd_percent"]):
        group = next(key[0] for key in seeds if key[1] == "cells" and row["cell"] in seeds[key].split(", "))
        expected = f"{_two(row['seed_mean_percent'])} ± {_two(row['seed_sd_percent'])}"
        assert seeds[(group, row["column"])].startswith(expected)
    assert "nan" not in " ".join(text.lower() for text in cells.values())


def _svg_groups(path) -> dict[str, ET.Element]:
    return {g.get("id"): g for g in ET.parse(path).getroot().iter(f"{SVG}g") if g.get("id")}


def test_the_figure_has_one_point_per_matched_measured_cell_and_column_where_the_csv_says(report):
    written, _, rows = report
    expected = {(r["cell"], r["column"]): r for r in rows if r["measured_percent"] and r["published_percent"]}
    points = {(p.cell, p.column): p for p in written.figure.points}
    assert len(points) == len(written.figure.points) and set(points) == set(expected)
    for key, point in points.items():
        row = expected[key]
        assert point.published == pytest.approx(float(row["published_percent"]))
        assert point.measured == pytest.approx(float(row["measured_percent"]))
        assert (point.low, point.high) == (
            pytest.approx(float(row["ci_low_percent"])),
            pytest.approx(float(row["ci_high_percent"])),
        )
        assert point.bass == (row["bass"] == "true")
    # What the SVG drew: one marker per point, nothing else, at positions that are one affine map of
    # (published, measured) for all points; each error bar spans the Wilson interval on that map.
    groups = _svg_groups(written.figure_svg)
    drawn = {tuple(gid.split("|")[1:]): g for gid, g in groups.items() if gid.startswith("point|")}
    assert set(drawn) == set(expected)
    xy = {}
    for key, group in drawn.items():
        (use,) = list(group.iter(f"{SVG}use"))
        xy[key] = (float(use.get("x")), float(use.get("y")))
    keys = sorted(xy)
    published = np.array([points[k].published for k in keys])
    measured = np.array([points[k].measured for k in keys])
    sx, cx = np.polyfit(published, [xy[k][0] for k in keys], 1)
    sy, cy = np.polyfit(measured, [xy[k][1] for k in keys], 1)
    assert sx > 0 and sy < 0  # SVG's y grows downwards
    assert np.allclose(sx * published + cx, [xy[k][0] for k in keys], atol=0.01)
    assert np.allclose(sy * measured + cy, [xy[k][1] for k in keys], atol=0.01)
    assert sx == pytest.approx(-sy, rel=1e-3)  # equal aspect: a point on y = x means measured = published
    for key in keys:
        (bar,) = [p for p in groups[f"interval|{key[0]}|{key[1]}"].iter(f"{SVG}path")]
        ends = sorted(float(v) for v in re.findall(NUMBER, bar.get("d"))[1::2])
        expected_ends = sorted(sy * v + cy for v in (points[key].low, points[key].high))
        assert np.allclose(ends, expected_ends, atol=0.01)


def test_running_pending_and_failed_cells_are_listed_with_their_state_not_plotted(report):
    written, page, rows = report
    assert f"{MART}: failed (The GPU ran out of memory at 100% use & stopped.)" in page.items
    assert f"{TRADES}: running" in page.items and "own-pending: pending" in page.items
    assert f"{OWN}: no published row" in page.items
    assert f"{BASE}-seed=1: not evaluated (PGD-20, AA)" in page.items
    plotted = {gid.split("|")[1] for gid in _svg_groups(written.figure_svg) if gid.startswith("point|")}
    assert plotted.isdisjoint({MART, TRADES, "own-pending", OWN})
    unplotted = {(u.cell, u.status) for u in written.figure.unplotted}
    assert {(MART, "failed"), (TRADES, "running"), ("own-pending", "pending")} <= unplotted


def test_the_header_and_the_page_is_self_contained(report, grid):
    written, page, _ = report
    header = dict(row for caption, head, rows in page.tables if head == ["grid", "value"] for row in rows)
    counts = Counter(row.state.value for row in read_states(grid))
    expected = ", ".join(f"{counts[s]} {s}" for s in ("done", "running", "pending", "failed"))
    assert header["cells"] == f"{expected} (of {sum(counts.values())})"
    assert header["grid folder"] == str(grid) and header["built from"] == "explicit cells"
    assert header["freqtail"] == __version__ and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", header["written"]
    )
    text = written.html.read_text(encoding="utf-8")
    assert not re.search(r"<(link|script)\b|src=\"(?!data:)|url\(http", text)
    (image,) = page.images
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == written.figure_png.read_bytes()


def test_run_grid_writes_the_report_after_each_cell(tmp_path):
    spec = GridSpec(explicit=(CellSpec(base=BASE), CellSpec(base=BASS)), suites=("clean",))
    layout = GridLayout.of(tmp_path)
    seen = []

    def runner(cell, run_dir):
        seen.append(layout.report_html.read_text(encoding="utf-8") if layout.report_html.exists() else None)
        write_results(RunLayout.of(run_dir).results, RECORDS[cell.name][:1])

    assert run_grid(spec, tmp_path, cell_runner=runner, log=None).finished == (BASE, BASS)
    assert seen[0] is None
    assert "75.00 [" in seen[1] and f"<li>{BASS}: pending</li>" in seen[1]
    final = layout.report_html.read_text(encoding="utf-8")
    assert "87.50 [" in final and "+12.50 [" in final and "pending" not in final.split("Not in the figure")[1]
    points = [gid for gid in _svg_groups(layout.figure_svg) if gid.startswith("point|")]
    assert set(points) == {f"point|{BASE}|Clean", f"point|{BASS}|Clean"}


def test_a_report_that_cannot_be_written_never_fails_the_grid(tmp_path):
    layout = GridLayout.of(tmp_path)
    spec = GridSpec(explicit=(CellSpec(base=BASE),), suites=("clean",))
    GridManifest.open(tmp_path, spec)  # the grid first: a new grid refuses a folder holding other files
    layout.report_html.mkdir()  # a folder where the page should go: a real write error
    lines = []
    outcome = run_grid(spec, tmp_path, cell_runner=lambda cell, run_dir: None, log=lines.append)
    assert outcome.finished == (BASE,) and outcome.summary.done == 1
    (said,) = [line for line in lines if line.startswith("The grid report in ")]
    assert "was not updated (OutputError: " in said and said.endswith("the grid goes on.")
    assert layout.table_md.is_file()  # the table is still written


def test_grid_report_and_grid_table_commands_write_the_report(grid, tmp_path, capsys):
    capsys.readouterr()
    assert main(["grid", "report", str(grid)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Wrote {GridLayout.of(grid).report_html}: ") and "measured numbers" in out
    assert main(["grid", "table", str(grid)]) == 0
    assert f"Wrote the report {GridLayout.of(grid).report_html}" in capsys.readouterr().out
    assert main(["grid", "report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a grid folder" in err[0] and "Traceback" not in err[0]


def test_the_grid_help_lists_the_report_action(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["grid", "--help"])  # a stray "%" in an action's help once broke this page
    assert stop.value.code == 0
    assert "report    the grid's HTML report" in capsys.readouterr().out
