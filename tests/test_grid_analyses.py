"""Analyses in a grid cell's pipeline: entries checked at the door, Figure 3's eps sweep at the smoke
scale end to end (with its table), explanations in a grid, and reruns that compute nothing new.

Every cell trains and evaluates for real (one epoch of a tiny small-cnn on the embedded data).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import pytest

from freqtail.cli import main
from freqtail.errors import ConfigError
from freqtail.evaluate.results import eps_label
from freqtail.workflows.grid_analyses import CellExplanation, EpsSweep, parse_analysis
from freqtail.workflows.grid_run import CellStep, cell_steps, run_cell, run_grid
from freqtail.workflows.grid_scale import SMOKE_ANALYSES, SMOKE_EVALUATION, scale_spec
from freqtail.workflows.grid_spec import FAMILY_ANALYSES, GridSpec
from freqtail.workflows.grid_table import grid_table

#: Two Figure 3 cells: BaSS as augmentation with gamma 1, and BaSS as a new dataset.
FIG3_TWO = "*[1t]"
FIG3_NAMES = ("fig3-cifar10-resnet18-gamma1", "fig3-cifar10-resnet18-bass-dataset")
BUDGETS = ("1/255", "2/255", "4/255", "8/255")
TINY = {
    "dataset": "embedded",
    "model": "small-cnn",
    "model_options": {"width": 4},
    "epochs": 1,
    "train_subset": 128,
    "test_subset": 32,
    "batch_size": 64,
    "device": "cpu",
    "progress": False,
}


# ------------------------------------------------------------------------------------ the door
@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"kind": "saliency"}, ("Unknown analysis kind 'saliency'", "eps-sweep, sensitivity, landscape")),
        (
            {"kind": "landscape", "grid": 3, "colour": "red"},
            ("Unknown key 'colour'", "(landscape)", "valid keys are: kind, cells, n, batch_size"),
        ),
        ({"kind": "eps-sweep", "eps": [0.01], "steps": 7}, ("Unknown key 'steps'", "eps, suite")),
        ({"kind": "eps-sweep"}, ("needs eps",)),
        ({"kind": "eps-sweep", "eps": "8/255"}, ("must be a non-empty list",)),
        ({"kind": "eps-sweep", "eps": ["1/255", "1/255"]}, ("lists a budget twice",)),
        ({"kind": "eps-sweep", "eps": ["one/255"]}, ("Could not read the eps 'one/255'",)),
        ({"kind": "eps-sweep", "eps": [0.01], "suite": "corruptions"}, ("cannot sweep the suite",)),
        ({"kind": "heatmap", "sign": "diagonal"}, ("(heatmap)", "sign mode")),
        ({"kind": "sensitivity", "n": 0}, ("(sensitivity)", "--n")),
        ("landscape", ("must be a mapping with a kind",)),
    ],
)
def test_a_bad_analysis_entry_is_one_sentence_naming_it(entry, words):
    with pytest.raises(ConfigError) as info:
        GridSpec.from_mapping({"set": TINY, "analyses": [entry]})
    text = str(info.value)
    assert "\n" not in text and text.endswith("."), text
    for word in words:
        assert word in text, text


def test_analysis_cells_must_match_a_cell_and_one_kind_of_explanation_per_cell():
    seeds = {"set": TINY, "axes": {"seed": [0, 1]}}
    with pytest.raises(ConfigError, match=r"'?mart'? .*match no grid cell; the cells are base-seed=0"):
        GridSpec.from_mapping({**seeds, "analyses": [{"kind": "sensitivity", "cells": "mart"}]})
    twice = [{"kind": "landscape"}, {"kind": "landscape", "cells": "*=1", "grid": 3}]
    with pytest.raises(ConfigError, match="Two landscape analyses .* base-seed=1"):
        GridSpec.from_mapping({**seeds, "analyses": twice})
    # Limited to other cells, the two are fine; so are two sweeps (their records differ by budget).
    spec = GridSpec.from_mapping({**seeds, "analyses": [{"kind": "landscape", "cells": "*=0"}, twice[1]]})
    assert [e.kind for e in spec.analyses_for("base-seed=1")] == ["landscape"]
    assert spec.analyses_for("base-seed=1")[0].analysis.grid == 3


def test_a_bad_analysis_in_a_spec_file_is_refused_by_the_command(tmp_path, capsys):
    spec = tmp_path / "grid.yaml"
    spec.write_text("set: {dataset: embedded}\nanalyses:\n  - {kind: eps-sweep, eps: [1/255], stride: 2}\n")
    assert main(["grid", "run", str(spec), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Unknown key 'stride'" in err[0] and str(spec) in err[0], err
    assert not (tmp_path / "g").exists()


def test_fig3_runs_its_eps_sweep_and_the_tables_run_no_analyses():
    fig3 = GridSpec.family("fig3")
    assert fig3.suites == ("clean", "pgd20", "corruptions")
    (sweep,) = fig3.analyses
    assert isinstance(sweep, EpsSweep) and sweep.suite == "pgd20" and sweep.cells is None
    assert sweep.eps == tuple(k / 255 for k in (1, 2, 4, 8))
    assert [eps_label(e) for e in sweep.eps] == list(BUDGETS)
    for family in ("t1", "t3", "t4"):
        assert GridSpec.family(family).analyses == FAMILY_ANALYSES[family] == ()
    for cell in fig3.cells():
        assert cell_steps(cell, fig3) == ("train", "evaluate", "eps-sweep")


def test_analyses_are_part_of_the_digest_and_read_back_from_their_mapping():
    base = {"set": TINY, "axes": {"seed": [0, 1]}, "suites": ["clean"]}
    plain = GridSpec.from_mapping(base)
    # A grid without analyses keeps the digest it had before grids had analyses (the formula).
    identity = {
        "cells": [[cell.name, cell.config_hash] for cell in plain.cells()],
        "suites": ["clean"],
        "evaluation": {},
    }
    expected = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    assert plain.digest() == expected
    texts = GridSpec.from_mapping(
        {**base, "analyses": [{"kind": "eps-sweep", "eps": ["1/255", "2/255"]}, {"kind": "heatmap", "n": 4}]}
    )
    floats = GridSpec.from_mapping(
        {**base, "analyses": [{"kind": "eps-sweep", "eps": [1 / 255, 2 / 255]}, {"kind": "heatmap", "n": 4}]}
    )
    assert texts.digest() == floats.digest() != plain.digest()
    assert GridSpec.from_mapping(texts.to_mapping()).digest() == texts.digest()
    other = GridSpec.from_mapping({**base, "analyses": [{"kind": "heatmap", "n": 5}]})
    assert other.digest() != texts.digest()
    mapping = texts.to_mapping()["analyses"][1]
    assert mapping == {
        "kind": "heatmap",
        "n": 4,
        "batch_size": 512,
        "threat_model": None,
        "subset_seed": 0,
        "eps": 4.0,
        "sign": "channel",
        "seed": 0,
    }


def test_the_smoke_scale_keeps_sweeps_and_makes_explanations_small():
    spec = GridSpec.from_mapping(
        {
            "set": TINY,
            "analyses": [
                {"kind": "eps-sweep", "eps": ["1/255", "8/255"]},
                {"kind": "landscape", "n": 500, "grid": 21},
                {"kind": "heatmap", "n": 1},
            ],
        }
    )
    sweep, landscape, heatmap = scale_spec(spec, "smoke").analyses
    assert sweep == spec.analyses[0]
    assert (landscape.request.n, landscape.analysis.grid) == (
        SMOKE_ANALYSES["landscape"]["n"],
        SMOKE_ANALYSES["landscape"]["grid"],
    )
    assert heatmap.request.n == 1  # already smaller than the smoke count
    assert isinstance(parse_analysis(landscape.to_mapping()), CellExplanation)


# ---------------------------------------------------------------------------- Figure 3, smoke
@pytest.fixture(scope="module")
def fig3_grid(tmp_path_factory):
    """Two Figure 3 cells at the smoke scale, run once through ``freqtail reproduce``: the folder."""
    root = tmp_path_factory.mktemp("fig3")
    out = root / "grid"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("FREQTAIL_CACHE", str(root / "cache"))
        code = main(["reproduce", "fig3", "--scale", "smoke", "--out", str(out), "--only", FIG3_TWO])
    assert code == 0, printed.getvalue()
    assert "Analyses after each evaluation: eps-sweep of pgd20 at 1/255, 2/255, 4/255, 8/255" in (
        printed.getvalue()
    )
    return out


def _records(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["results"]


def test_fig3_cells_hold_pgd20_at_every_budget_of_the_figure_on_the_same_images(fig3_grid):
    for name, threat_models, order in (
        (FIG3_NAMES[0], {"standard"}, {"standard": "none"}),
        (FIG3_NAMES[1], {"domain", "end-to-end"}, {"domain": "bass-then-corrupt"}),
    ):
        records = _records(fig3_grid / name)
        assert {r["threat_model"] for r in records} == threat_models
        for threat in threat_models:
            mine = [r for r in records if r["threat_model"] == threat]
            pgd = {r["id"].split("|")[-1]: r for r in mine if r["metric"] == "pgd-20-ce"}
            assert sorted(pgd) == sorted(f"eps={b}" for b in BUDGETS)  # one record per budget
            for budget, record in pgd.items():
                levels = int(budget.removeprefix("eps=").split("/")[0])
                settings = record["settings"]
                assert settings["eps_255"] == levels and settings["step_size_255"] == pytest.approx(
                    levels / 4
                )
                assert settings["steps"] == 20 and record["data"]["n"] == SMOKE_EVALUATION["n"]
                assert record["total"] == SMOKE_EVALUATION["n"] and 0 <= record["correct"] <= record["total"]
                # The figure's 8/255 is the grid evaluation's own PGD-20 (not measured twice).
                assert ("--eps" in settings["budget_source"]) == (levels != 8), settings["budget_source"]
            indices = {json.dumps(r["data"]["indices"]) for r in mine}
            assert len(indices) == 1  # every number of the threat model on the same images
            metrics = {r["metric"] for r in mine}
            assert {"clean", "corruptions"} <= metrics
            if threat in order:
                (corruptions,) = [r for r in mine if r["metric"] == "corruptions"]
                assert corruptions["order"] == order[threat]


def test_the_grid_table_shows_fig3_measured_values_without_published_ones(fig3_grid):
    table = grid_table(fig3_grid)
    (section,) = [s for s in table.sections if s.table == "figure3"]
    assert "prints no numbers" in section.title
    assert section.columns == ("Clean", "Corruptions", *(f"PGD-20 ({b})" for b in BUDGETS))
    assert len(section.rows) == 6  # every fig3 cell; the four not run are pending
    for row in section.rows:
        values = dict(zip(section.columns, row.values, strict=True))
        if row.cell.name not in FIG3_NAMES:
            assert {v.status for v in values.values()} == {"pending"}
            continue
        threat = "domain" if row.cell.name.endswith("bass-dataset") else "standard"
        assert row.cell.threat_model == threat
        # (metric, variant) -> the record, from "best|<threat model>|<metric>|<variant>"
        mine = {
            tuple(r["id"].split("|")[2:]): r
            for r in _records(fig3_grid / row.cell.name)
            if r["threat_model"] == threat
        }
        clean = mine[("clean", "")]
        assert values["Clean"].accuracy == clean["correct"] / clean["total"]
        (corruption,) = [r for (metric, _), r in mine.items() if metric == "corruptions"]
        assert values["Corruptions"].accuracy == pytest.approx(corruption["mean"])
        for budget in BUDGETS:
            record = mine[("pgd-20-ce", f"eps={budget}")]
            value = values[f"PGD-20 ({budget})"]
            assert (value.correct, value.total) == (record["correct"], record["total"])
            assert value.published is None
    labels = [row.cell.figure.label for row in section.rows]
    assert labels == ["gamma = 0", "gamma = 0.25", "gamma = 0.5", "gamma = 0.75", "gamma = 1", "BaSS dataset"]
    markdown = (fig3_grid / "table.md").read_text(encoding="utf-8")
    assert "PGD-20 (1/255)" in markdown and "no published number" in markdown


def test_rerunning_a_fig3_cell_computes_nothing_new(fig3_grid, capsys):
    name = FIG3_NAMES[0]
    run_dir = fig3_grid / name
    before = (run_dir / "results.json").read_bytes()
    spec = scale_spec(GridSpec.family("fig3"), "smoke")
    steps: list[CellStep] = []
    run_cell(spec.cell(name), run_dir, spec, log=lambda line: None, on_step=steps.append)
    assert [(s.step, s.reused) for s in steps] == [("train", True), ("evaluate", True), ("eps-sweep", True)]
    assert (run_dir / "results.json").read_bytes() == before  # not a number measured again
    # The grid run again: both cells are done, nothing is started.
    capsys.readouterr()
    argv = ["reproduce", "fig3", "--scale", "smoke", "--out", str(fig3_grid), "--only", FIG3_TWO]
    assert main(argv) == 0
    assert "started" not in capsys.readouterr().out


# -------------------------------------------------------------------------- explanations
def test_explanation_analyses_of_a_grid_write_their_results_once(tmp_path):
    spec = GridSpec.from_mapping(
        {
            "set": TINY,
            "axes": {"seed": [0, 1]},
            "suites": ["clean"],
            "evaluation": {"n": 16},
            "analyses": [
                {"kind": "sensitivity", "cells": "base-seed=0", "n": 8, "batch_size": 8},
                {"kind": "landscape", "cells": "base-seed=0", "n": 8, "grid": 3},
                {"kind": "heatmap", "cells": ["base-seed=0"], "n": 2, "batch_size": 2},
            ],
        }
    )
    steps: list[CellStep] = []

    def runner(cell, run_dir):
        run_cell(cell, run_dir, spec, log=lambda line: None, on_step=steps.append)

    outcome = run_grid(spec, tmp_path / "g", cell_runner=runner, log=None)
    assert outcome.summary.done == 2 and not outcome.failed
    assert [(s.cell, s.step, s.reused) for s in steps] == [
        ("base-seed=0", "train", False),
        ("base-seed=0", "evaluate", False),
        ("base-seed=0", "sensitivity", False),
        ("base-seed=0", "landscape", False),
        ("base-seed=0", "heatmap", False),
        ("base-seed=1", "train", False),
        ("base-seed=1", "evaluate", False),
    ]
    explained, plain = tmp_path / "g" / "base-seed=0", tmp_path / "g" / "base-seed=1"
    for kind, images in (("sensitivity", 8), ("landscape", 8), ("heatmap", 2)):
        data = json.loads((explained / f"{kind}.json").read_text(encoding="utf-8"))
        assert data["num_images"] == images and data["threat_model"] == "standard"
        assert (explained / f"{kind}.npz").is_file() and (explained / "figures" / f"{kind}.png").is_file()
        assert not (plain / f"{kind}.json").exists()
    assert json.loads((explained / "landscape.json").read_text())["grid"] == 3
    # Run again with one result gone: only that analysis runs; the others and the numbers are kept.
    kept = {kind: (explained / f"{kind}.json").read_bytes() for kind in ("sensitivity", "heatmap")}
    (explained / "landscape.json").unlink()
    steps.clear()
    runner(spec.cell("base-seed=0"), explained)
    assert [(s.step, s.reused) for s in steps] == [
        ("train", True),
        ("evaluate", True),
        ("sensitivity", True),
        ("landscape", False),
        ("heatmap", True),
    ]
    assert (explained / "landscape.json").is_file()
    assert all((explained / f"{kind}.json").read_bytes() == text for kind, text in kept.items())


def test_a_sweep_at_the_training_budget_is_the_grid_evaluation_whatever_its_step(tmp_path):
    """A PGD-AT run trained with step 4/255 at eps 8/255: its own PGD-20 is at that step, and the sweep's
    8/255 is that record (one number per budget), so a rerun measures nothing again."""
    spec = GridSpec.from_mapping(
        {
            "set": {**TINY, "objective": "pgd-at", "eps": "8/255", "step_size": "4/255", "attack_steps": 2},
            "suites": ["pgd20"],
            "evaluation": {"n": 16, "masking_n": 0},
            "analyses": [{"kind": "eps-sweep", "eps": ["4/255", "8/255"]}],
        }
    )
    (cell,) = spec.cells()
    run_grid(spec, tmp_path / "g", log=None)
    run_dir = tmp_path / "g" / cell.name
    pgd = {r["id"]: r for r in _records(run_dir) if r["metric"] == "pgd-20-ce"}
    assert sorted(pgd) == ["best|standard|pgd-20-ce|eps=4/255", "best|standard|pgd-20-ce|eps=8/255"]
    own = pgd["best|standard|pgd-20-ce|eps=8/255"]["settings"]
    swept = pgd["best|standard|pgd-20-ce|eps=4/255"]["settings"]
    assert (own["step_size_255"], swept["step_size_255"]) == (4, 1)
    assert "training budget" in own["budget_source"] and swept["budget_source"] == "--eps"
    before = (run_dir / "results.json").read_bytes()
    steps: list[CellStep] = []
    run_cell(cell, run_dir, spec, log=lambda line: None, on_step=steps.append)
    assert all(step.reused for step in steps) and len(steps) == 3
    assert (run_dir / "results.json").read_bytes() == before
