"""The grid table against the paper: measured beside published, Wilson intervals, paired tests, seeds.

Every expectation is computed here independently: SciPy's Wilson interval, the closed-form exact
McNemar sum, ``statistics.mean / stdev``, ``freqtail.paper.published_value``. The grids are tiny
run folders whose ``results.json`` holds hand-made records with known per-image bits (no training),
their states set through the real :class:`GridManifest` API (tests/test_grid_support.py).
"""

# ruff: noqa: F811  (the grid fixture imported from test_grid_support is a parameter here)
from __future__ import annotations

import csv
import io
import math
import statistics

import pytest
from scipy import stats

from freqtail.errors import ConfigError
from freqtail.evaluate.results import write_results
from freqtail.paper import published_value
from freqtail.report.paper_table import CSV_FIELDS, MeasuredCell, PublishedKey, build_paper_table
from freqtail.runs.layout import GridLayout, RunLayout
from freqtail.train.presets import preset_configs
from freqtail.workflows import grid_run
from freqtail.workflows.grid_manifest import GridManifest
from freqtail.workflows.grid_run import run_grid
from freqtail.workflows.grid_scale import scale_spec
from freqtail.workflows.grid_spec import CellSpec, GridSpec, parse_seeds
from freqtail.workflows.grid_table import grid_table, published_key, write_grid_table
from test_grid_support import (  # noqa: F401
    AUGMIX,
    BASE,
    BASE_1,
    BASS,
    BASS_1,
    MART,
    OWN,
    RECORDS,
    T1,
    TRADES,
    N,
    counted_record,
    grid,
    mask_of,
    one_sentence_error,
)


@pytest.fixture(scope="module")
def table(grid):
    return grid_table(grid)


def _row(table, name):
    return next(row for row in table.rows() if row.cell.name == name)


def _value(table, name, column):
    row = _row(table, name)
    return next(v for v in row.values if v.column == column)


def test_measured_percent_and_wilson_bounds_equal_scipy(table):
    value = _value(table, BASE, "Clean")
    ci = stats.binomtest(30, N).proportion_ci(confidence_level=0.95, method="wilson")
    assert (value.correct, value.total) == (30, N)
    assert value.accuracy == pytest.approx(30 / N)
    assert value.low == pytest.approx(ci.low) and value.high == pytest.approx(ci.high)
    bass = _value(table, BASS, "Clean")  # the BaSS cell is shown under domain, not end-to-end
    assert bass.accuracy == pytest.approx(35 / N) and bass.record == "best|domain|clean|"


def test_published_numbers_and_deltas_are_the_papers(table):
    for name, bass in ((BASE, False), (BASS, True)):
        for column in ("Clean", "PGD-20", "AA"):
            expected = published_value(method="PGD-AT", bass=bass, column=column, **T1)
            assert _value(table, name, column).published == expected
    row = _row(table, BASS)
    assert row.baseline == BASE and row.baseline_threat_model == "standard"
    for delta in row.deltas:
        on = published_value(method="PGD-AT", bass=True, column=delta.column, **T1)
        off = published_value(method="PGD-AT", bass=False, column=delta.column, **T1)
        assert delta.published == pytest.approx(round(on - off, 2))


def test_mcnemar_p_of_a_hand_built_table_is_the_closed_form_binomial_sum(table):
    delta = next(d for d in _row(table, BASS).deltas if d.column == "Clean")
    b, c = 5, 10  # only the baseline right, only BaSS right
    expected = min(1.0, 2 * sum(math.comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c))
    assert delta.p_value == pytest.approx(expected)
    assert delta.measured == pytest.approx((35 - 30) / N)
    assert delta.paired_n == N and delta.low < delta.measured < delta.high


def test_an_older_record_without_bits_gives_paired_test_unavailable(table):
    delta = next(d for d in _row(table, BASS).deltas if d.column == "PGD-20")
    assert delta.measured == pytest.approx((22 - 18) / N)  # the difference is still shown
    assert delta.p_value is None and delta.note.startswith("paired test unavailable: ")
    assert "paired test unavailable" in table.to_markdown()


def test_seeds_mean_and_sd_equal_the_statistics_module(table):
    section = next(s for s in table.sections if s.table == "table1")
    row = next(r for r in section.seed_rows if set(r.cells) == {BASE, BASE_1})
    clean = row.stats[section.columns.index("Clean")]
    assert 100 * clean.mean == pytest.approx(statistics.mean([75.0, 70.0]))
    assert 100 * clean.sd == pytest.approx(statistics.stdev([75.0, 70.0]))
    assert dict(clean.values) == {0: pytest.approx(0.75), 1: pytest.approx(0.70)}
    assert "72.50 ± 3.54" in table.to_markdown()
    seeded = next(d for d in _row(table, BASS_1).deltas if d.column == "Clean")
    assert _row(table, BASS_1).baseline == BASE_1 and seeded.measured == pytest.approx(5 / N)


def test_running_pending_and_failed_cells_render_as_such_in_all_formats(table):
    for name, state in ((TRADES, "running"), (MART, "failed")):
        assert _row(table, name).cell.state == state
        assert all(v.status == state and v.accuracy is None for v in _row(table, name).values)
    markdown, latex, text = table.to_markdown(), table.to_latex(), table.to_csv()
    assert f"| {TRADES} |" in markdown and "| running |" in markdown
    assert "failed: The GPU ran out of memory at 100% use & stopped." in markdown
    assert "running" in latex and r"100\% use \& stopped" in latex
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["state"] for r in rows if r["cell"] == TRADES} == {"running"}
    assert {r["measured_percent"] for r in rows if r["cell"] in (TRADES, MART)} == {""}
    assert {r["state"] for r in rows if r["cell"] == "own-pending"} == {"pending"}
    assert "nan" not in (markdown + latex + text).lower()


def test_latex_has_booktabs_rules_and_escaped_names(table):
    latex = table.to_latex()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in latex
    assert r"own\_cell" in latex and "own_cell" not in latex
    assert r"$\pm$" in latex and r"$\Delta$" in latex


def test_csv_parses_into_one_row_per_cell_and_column(table):
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert list(rows[0]) == list(CSV_FIELDS)
    expected = sum(len(section.columns) * len(section.rows) for section in table.sections)
    assert len(rows) == expected
    clean = next(r for r in rows if r["cell"] == BASS and r["column"] == "Clean")
    assert (clean["table"], clean["method"], clean["bass"], clean["threat_model"]) == (
        "table1",
        "PGD-AT",
        "true",
        "domain",
    )
    assert float(clean["measured_percent"]) == pytest.approx(87.5) and clean["n"] == "40"
    assert float(clean["published_percent"]) == published_value(
        method="PGD-AT", bass=True, column="Clean", **T1
    )
    assert float(clean["delta_pp"]) == pytest.approx(12.5) and clean["baseline_cell"] == BASE
    assert float(clean["seed_mean_percent"]) == pytest.approx(statistics.mean([87.5, 82.5]))


def test_corruption_columns_come_from_the_records_categories_and_mean(table):
    noise = _value(table, AUGMIX, "Noise")
    assert noise.accuracy == pytest.approx((30 + 20) / 80) and (noise.correct, noise.total) == (50, 80)
    ci = stats.binomtest(50, 80).proportion_ci(confidence_level=0.95, method="wilson")
    assert (noise.low, noise.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert _value(table, AUGMIX, "Mean").accuracy == pytest.approx(86 / 120)
    assert _value(table, AUGMIX, "Weather").status == "not evaluated"
    key = dict(table="table4", method="AugMix", model="WRN-40-2", dataset="CIFAR-10", bass=False)
    assert _value(table, AUGMIX, "Mean").published == published_value(column="Mean", **key)


def test_a_cell_without_a_published_row_has_values_but_no_published_columns(table):
    section = next(s for s in table.sections if s.table is None)
    assert {r.cell.name for r in section.rows} == {OWN, "own-pending"}
    value = _value(table, OWN, "Clean")
    assert value.accuracy == pytest.approx(12 / N) and value.published is None and value.low is not None


def test_published_key_is_read_from_the_config():
    presets = preset_configs()
    assert published_key(presets[BASS][1] | {"eps": 8 / 255}) == PublishedKey(
        "table1", "PGD-AT", "ResNet-18", "CIFAR-10", True
    )
    assert published_key({**presets["t4-cifar100-resnet50-augmix-bass"][1], "bass": None}) == PublishedKey(
        "table4", "AugMix", "ResNet-50", "CIFAR-100", True
    )
    t3 = {**presets["t3-restricted-imagenet-resnet50-trades"][1], "eps": 4 / 255}
    assert published_key(t3) == PublishedKey("table3", "TRADES", "ResNet-50", "Restricted-ImageNet", False)
    assert published_key({**presets["fig3-cifar10-resnet18-gamma0.5"][1], "eps": 8 / 255}) is None
    assert published_key({**presets[BASE][1], "eps": 4 / 255}) is None  # not the paper's budget


def test_build_from_typed_cells_needs_no_folder():
    key = PublishedKey("table1", "MART", "WRN-34-10", "CIFAR-100", False)
    cells = [MeasuredCell("m", key, "pending"), MeasuredCell("x", None, "failed", why="It broke.")]
    built = build_paper_table(cells)
    assert [v.status for v in built.rows()[0].values] == ["pending"] * 3
    assert "failed: It broke." in built.to_markdown()


def test_run_grid_rewrites_the_table_after_each_cell(tmp_path):
    spec = GridSpec(explicit=(CellSpec(base=BASE), CellSpec(base=BASS)), suites=("clean",))
    seen = []

    def runner(cell, run_dir):
        md = GridLayout.of(tmp_path).table_md
        seen.append(md.read_text(encoding="utf-8") if md.exists() else None)
        write_results(RunLayout.of(run_dir).results, RECORDS[cell.name][:1])

    outcome = run_grid(spec, tmp_path, cell_runner=runner, log=None)
    assert outcome.finished == (BASE, BASS)
    assert seen[0] is None  # before the first cell finished, no table yet
    assert (
        "75.00" in seen[1] and "| pending |" in seen[1]
    )  # after the first: its number, BaSS not yet claimed
    final = GridLayout.of(tmp_path).table_md.read_text(encoding="utf-8")
    assert "75.00" in final and "87.50" in final and "+12.50" in final
    assert GridLayout.of(tmp_path).table_csv.is_file() and GridLayout.of(tmp_path).table_tex.is_file()


def test_a_table_error_never_fails_the_grid(tmp_path, monkeypatch):
    def broken(folder):
        raise OSError("disk full")

    monkeypatch.setattr(grid_run, "write_grid_table", broken)
    lines = []
    spec = GridSpec(explicit=(CellSpec(base=BASE),), suites=("clean",))
    outcome = run_grid(spec, tmp_path, cell_runner=lambda cell, run_dir: None, log=lines.append)
    assert outcome.finished == (BASE,)
    assert any(line.startswith("The grid table in ") and "disk full" in line for line in lines)


def test_write_grid_table_writes_three_files(grid):
    paths = write_grid_table(grid)
    assert [p.name for p in paths] == [
        p.name
        for p in (GridLayout.of(grid).table_md, GridLayout.of(grid).table_csv, GridLayout.of(grid).table_tex)
    ]
    assert all(p.read_text(encoding="utf-8") for p in paths)


def test_reproduce_seeds_give_one_cell_per_preset_and_seed_matched_to_the_paper_at_any_scale(
    tmp_path, capsys
):
    assert parse_seeds("2, 0") == (2, 0) and parse_seeds([1]) == (1,)
    for bad, words in (("", "empty"), ("0,x", "'x'"), ("1,1", "seed 1 twice"), ("-1", "'-1'")):
        with pytest.raises(ConfigError, match=words):
            parse_seeds(bad)
    spec = scale_spec(GridSpec.family("t1", seeds="0,1"), "smoke")
    cells = spec.cells()
    assert len(cells) == 2 * len(GridSpec.family("t1").cells())
    assert [(c.name, c.config.seed) for c in cells[:2]] == [
        (f"{cells[0].base}-seed=0", 0),
        (f"{cells[0].base}-seed=1", 1),
    ]
    folder = tmp_path / "grid"
    manifest = GridManifest.open(folder, spec)
    for seed, correct in ((0, 30), (1, 26)):
        name = f"{BASE}-seed={seed}"
        assert manifest.claim("test", only={name}).name == name
        write_results(
            RunLayout.of(manifest.layout.run_dir(name)).results,
            [counted_record("standard", "clean", mask_of(correct))],
        )
        manifest.finish(name, 1.0)
    table = grid_table(folder)
    clean = _value(table, f"{BASE}-seed=0", "Clean")
    published = published_value(
        "table1", method="PGD-AT", model="ResNet-18", dataset="CIFAR-10", bass=False, column="Clean"
    )
    assert clean.published == published and clean.accuracy == pytest.approx(30 / N)
    section = next(s for s in table.sections if s.table == "table1")
    row = next(r for r in section.seed_rows if set(r.cells) == {f"{BASE}-seed=0", f"{BASE}-seed=1"})
    stats_clean = row.stats[section.columns.index("Clean")]
    assert 100 * stats_clean.mean == pytest.approx(statistics.mean([75.0, 65.0]))
    assert 100 * stats_clean.sd == pytest.approx(statistics.stdev([75.0, 65.0]))
    # the command line: a bad list is one sentence before anything starts
    one_sentence_error(
        capsys,
        ["reproduce", "t1", "--scale", "smoke", "--out", str(tmp_path / "x"), "--seeds", "0,0"],
        "twice",
    )
    assert not (tmp_path / "x").exists()
