"""``freqtail demo --quick`` end to end (run once per session), its report, resuming and folder rules."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from scipy import stats

from freqtail.cli import main
from freqtail.errors import ConfigError
from freqtail.report.build import build_report
from freqtail.report.page import Table, markdown_blocks
from freqtail.runs.layout import GRID_MANIFEST
from freqtail.workflows.demo import LEGACY_STATE_FILE, QUICK, RUNS, _prepare_folder, demo_spec, run_demo
from freqtail.workflows.grid_manifest import CellState, read_states
from test_report import (
    assert_links_resolve,
    assert_self_contained,
    browser_check,
    page_height,
    parse_page,
    repeated_texts,
    section_layout,
)

#: A step line of the demo's console (``[ 0:12.3]  5/17 sensitivity erm  ...``), and its step's name;
#: the progress lines within a step are indented instead.
STEP_LINE = re.compile(r"\[\s*\d+:\d\d\.\d\] +\d+/17 ")
STEP_NAME = re.compile(r"\d+/17 (\S+(?: \S+)?) ")

SECTIONS = (
    "Summary",
    "Frequency long tail",
    "Balanced Spectrum Sampling (BaSS)",
    "Training",
    "Evaluation: clean and adversarial accuracy",
    "Robust accuracy by band",
    "Corruption robustness",
    "Frequency sensitivity",
    "Loss landscape on LFC / HFC",
    "Fourier heat map",
    "Configuration",
    "Demo stages and timings",
)


def _results(out: Path) -> dict:
    """The demo's summary (``demo-summary.json``; the demo folder holds no ``results.json``)."""
    return json.loads((out / "demo-summary.json").read_text(encoding="utf-8"))


def _pct(value, counts=None) -> str:
    """A key number as the report shows it: percent, then its 95% Wilson interval from the counts."""
    if value is None:
        return "–"
    if counts is None:
        return f"{100 * value:.2f}"
    ci = stats.binomtest(*counts).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{100 * value:.2f} ({100 * ci.low:.2f}–{100 * ci.high:.2f})"


def test_demo_prints_progress_key_numbers_and_where_the_report_is(demo):
    out, printed, _ = demo
    assert "--quick" in printed and "smoke test" in printed
    stage_lines = [line for line in printed.splitlines() if STEP_LINE.match(line)]
    assert len(stage_lines) == 17  # one line per stage, each with the elapsed time
    epochs = [line for line in printed.splitlines() if "epoch 1/1:" in line]
    assert [line.split()[1] for line in epochs] == [name for name, *_ in RUNS]  # per-epoch progress
    assert str(out / "report.html") in printed and str(out / "demo-summary.json") in printed
    for entry in _results(out)["key_numbers"]:
        clean = "–" if entry["clean"] is None else f"{100 * entry['clean']:.1f}%"
        assert re.search(
            rf"{re.escape(entry['label'])}\s+{entry['threat_model']}\s+epoch 1 of 1, best on test\s+"
            rf"{re.escape(clean)}",
            printed,
        )


def test_results_json_aggregates_every_run_under_its_threat_models(demo):
    out, _, _ = demo
    data = _results(out)
    assert data["format"] == "freqtail-demo-summary" and data["quick"] is True
    assert not (out / "results.json").exists()  # results.json always means a run's evaluation records
    rows = {(r["run"], r["threat_model"]) for r in data["key_numbers"]}
    assert rows == {
        ("erm", "standard"),
        ("erm-bass", "domain"),
        ("erm-bass", "end-to-end"),
        ("pgd-at", "standard"),
        ("pgd-at-bass", "domain"),
        ("pgd-at-bass", "end-to-end"),
    }
    for row in data["key_numbers"]:
        # Independent check: each number is correct / total of the run's own evaluation records.
        records = json.loads((out / row["run"] / "results.json").read_text())["results"]
        mine = {r["metric"]: r for r in records if r["threat_model"] == row["threat_model"]}
        assert row["clean"] == mine["clean"]["correct"] / mine["clean"]["total"]
        assert row["pgd20"] == mine["pgd-20-ce"]["correct"] / mine["pgd-20-ce"]["total"]
        cells = [
            cell["accuracy"]
            for severities in mine["corruptions"]["per_corruption"].values()
            for cell in severities.values()
        ]
        assert row["corruptions_mean"] == pytest.approx(sum(cells) / len(cells))
        pooled = [
            [cell["correct"], cell["total"]]
            for severities in mine["corruptions"]["per_corruption"].values()
            for cell in severities.values()
        ]
        assert row["corruptions_counts"] == [sum(c for c, _ in pooled), sum(t for _, t in pooled)]
        assert row["n"] == QUICK.eval_n == mine["clean"]["data"]["n"]
        assert mine["pgd-20-ce"]["settings"]["steps"] == 20 and mine["pgd-20-ce"]["settings"]["eps_255"] == 8
    assert [r["name"] for r in data["runs"]] == [name for name, *_ in RUNS]
    assert data["settings"]["demo"]["quick"] is True
    assert data["spectrum"]["boundary_band"] >= 1 and data["bass"]["images"] == 6400
    assert {s["name"] for s in data["timings"]["stages"]} >= {"spectrum", "bass", "train erm", "report"}
    threads = torch.get_num_threads()
    assert data["timings"]["threads"] == threads
    assert f"{threads} torch thread" in (out / "report.md").read_text(encoding="utf-8")


def test_report_has_every_section_and_its_key_numbers_match_results_json(demo):
    out, _, _ = demo
    text = (out / "report.html").read_text(encoding="utf-8")
    parsed = parse_page(text)
    h2 = [t for tag, t in parsed.headings if tag == "h2"]
    for section in SECTIONS:
        assert section in h2
    key_numbers = _results(out)["key_numbers"]
    html_rows = [t for t in parsed.tables if t[0][:2] == ["run", "threat model"] and "PGD-20" in t[0]][0][1:]
    expected = [
        [
            r["label"],
            r["threat_model"],
            "epoch 1 of 1, best on test",  # the quick demo trains one epoch
            _pct(r["clean"], r["clean_counts"]),
            _pct(r["pgd20"], r["pgd20_counts"]),
            _pct(r["corruptions_mean"], r["corruptions_counts"]),
            str(r["n"]),
        ]
        for r in key_numbers
    ]
    assert html_rows == expected
    # The Markdown has the same table.
    blocks = markdown_blocks((out / "report.md").read_text(encoding="utf-8"))
    tables = [b for b in blocks if isinstance(b, Table) and b.header[:2] == ["run", "threat model"]]
    assert tables[0].rows == expected
    # Both threat models of the BaSS runs appear in the evaluation and corruption tables.
    plain = html.unescape(text)
    for order in ("bass-then-corrupt", "corrupt-then-bass"):
        assert order in plain
    assert_self_contained(text)


def test_report_opens_with_the_key_numbers_and_says_each_explanation_once(demo):
    out, _, _ = demo
    text = (out / "report.html").read_text(encoding="utf-8")
    layout = section_layout(text)
    assert [s["title"] for s in layout[:2]] == ["Summary", "How to read these numbers"]
    assert not layout[0]["folded"] and all(s["folded"] and not s["open"] for s in layout[2:])
    summary = parse_page(text.split('<section id="summary">', 1)[1].split("</section>", 1)[0])
    assert summary.tables[0][0] == [
        "run",
        "threat model",
        "checkpoint",
        "Clean",
        "PGD-20",
        "Corruptions (mean)",
        "images (n)",
    ]
    assert len(summary.tables[0]) == 1 + len(_results(out)["key_numbers"])
    plain = html.unescape(text)
    # Four runs, three threat models, three results tables: each explanation still once.
    assert plain.count("delta <- clip(x + clamp(P_band(delta + step * sign(grad))") == 1
    assert plain.count("so it gives no verdict (check more images)") == 1
    assert plain.count("model without the BaSS front; eps on BaSS images") == 1
    assert repeated_texts((out / "report.md").read_text(encoding="utf-8"), 100) == {}
    assert_links_resolve(text)


def test_report_evaluation_tables_match_each_runs_records(demo):
    out, _, _ = demo
    parsed = parse_page((out / "report.html").read_text(encoding="utf-8"))
    checked = 0
    for name, *_ in RUNS:
        records = json.loads((out / name / "results.json").read_text())["results"]
        for record in records:
            if record["metric"] != "clean":
                continue
            rows = [
                row
                for table in parsed.tables
                if table[0][:3] == ["checkpoint", "threat model", "Clean"]
                for row in table[1:]
                if row[:2] == ["best", record["threat_model"]]
            ]
            assert f"{100 * record['correct'] / record['total']:.2f}" in {row[2] for row in rows}
            checked += 1
    assert checked == 6


def test_report_shows_robust_accuracy_by_band_for_every_run_and_threat_model(demo):
    out, printed, _ = demo
    parsed = parse_page((out / "report.html").read_text(encoding="utf-8"))
    header = ["checkpoint", "threat model", "boundary b", "Clean", "PGD-20"]
    tables = [t for t in parsed.tables if t[0][: len(header)] == header]
    assert len(tables) == len(RUNS)  # one per run, in run order
    for (name, *_), table in zip(RUNS, tables, strict=True):
        records = json.loads((out / name / "results.json").read_text())["results"]
        mine = {(r["threat_model"], r["metric"]): r for r in records}
        threats = sorted({threat for threat, _ in mine}, key=["standard", "domain", "end-to-end"].index)
        assert [row[1] for row in table[1:]] == threats
        for row in table[1:]:
            lfc, hfc = mine[(row[1], "pgd-20-ce-lfc")], mine[(row[1], "pgd-20-ce-hfc")]
            boundary = lfc["settings"]["boundary_band"]
            assert hfc["settings"]["boundary_band"] == boundary and row[2] == str(boundary)
            assert lfc["id"].endswith(f"|eps=8/255,band<{boundary}")
            numbers = [
                mine[(row[1], m)]["correct"] / mine[(row[1], m)]["total"] for m in ("clean", "pgd-20-ce")
            ]
            numbers += [lfc["correct"] / lfc["total"], hfc["correct"] / hfc["total"]]
            # The cells may carry the masking mark (‡: too few images to judge in the quick demo).
            assert [cell.split()[0] for cell in row[3:7]] == [_pct(v) for v in numbers]
            assert row[7] == str(QUICK.eval_n)
    # BaSS images carry more high-frequency power: their boundary is the higher one.
    domain = json.loads((out / "erm-bass" / "results.json").read_text())["results"]
    bands = {
        r["threat_model"]: r["settings"]["boundary_band"] for r in domain if r["metric"] == "pgd-20-ce-lfc"
    }
    assert bands["domain"] > bands["end-to-end"]
    assert "LFC " in printed and " at b = " in printed  # the evaluate stage's line names them


def test_demo_numbers_name_their_images_budget_and_masking_verdict(demo):
    from freqtail.data import build_dataset
    from freqtail.data.subsets import stratified_subset

    out, _, cache = demo
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FREQTAIL_CACHE", str(cache))
        labels = build_dataset("embedded", "test").labels
    expected = stratified_subset(labels, QUICK.eval_n, seed=0).tolist()
    assert QUICK.sensitivity_n == QUICK.landscape_n == QUICK.eval_n  # so all of them share the images
    for name, *_ in RUNS:
        for record in json.loads((out / name / "results.json").read_text())["results"]:
            if record["metric"] == "gradient-masking":
                # 16 images cannot hold the 50 correctly classified ones a verdict needs.
                assert record["state"] == "too-few-images" and len(record["data"]["indices"]) == 16
                continue
            assert record["data"]["indices"] == expected, (name, record["id"])
            if record["metric"] in ("pgd-20-ce", "pgd-20-ce-lfc", "pgd-20-ce-hfc"):
                assert record["gradient_masking"]["state"] == "too-few-images"
                assert "--eps" not in record["settings"]["budget_source"]  # the demo passes no --eps
    for name in ("erm", "erm-bass"):
        for kind in ("sensitivity", "landscape"):
            assert json.loads((out / name / f"{kind}.json").read_text())["indices"] == expected
    page = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert "Too few images to judge" in page and "POSSIBLE GRADIENT MASKING" not in page
    assert "(budget: --eps)" not in page
    assert f"Per corruption: accuracy at severity {QUICK.severities}:" in page


def test_markdown_figures_exist_relative_to_the_report(demo):
    out, _, _ = demo
    markdown = (out / "report.md").read_text(encoding="utf-8")
    paths = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(paths) >= 10
    for path in paths:
        assert not path.startswith("/") and (out / path).is_file(), path


def test_demo_report_in_a_real_browser(demo, tmp_path):
    out, _, _ = demo
    headings, decoded = browser_check(out / "report.html", tmp_path)
    for section in SECTIONS:
        assert section in headings
    done, total = (int(v) for v in decoded.split("/"))
    assert total >= 10 and done == total
    # Folded, the page is the summary and the reading guide: a small part of the opened page.
    closed, opened = (
        page_height(out / "report.html", tmp_path),
        page_height(out / "report.html", tmp_path, True),
    )
    assert 1000 < closed < opened / 4, (closed, opened)


def test_rerun_reuses_finished_stages_and_redoes_a_missing_one(demo, tmp_path, monkeypatch):
    out, _, cache = demo
    copy = tmp_path / "demo"
    shutil.copytree(out, copy)
    monkeypatch.setenv("FREQTAIL_CACHE", str(cache))
    manifest = json.loads((copy / GRID_MANIFEST).read_text())
    # As if Ctrl-C had struck while evaluating erm: the grid put its cell back to pending, and its
    # numbers are gone.
    row = next(row for row in manifest["cells"] if row["name"] == "erm")
    row.update(
        state="pending", attempts=0, holder=None, timings={"started": None, "finished": None, "seconds": None}
    )
    (copy / GRID_MANIFEST).write_text(json.dumps(manifest))
    (copy / "erm" / "results.json").unlink()
    lines: list[str] = []
    result = run_demo(copy, quick=True, echo=lines.append)
    lines = [line for line in lines if STEP_LINE.match(line)]  # not the progress lines within a step
    reused = [line for line in lines if "reused from an earlier run" in line]
    assert len(lines) == 17 and len(reused) == 15
    assert not any("reused" in line for line in lines if "evaluate erm " in line + " ")
    before = {(r["run"], r["threat_model"]): r for r in _results(out)["key_numbers"]}
    after = {(r["run"], r["threat_model"]): r for r in result.summary["key_numbers"]}
    for key, row in after.items():  # same checkpoints, same seeds: the same numbers
        assert (row["clean"], row["pgd20"], row["corruptions_mean"]) == (
            before[key]["clean"],
            before[key]["pgd20"],
            before[key]["corruptions_mean"],
        )


def test_other_settings_in_the_same_folder_are_refused(demo, capsys):
    out, _, _ = demo
    assert main(["demo", "--out", str(out)]) == 2  # full settings on a --quick folder
    err = capsys.readouterr().err
    assert "other settings" in err and "--force" in err and "Traceback" not in err


def test_force_deletes_only_what_the_demo_wrote(tmp_path):
    out = tmp_path / "demo"
    (out / "erm" / "checkpoints").mkdir(parents=True)
    (out / "figures").mkdir()
    (out / "report.html").write_text("old")
    (out / "mine.txt").write_text("keep me")
    # A demo folder of a freqtail before the demo ran on the grid engine.
    legacy = {"format": "freqtail-demo-state", "settings": {}, "stages": {}}
    (out / LEGACY_STATE_FILE).write_text(json.dumps(legacy))
    with pytest.raises(ConfigError, match="older freqtail.*--force"):
        _prepare_folder(out, QUICK, force=False)
    spec = _prepare_folder(out, QUICK, force=True)
    assert spec.digest() == demo_spec(QUICK).digest()
    assert [(row.name, row.state) for row in read_states(out)] == [(n, CellState.PENDING) for n, *_ in RUNS]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [GRID_MANIFEST, "mine.txt"]


def test_a_folder_that_is_not_a_demo_is_never_touched(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("precious")
    assert main(["demo", "--quick", "--force", "--out", str(tmp_path)]) == 2
    assert "holds no freqtail demo" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_comparison_report_of_two_demo_runs(demo, tmp_path):
    out, _, _ = demo
    result = build_report([out / "erm", out / "erm-bass"], out=tmp_path / "cmp")
    parsed = parse_page(result.html.read_text(encoding="utf-8"))
    records = {
        name: {
            (r["threat_model"], r["metric"]): r["accuracy"]
            for r in json.loads((out / name / "results.json").read_text())["results"]
            if "accuracy" in r
        }
        for name in ("erm", "erm-bass")
    }
    side = [t for t in parsed.tables if t[0][:3] == ["run", "threat model", "Clean"]][0]
    delta = [row for row in side if row[:2] == ["Δ vs erm", "domain − standard"]][0]
    expected = 100 * (records["erm-bass"][("domain", "clean")] - records["erm"][("standard", "clean")])
    assert delta[2] == f"{expected:+.2f}"


@pytest.mark.slow
def test_ctrl_c_then_rerun_continues_to_the_same_numbers(demo, tmp_path, monkeypatch):
    """A real SIGINT after a model is trained: exit 130 with a hint; the rerun reuses exactly the
    finished stages and ends with the uninterrupted run's numbers. The demo waits for the signal at a
    known point (FREQTAIL_DEMO_PAUSE_AFTER), so the test does not race the demo on a busy machine. It
    starts from the finished demo with its last run not done yet (pending, its folder gone), so the
    interrupted process trains only that run."""
    import os
    import signal
    import subprocess
    import sys

    out, _, cache = demo
    target = tmp_path / "demo"
    shutil.copytree(out, target)
    _pending_again(target, "pgd-at-bass")
    shutil.rmtree(target / "pgd-at-bass")
    env = dict(
        os.environ,
        FREQTAIL_CACHE=str(cache),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        FREQTAIL_DEMO_PAUSE_AFTER="train pgd-at-bass",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "freqtail.cli", "demo", "--quick", "--out", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = []
    for line in process.stdout:  # PGD-AT + BaSS is trained and recorded; the demo waits for the signal
        lines.append(line)
        if "paused after train pgd-at-bass" in line:
            break
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=600)
    assert process.returncode == 130, (lines, rest, err)
    assert "interrupted; run the same command again" in err and "Traceback" not in err
    finished = set(STEP_NAME.findall("".join(line for line in lines if STEP_LINE.match(line))))
    assert {"spectrum", "bass", "train erm", "train pgd-at-bass"} <= finished
    assert not {"evaluate pgd-at-bass", "report"} & finished
    # The grid put the interrupted cell back: it continues on the next run.
    assert {row.name: row.state for row in read_states(target)}["pgd-at-bass"] is CellState.PENDING

    monkeypatch.setenv("FREQTAIL_CACHE", str(cache))
    printed: list[str] = []
    result = run_demo(target, quick=True, echo=printed.append)

    stage_lines = [line for line in printed if STEP_LINE.match(line)]
    stages = STEP_NAME.findall("\n".join(stage_lines))
    assert len(stages) == 17
    for line, stage in zip(stage_lines, stages, strict=True):
        assert ("reused from an earlier run" in line) == (stage in finished), line
    expected = {(r["run"], r["threat_model"]): r for r in _results(out)["key_numbers"]}
    for row in result.summary["key_numbers"]:
        same = expected[(row["run"], row["threat_model"])]
        assert (row["clean"], row["pgd20"], row["corruptions_mean"]) == (
            same["clean"],
            same["pgd20"],
            same["corruptions_mean"],
        )


def test_the_full_demo_names_its_real_log_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("precious")
    assert main(["demo", "--out", str(tmp_path)]) == 2  # refused after its first line
    out = capsys.readouterr().out
    assert f"Details go to {tmp_path / 'demo.log'}." in out and "DIR/" not in out


def test_the_demo_is_one_grid_of_its_four_runs_with_their_evaluation_and_explanations():
    from freqtail.evaluate import EvaluationRequest
    from freqtail.train import load_config

    spec = demo_spec(QUICK)
    assert [cell.name for cell in spec.cells()] == [name for name, *_ in RUNS]
    assert spec.evaluation_request() == EvaluationRequest.of(
        suites="clean,pgd20,pgd20-lfc,pgd20-hfc,corruptions",
        n=QUICK.eval_n,
        step_size="2/255",
        generate_c=True,
        corruptions=QUICK.corruptions,
        severities=QUICK.severities,
        masking_n=QUICK.masking_n,
        masking_queries=QUICK.masking_queries,
        resume=True,
    )
    for name in ("erm", "erm-bass"):
        analyses = [(a.kind, a.request.n) for a in spec.analyses_for(name)]
        assert analyses == [("sensitivity", 64), ("landscape", 64), ("heatmap", 2)]
    assert spec.analyses_for("erm")[1].analysis.grid == QUICK.landscape_grid
    assert spec.analyses_for("pgd-at") == spec.analyses_for("pgd-at-bass") == ()
    common = {"dataset": "embedded", "model": "small-cnn", "model_options": {"width": QUICK.width}}
    common.update(train_subset=1024, test_subset=256, batch_size=128, seed=0, progress=False)
    assert spec.cell("erm-bass").config == load_config(
        overrides={**common, "objective": "erm", "bass": "dataset", "epochs": 1}
    )
    attack = {"eps": "8/255", "step_size": "4/255", "attack_steps": 2, "robust_eval_examples": 64}
    assert spec.cell("pgd-at").config == load_config(
        overrides={
            **common,
            **attack,
            "objective": "pgd-at",
            "bass": None,
            "epochs": 1,
            "robust_eval_steps": 5,
        }
    )


def _pending_again(folder: Path, name: str) -> None:
    """Put a done cell of the demo's grid back to pending (as a launcher does on Ctrl-C)."""
    manifest = json.loads((folder / GRID_MANIFEST).read_text())
    row = next(row for row in manifest["cells"] if row["name"] == name)
    row.update(
        state="pending", attempts=0, holder=None, timings={"started": None, "finished": None, "seconds": None}
    )
    (folder / GRID_MANIFEST).write_text(json.dumps(manifest))


def test_a_run_done_again_with_every_step_reused_still_ends_with_the_demo_report(demo, tmp_path, monkeypatch):
    """The grid engine writes its own report.html after each cell it finishes; the demo's report must be
    written again afterwards, or the folder would show the grid's page."""
    out, _, cache = demo
    copy = tmp_path / "demo"
    shutil.copytree(out, copy)
    monkeypatch.setenv("FREQTAIL_CACHE", str(cache))
    # A copied run measures its corruptions again once (their records name the -C folder's path).
    _pending_again(copy, "pgd-at")
    run_demo(copy, quick=True, echo=lambda line: None)
    _pending_again(copy, "pgd-at")
    lines: list[str] = []
    run_demo(copy, quick=True, echo=lines.append)
    steps = [line for line in lines if STEP_LINE.match(line)]
    assert len(steps) == 17 and sum("reused from an earlier run" in line for line in steps) == 16, steps
    assert re.search(r"17/17 report ", steps[-1]) and "reused" not in steps[-1]  # written again
    headings = [text for tag, text in parse_page((copy / "report.html").read_text(encoding="utf-8")).headings]
    assert all(section in headings for section in SECTIONS)
    assert {row.name: row.state for row in read_states(copy)}["pgd-at"] is CellState.DONE
