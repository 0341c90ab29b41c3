"""``freqtail report``: page rendering, partial run folders, comparisons, self-containment, a real browser."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from freqtail.cli import main
from freqtail.report.build import build_report
from freqtail.report.page import (
    Bullets,
    Figure,
    Heading,
    Item,
    Page,
    Paragraph,
    Section,
    Table,
    markdown_blocks,
    render_html,
    render_markdown,
)
from freqtail.report.read_once import HOW_TO_READ_TITLE, explain_once

CHROMIUM = shutil.which("chromium")


# ----------------------------------------------------------------------------- helpers shared with test_demo
class PageParser(HTMLParser):
    """Collects headings, tables (as lists of rows of cell texts), and every URL-like attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self._heading: str | None = None
        self._cell: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster") and value is not None:
                self.urls.append((tag, name, value))
        if tag in ("h1", "h2", "h3", "h4"):
            self._heading, self._text = tag, []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == self._heading:
            self.headings.append((tag, "".join(self._text).strip()))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._heading:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    return parser


class SectionParser(HTMLParser):
    """Per ``<section>``: its id, its h2 text, whether a ``<details>`` folds it and whether that is open."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "section":
            self.sections.append({"id": values.get("id"), "title": "", "folded": False, "open": False})
        elif tag == "details" and self.sections and not self.sections[-1]["title"]:
            self.sections[-1].update(folded=True, open="open" in values)
        elif tag == "h2":
            self._in_h2 = True

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2 and self.sections:
            self.sections[-1]["title"] += data


def section_layout(text: str) -> list[dict]:
    parser = SectionParser()
    parser.feed(text)
    return parser.sections


def assert_self_contained(text: str) -> None:
    """No external resource: every src is a data: URI, every href an in-page anchor, no script/link tags."""
    parsed = parse_page(text)
    # Base64 may spell anything ("http" included): look at the text without the embedded images.
    outside_images = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "data:", text)
    assert "http" not in outside_images.lower() and "//" not in outside_images
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    for tag, name, value in parsed.urls:
        if name == "href":
            assert value.startswith("#"), (tag, name, value[:60])
        else:
            assert value.startswith("data:image/"), (tag, name, value[:60])
    assert "url(" not in text and "@import" not in text


def browser_check(report: Path, tmp_path: Path) -> tuple[list[str], str]:
    """Open ``report`` in headless Chromium; return the rendered DOM's h2 texts and 'decoded/total' images."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    probe = tmp_path / "probe.html"
    # A copy with one inline check appended: the report itself carries no script.
    probe.write_text(
        report.read_text(encoding="utf-8").replace(
            "</body>",
            "<script>window.addEventListener('load', function () { var ok = 0, all = document.images;"
            " for (var i = 0; i < all.length; i++) if (all[i].complete && all[i].naturalWidth > 0) ok++;"
            " document.body.setAttribute('data-decoded', ok + '/' + all.length); });</script></body>",
        ),
        encoding="utf-8",
    )
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    decoded = dom.split('data-decoded="', 1)[1].split('"', 1)[0]
    headings = [text for tag, text in parse_page(dom).headings if tag == "h2"]
    return headings, decoded


def page_height(report: Path, tmp_path: Path, open_all: bool = False) -> int:
    """The height in CSS pixels of ``report`` in headless Chromium at 1,400 px wide, its folded
    sections closed as they are written (or, with ``open_all``, every one opened)."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    text = report.read_text(encoding="utf-8")
    if open_all:
        text = text.replace('<details class="section">', '<details class="section" open>')
    probe = tmp_path / f"height-{'open' if open_all else 'closed'}.html"
    probe.write_text(
        text.replace(
            "</body>",
            "<script>window.addEventListener('load', function () { document.body.setAttribute("
            "'data-height', document.documentElement.scrollHeight); });</script></body>",
        ),
        encoding="utf-8",
    )
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'chromium-height'}",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split('data-height="', 1)[1].split('"', 1)[0])


def write_png(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------- the page
def test_html_escapes_text_and_embeds_figures(tmp_path):
    png = write_png(tmp_path / "fig.png")
    page = Page(
        'Title <b>"x"</b> & y',
        [Paragraph("<script>alert(1)</script> uses `a<b` and **bold**")],
        [
            Section(
                "First <i>",
                "first",
                [
                    Table(["name", "value"], [["<td>", "1.50"]], numeric_from=1, caption="cap & more"),
                    Figure(png, 'caption "quoted" <x>'),
                    Figure(tmp_path / "missing.png", "gone"),
                    Bullets(["one", ("two", ["two-a <z>"])]),
                ],
            )
        ],
    )
    text = render_html(page)
    assert "<script>" not in text and "<b>" not in text and "<i>" not in text and "<td>&lt;" not in text[:0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<code>a&lt;b</code>" in text and "<strong>bold</strong>" in text
    assert "Title &lt;b&gt;&quot;x&quot;&lt;/b&gt; &amp; y" in text
    parsed = parse_page(text)
    assert parsed.tables == [[["name", "value"], ["<td>", "1.50"]]]
    images = [value for tag, name, value in parsed.urls if tag == "img"]
    assert len(images) == 1  # the missing figure becomes a sentence, not a broken image
    assert base64.b64decode(images[0].split(",", 1)[1]) == png.read_bytes()
    assert "Figure missing.png could not be read." in text
    assert_self_contained(text)


def test_collapsed_sections_fold_in_html_and_stay_plain_in_markdown(tmp_path):
    page = Page(
        "T",
        [],
        [
            Section("Open <one>", "open", [Paragraph("see [the target](#target) and [away](https://x.org)")]),
            Section(
                "Folded & two",
                "folded",
                [Paragraph("target text", anchor="target"), Bullets([Item("an item", "item-a", ["sub"])])],
                collapsed=True,
            ),
        ],
    )
    text = render_html(page)
    layout = section_layout(text)
    assert [(s["title"], s["folded"], s["open"]) for s in layout] == [
        ("Open <one>", False, False),
        ("Folded & two", True, False),
    ]
    assert '<a href="#target">the target</a>' in text and '<p id="target">target text</p>' in text
    assert '<li id="item-a">an item<ul><li>sub</li></ul></li>' in text
    assert "[away](https://x.org)" in text  # only in-page links become links
    assert_self_contained(text.replace("https://x.org", "elsewhere"))
    markdown = render_markdown(page, tmp_path)
    assert "<details" not in markdown and "## Folded & two" in markdown
    assert '<a id="target"></a>target text' in markdown
    assert '- <a id="item-a"></a>an item\n  - sub' in markdown


def test_markdown_references_figures_relative_and_reads_back_its_tables(tmp_path):
    png = write_png(tmp_path / "runs" / "a" / "figures" / "x.png")
    table = Table(["run", "a|b", "Clean"], [["r|1", "x", "52.72"], ["Δ vs r", "y", "+1.00"]], numeric_from=2)
    page = Page("T", [], [Section("S", "s", [table, Figure(png, "a [figure]")])])
    text = render_markdown(page, tmp_path / "runs")
    assert "![a (figure)](a/figures/x.png)" in text
    blocks = [b for b in markdown_blocks(text) if isinstance(b, Table)]
    assert len(blocks) == 1
    assert blocks[0].header == table.header and blocks[0].rows == table.rows
    assert blocks[0].numeric_from == 2


def test_markdown_blocks_reads_the_subset_evaluation_writes():
    text = "\n".join(
        [
            "## Clean and adversarial accuracy (%)",
            "",
            "| checkpoint | threat model | Clean |",
            "| --- | --- | ---: |",
            "| best | domain | 52.72 |",
            "",
            "Notes (accuracy in %):",
            "- Clean: no attack; n = 64.",
            "  - AutoAttack check warning: x",
            "- Threat model `domain`: BaSS.",
            "a second",
            "line",
        ]
    )
    blocks = markdown_blocks(text)
    kinds = [type(b).__name__ for b in blocks]
    assert kinds == ["Heading", "Table", "Paragraph", "Bullets", "Paragraph"]
    assert blocks[0].level == 3 and blocks[0].text.startswith("Clean and adversarial")
    assert blocks[1].rows == [["best", "domain", "52.72"]] and blocks[1].numeric_from == 2
    assert blocks[3].items == [
        ("Clean: no attack; n = 64.", ["AutoAttack check warning: x"]),
        "Threat model `domain`: BaSS.",
    ]
    assert blocks[4].text == "a second line"


# ----------------------------------------------------------------------------- run folders
def _metrics(path: Path, epochs: int, robust: bool = False) -> list[dict]:
    records = []
    for epoch in range(1, epochs + 1):
        record = {
            "epoch": epoch,
            "global_step": 10 * epoch,
            "lr": 0.1,
            "train_loss": 2.0 / epoch,
            "train_acc": 0.1 * epoch,
            "test_acc": 0.05 + 0.1 * epoch,
            "test_images": 100,
            "train_images": 640,
            "test_data": "original",
            "best": True,
            "epoch_time": 1.5,
        }
        if robust:
            record.update(test_robust_acc=0.02 * epoch, robust_attack="pgd-10-ce eps=8/255 on 64 images")
        records.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _record(threat: str, metric: str, correct: int, total: int, variant: str = "", tag: str = "best") -> dict:
    settings = {"attack": None}
    if metric.startswith("pgd"):
        settings = {
            "attack": "pgd",
            "name": metric,
            "eps_255": 8.0,
            "step_size_255": 2.0,
            "steps": 20,
            "loss": "ce",
            "restarts": 1,
            "random_start": True,
            "seed": 0,
            "budget_source": "paper default",
        }
    return {
        "id": f"{tag}|{threat}|{metric}|{variant}",
        "metric": metric,
        "threat_model": threat,
        "correct": correct,
        "total": total,
        "accuracy": correct / total,
        "data": {"n": total, "of": 1600, "subset_seed": 0, "dataset": "embedded"},
        "settings": settings,
        "checkpoint": {"epoch": 2, "objective": "erm", "bass": None if threat == "standard" else "dataset"},
    }


def _corruption_record(threat: str, order: str, table: dict) -> dict:
    from freqtail.evaluate import aggregate_corruptions

    summary = aggregate_corruptions(table)
    return {
        "id": f"best|{threat}|corruptions|{order}",
        "metric": "corruptions",
        "threat_model": threat,
        "order": order,
        "categories": summary["categories"],
        "mean": summary["mean"],
        "accuracy": summary["mean"],
        "cells": summary["cells"],
        "missing_corruptions": summary["missing"],
        "per_corruption": {
            name: {str(s): {"accuracy": a} for s, a in row.items()} for name, row in table.items()
        },
        "data": {"n": 50, "of": 1600},
        "settings": {"c_dir": "x", "origin": "generated", "seed": 0, "severities": [1, 3]},
        "checkpoint": {"epoch": 2},
    }


def _results(path: Path, records: list[dict]) -> None:
    from freqtail.evaluate import write_results

    write_results(path / "results.json", records)


@pytest.fixture()
def two_runs(tmp_path):
    """Two hand-written run folders: a standard run and a BaSS run with both threat models."""
    base, bass = tmp_path / "erm", tmp_path / "erm-bass"
    _metrics(base / "metrics.jsonl", 3)
    _metrics(bass / "metrics.jsonl", 2, robust=True)
    (base / "config.yaml").write_text("dataset: embedded\nobjective: erm\nbass: null\nepochs: 3\nlr: 0.1\n")
    (bass / "config.yaml").write_text(
        "dataset: embedded\nobjective: erm\nbass: dataset\nepochs: 2\nlr: 0.05\n"
    )
    table = {"gaussian_noise": {1: 0.5, 3: 0.25}, "fog": {1: 0.75, 3: 0.5}}
    _results(
        base,
        [
            _record("standard", "clean", 70, 100),
            _record("standard", "pgd-20-ce", 12, 100, "eps=8/255"),
            _corruption_record("standard", "none", table),
        ],
    )
    _results(
        bass,
        [
            _record("domain", "clean", 64, 100),
            _record("domain", "pgd-20-ce", 17, 100, "eps=8/255"),
            _record("end-to-end", "clean", 64, 100),
            _record("end-to-end", "pgd-20-ce", 9, 100, "eps=8/255"),
        ],
    )
    return base, bass


def _table_with(parsed: PageParser, header: list[str], row_start: list[str]) -> list[str]:
    """The first row starting with ``row_start`` in a table whose header starts with ``header``."""
    for table in parsed.tables:
        if table and table[0][: len(header)] == header:
            for row in table[1:]:
                if row[: len(row_start)] == row_start:
                    return row
    raise AssertionError(f"no row {row_start} in a table whose header starts with {header}")


def test_partial_run_folder_reports_what_it_has_and_lists_the_rest(tmp_path):
    run = tmp_path / "only-metrics"
    records = _metrics(run / "metrics.jsonl", 4)
    result = build_report([run])
    assert result.html == run / "report.html" and result.markdown == run / "report.md"
    assert "Training" in result.sections
    for absent in (
        "Evaluation: clean and adversarial accuracy",
        "Corruption robustness",
        "Frequency sensitivity",
    ):
        assert absent not in result.sections
    assert result.sections[-1] == "Not in this report"
    text = result.html.read_text(encoding="utf-8")
    parsed = parse_page(text)
    row = _table_with(parsed, ["run", "objective"], ["only-metrics"])
    assert row[5] == f"{records[-1]['train_loss']:.4f}" and row[7] == f"{100 * records[-1]['test_acc']:.2f}"
    assert "freqtail evaluate" in html.unescape(text)  # the note says how to get the missing part
    assert (run / "figures" / "report-training.png").stat().st_size > 1000
    markdown = result.markdown.read_text(encoding="utf-8")
    assert "](figures/report-training.png)" in markdown
    assert_self_contained(text)


def test_damaged_files_are_named_not_fatal(tmp_path):
    run = tmp_path / "damaged"
    _metrics(run / "metrics.jsonl", 2)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "train_lo')  # a line cut by a crash
    (run / "results.json").write_text("{not json")
    (run / "sensitivity.json").write_text("[1, 2]")
    (run / "config.yaml").write_text("a: [unclosed\n")
    result = build_report([run])
    text = html.unescape(result.html.read_text(encoding="utf-8"))
    assert "metrics.jsonl has 1 unreadable line(s)" in text
    assert "results.json could not be read" in text
    assert "sensitivity.json does not hold a JSON object" in text
    assert "config.yaml could not be read" in text
    assert "Training" in result.sections and "Configuration" not in result.sections


def test_analysis_files_alone_give_their_sections(tmp_path):
    run = tmp_path / "analysis"
    write_png(run / "figures" / "landscape.png", 1)
    (run / "landscape.json").write_text(
        json.dumps(
            {
                "grid": 5,
                "span": 1.0,
                "seed": 0,
                "boundary_band": 7,
                "num_images": 64,
                "center": {"loss_lfc": 1.25, "loss_hfc": 2.5, "acc_lfc": 0.5, "acc_hfc": 0.125},
                "loss_lfc_range": [1.0, 3.0],
                "loss_hfc_range": [2.0, 9.0],
                "nonfinite_points": 0,
            }
        )
    )
    result = build_report([run])
    assert result.sections == ["Summary", "Loss landscape on LFC / HFC", "Not in this report"]
    parsed = parse_page(result.html.read_text(encoding="utf-8"))
    assert _table_with(parsed, ["data"], ["low frequencies (LFC)"])[1:3] == ["1.2500", "50.0"]
    assert _table_with(parsed, ["data"], ["high frequencies (HFC)"])[1:3] == ["2.5000", "12.5"]
    assert len([u for t, n, u in parsed.urls if t == "img"]) == 1


def test_results_tables_and_comparison_match_the_json(tmp_path, two_runs):
    base, bass = two_runs
    out = tmp_path / "comparison"
    result = build_report([base, bass], out=out, title="Two runs")
    for needed in (
        "Training",
        "Evaluation: clean and adversarial accuracy",
        "Corruption robustness",
        "Configuration",
    ):
        assert needed in result.sections
    text = result.html.read_text(encoding="utf-8")
    parsed = parse_page(text)
    assert ("h1", "Two runs") in parsed.headings
    # Per-run tables (the evaluation engineer's layout) carry the JSON accuracies.
    for folder in (base, bass):
        for record in json.loads((folder / "results.json").read_text())["results"]:
            if record["metric"] != "clean":
                continue
            row = _table_with(parsed, ["checkpoint", "threat model"], ["best", record["threat_model"]])
            assert row[2] == f"{100 * record['correct'] / record['total']:.2f}"
    # Side by side: the BaSS run's delta rows are its accuracy minus the baseline's (hand-computed).
    delta = _table_with(parsed, ["run", "threat model"], ["Δ vs erm", "end-to-end − standard"])
    assert delta[2:4] == [f"{64 - 70:+.2f}", f"{9 - 12:+.2f}"]
    # The corruption table: Mean over the 4 cells, Noise over its 2, by hand; Clean is on 100 images and
    # the corruption cells on 50, so each cell names its n.
    row = _table_with(parsed, ["checkpoint", "threat model"], ["best", "standard", "none"])
    assert row[3] == "70.00 (n=100)" and row[4] == f"{100 * (0.5 + 0.25) / 2:.2f} (n=50)"
    assert row[-1] == f"{100 * (0.5 + 0.25 + 0.75 + 0.5) / 4:.2f} (n=50)"
    page = html.unescape(text)
    assert "Per corruption: mean over severities 1, 3 (accuracy at severity 1 / 3):" in page
    assert "severities 1-5" not in page and "(budget: paper default)" in page and "--eps" not in page
    # Config: differing keys side by side.
    assert _table_with(parsed, ["key"], ["lr"])[1:] == ["0.1", "0.05"]
    # Figures outside the output folder are copied beside the Markdown.
    markdown = result.markdown.read_text(encoding="utf-8")
    assert "](figures/report-training.png)" in markdown
    assert_self_contained(text)


def test_the_page_opens_with_its_summary_and_folds_the_rest(tmp_path, two_runs):
    base, bass = two_runs
    result = build_report([base, bass], out=tmp_path / "cmp")
    text = result.html.read_text(encoding="utf-8")
    layout = section_layout(text)
    assert [s["title"] for s in layout] == result.sections and result.sections[0] == "Summary"
    assert not layout[0]["folded"]
    # The one section between the summary and the folded details is the (open) reading guide.
    assert result.sections[1] == "How to read these numbers" and not layout[1]["folded"]
    assert all(s["folded"] and not s["open"] for s in layout[2:]) and len(layout) > 5
    summary = text.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    plain = html.unescape(summary)
    # One row per run, the key numbers with their intervals, the threat models evaluated, and what the
    # page does not show.
    assert ">erm<" in summary and ">erm-bass<" in summary
    (keys,) = [t for t in parse_page(summary).tables if t[0][:3] == ["run", "threat model", "checkpoint"]]

    def wilson(correct: int, total: int) -> str:
        ci = stats.binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
        return f"{100 * correct / total:.2f} ({100 * ci.low:.2f}–{100 * ci.high:.2f})"

    assert [row[:2] + row[3:5] for row in keys[1:]] == [
        ["erm", "standard", wilson(70, 100), wilson(12, 100)],
        ["erm-bass", "domain", wilson(64, 100), wilson(17, 100)],
        ["erm-bass", "end-to-end", wilson(64, 100), wilson(9, 100)],
    ]
    for threat in ("standard", "domain", "end-to-end"):
        assert f"{threat}</code> =" in summary
    assert "What it does not show" in plain and "Not in this report" in plain
    markdown = result.markdown.read_text(encoding="utf-8")
    assert "<details" not in markdown and markdown.index("## Summary") < markdown.index("## Training")


THREAT_TEXT = "Threat model `domain`: BaSS images; eps on BaSS images (the paper's protocol)."
ITERATION = "Iteration: delta <- clip(x + clamp(P_band(delta + step * sign(grad)), -eps, eps), 0, 1) - x."
NO_VERDICT = (
    "the check needs at least 50 correctly classified images, so it gives no verdict (check more images)."
)
SHORT = "Clean: no attack; n = 64."
CHECKPOINT = "Checkpoint `best`: path runs/a/checkpoints/step-00000008, epoch 1, objective erm, " + "x" * 60


def _too_few_verdict(run: str) -> str:
    return f"‡ Gradient-masking check of {run}: Too few images to judge: 4 of 16 images; {NO_VERDICT}"


def test_repeated_explanations_are_written_once_and_linked():
    def table_notes(run: str) -> list:
        return [
            Heading(run, 3),
            Bullets(
                [THREAT_TEXT, ITERATION, (CHECKPOINT, ["Clean: no attack; n = 64."]), _too_few_verdict(run)]
            ),
        ]

    once = "Orders: `none` = no BaSS; said a single time, so it stays where it is."
    sections = [
        Section("Summary", "summary", [Paragraph("key numbers")]),
        Section("Evaluation", "evaluation", table_notes("A") + table_notes("B"), collapsed=True),
        Section("Bands", "bands", [*table_notes("C"), Paragraph(once)], collapsed=True),
    ]
    out = explain_once(sections)
    assert [s.title for s in out] == ["Summary", HOW_TO_READ_TITLE, "Evaluation", "Bands"]
    guide = {item.anchor: item.text for item in out[1].blocks[1].items}
    # Each explanation once in the guide, its lead words kept where it was.
    assert sorted(guide.values()) == sorted(
        [THREAT_TEXT, ITERATION, "‡ Too few images to judge: " + NO_VERDICT]
    )
    threat = next(a for a, text in guide.items() if text == THREAT_TEXT)
    iteration = next(a for a, text in guide.items() if text == ITERATION)
    verdict = next(a for a, text in guide.items() if NO_VERDICT in text)
    notes = [b for s in out[2:] for b in s.blocks if isinstance(b, Bullets)]
    assert len(notes) == 3
    for bullets, run in zip(notes, "ABC", strict=True):
        threat_item, iteration_item, checkpoint_item, verdict_item = bullets.items
        assert threat_item == f"Threat model `domain`: [what it means](#{threat})."
        assert iteration_item == f"Iteration: [the formula](#{iteration})."
        assert verdict_item == (
            f"‡ Gradient-masking check of {run}: Too few images to judge: 4 of 16 images; "
            f"no verdict ([why](#{verdict}))."
        )
        # A short repeated line stays: reading it again is cheaper than a link.
        sub = checkpoint_item.sub if isinstance(checkpoint_item, Item) else checkpoint_item[1]
        assert sub == [SHORT]
    # A long repeated item stays where it first appears; the later ones link to it.
    first = notes[0].items[2]
    assert isinstance(first, Item) and first.text == CHECKPOINT and first.anchor
    for later in (notes[1].items[2], notes[2].items[2]):
        assert later[0] == f"Checkpoint `best`: [as in Evaluation, A](#{first.anchor})."
    assert out[3].blocks[-1] == Paragraph(once)


def test_a_page_with_nothing_repeated_has_no_reading_guide():
    sections = [Section("S", "s", [Paragraph(THREAT_TEXT), Bullets([ITERATION, CHECKPOINT])])]
    assert explain_once(sections) == [
        Section("S", "s", [Paragraph(THREAT_TEXT), Bullets([ITERATION, CHECKPOINT])])
    ]


def repeated_texts(markdown: str, at_least: int = 60) -> dict[str, int]:
    """Paragraphs and bullet items of a Markdown page (at least ``at_least`` characters, anchors
    dropped) that occur more than once, with their counts."""
    texts = []
    for block in markdown_blocks(re.sub(r'<a id="[^"]+"></a>', "", markdown)):
        if isinstance(block, Paragraph):
            texts.append(block.text)
        elif isinstance(block, Bullets):
            for item in block.items:
                text, sub = item if isinstance(item, tuple) else (item, [])
                texts += [text, *sub]
    counts: dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    return {text: n for text, n in counts.items() if n > 1 and len(text) >= at_least and "](#" not in text}


def assert_links_resolve(text: str) -> None:
    """Every in-page link of an HTML page points to an id on the page."""
    ids = set(re.findall(r'\sid="([^"]+)"', text))
    targets = set(re.findall(r'href="#([^"]+)"', text))
    assert targets and targets <= ids, targets - ids


def test_two_runs_report_says_each_explanation_once(tmp_path, two_runs):
    base, bass = two_runs
    result = build_report([base, bass], out=tmp_path / "cmp")
    text = result.html.read_text(encoding="utf-8")
    plain = html.unescape(text)
    from freqtail.evaluate.threat_model_names import DESCRIPTIONS

    for threat in ("standard", "domain", "end-to-end"):
        assert plain.count(DESCRIPTIONS[threat]) == 1, threat
    assert plain.count("robust = correct on the clean and on the adversarial image") == 1
    assert repeated_texts(result.markdown.read_text(encoding="utf-8"), 100) == {}
    assert_links_resolve(text)


def test_folder_of_runs_is_a_collection(tmp_path, two_runs):
    result = build_report([tmp_path])
    assert result.runs == ["erm", "erm-bass"]
    assert result.html == tmp_path / "report.html"


def test_report_command(tmp_path, two_runs, capsys):
    base, bass = two_runs
    assert main(["report", str(base), str(bass), "--out", str(tmp_path / "cmp"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["html"] == str(tmp_path / "cmp" / "report.html") and printed["runs"] == ["erm", "erm-bass"]
    assert main(["report", str(base)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and str(base / "report.html") in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nope", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds nothing to report"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is not a folder"),
    ],
)
def test_report_command_bad_input_is_one_sentence(tmp_path, capsys, make, message):
    assert main(["report", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_several_runs_need_out(tmp_path, two_runs, capsys):
    base, bass = two_runs
    assert main(["report", str(base), str(bass)]) == 2
    assert "--out" in capsys.readouterr().err


def test_report_opens_in_a_real_browser(tmp_path, two_runs):
    base, bass = two_runs
    write_png(bass / "figures" / "heatmap.png", 2)
    (bass / "heatmap.json").write_text(json.dumps({"eps": 4.0, "num_images": 3, "clean_error": 0.5}))
    result = build_report([base, bass], out=tmp_path / "cmp")
    headings, decoded = browser_check(result.html, tmp_path)
    assert headings == result.sections
    done, total = (int(v) for v in decoded.split("/"))
    assert total == 2 and done == total  # training curves and the heat map, both decoded


def test_metrics_without_numbers_give_a_note_instead_of_curves(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "train_loss": NaN}\n')
    result = build_report([run])
    text = html.unescape(result.html.read_text(encoding="utf-8"))
    assert "Training" in result.sections and "hold no loss or accuracy to plot" in text
    assert not (run / "figures" / "report-training.png").exists()


# ----------------------------------------------------------------------------- honest texts
def _verdict(state: str, summary: str, created: str) -> dict:
    return {
        "state": state,
        "checked": True,
        "judged": 80,
        "images": 100,
        "minimum": 50,
        "flags": [],
        "summary": summary,
        "indices": list(range(100)),
        "record": "best|domain|gradient-masking|eps=8/255",
        "created": created,
    }


def test_each_robust_number_keeps_its_own_masking_verdict_in_the_report(tmp_path, two_runs):
    from freqtail.evaluate import write_results

    base, bass = two_runs
    check = "best|domain|gradient-masking|eps=8/255"
    first = _record("domain", "pgd-20-ce", 40, 100, "eps=8/255")
    first["gradient_masking"] = _verdict("possible-masking", "Possible gradient masking (first check).", "t1")
    write_results(
        bass / "results.json", [{**_record("domain", "gradient-masking", 0, 100, "eps=8/255")}, first]
    )
    later = _record("domain", "pgd-20-cw", 35, 100, "eps=8/255")
    later["gradient_masking"] = _verdict("no-sign", "No sign of gradient masking (second check).", "t2")
    data = write_results(
        bass / "results.json", [{**_record("domain", "gradient-masking", 0, 100, "eps=8/255")}, later]
    )
    assert sum(r["id"] == check for r in data["results"]) == 1  # the second check replaced the first's record
    for result in (build_report([bass]), build_report([base, bass], out=tmp_path / "cmp")):
        text = result.html.read_text(encoding="utf-8")
        page = html.unescape(text)
        assert "Possible gradient masking (first check)." in page
        assert "No sign of gradient masking (second check)." in page
        row = _table_with(parse_page(text), ["checkpoint", "threat model"], ["best", "domain"])
        assert row[3:5] == ["40.00 †", "35.00"]
    side = _table_with(parse_page(text), ["run", "threat model", "Clean"], ["erm-bass", "domain"])
    assert side[3:5] == ["40.00 †", "35.00"]


def _band_record(threat: str, band: str, boundary: int, correct: int, total: int = 100) -> dict:
    variant = f"eps=8/255,band{'<' if band == 'lfc' else '>='}{boundary}"
    record = _record(threat, f"pgd-20-ce-{band}", correct, total, variant)
    record["settings"].update(
        band=band,
        boundary_band=boundary,
        boundary_source=f"measured on the {total} evaluated test images",
        iteration="the iteration",
    )
    return record


def test_robust_accuracy_by_band_for_every_run_and_threat_model(tmp_path, two_runs):
    from freqtail.evaluate import write_results

    base, bass = two_runs
    before = build_report([base])  # without band numbers: no section, and the command that makes them
    assert "Robust accuracy by band" not in before.sections
    assert "--suite clean,pgd20,pgd20-lfc,pgd20-hfc" in html.unescape(before.html.read_text(encoding="utf-8"))
    write_results(
        base / "results.json",
        [_band_record("standard", "lfc", 6, 20), _band_record("standard", "hfc", 6, 23)],
    )
    write_results(
        bass / "results.json",
        [
            _band_record("domain", "lfc", 15, 13),
            _band_record("domain", "hfc", 15, 31),
            _band_record("end-to-end", "lfc", 6, 42),
            _band_record("end-to-end", "hfc", 6, 11),
        ],
    )
    result = build_report([base, bass], out=tmp_path / "cmp")
    assert "Robust accuracy by band" in result.sections
    assert (
        result.sections.index("Robust accuracy by band")
        == result.sections.index("Evaluation: clean and adversarial accuracy") + 1
    )
    parsed = parse_page(result.html.read_text(encoding="utf-8"))
    header = ["checkpoint", "threat model", "boundary b", "Clean", "PGD-20"]
    # One row per run and threat model: b, Clean, PGD-20, LFC, HFC (the two_runs numbers), n.
    expected = {
        "standard": ["6", "70.00", "12.00", "20.00", "23.00", "100"],
        "domain": ["15", "64.00", "17.00", "13.00", "31.00", "100"],
        "end-to-end": ["6", "64.00", "9.00", "42.00", "11.00", "100"],
    }
    for threat, cells in expected.items():
        assert _table_with(parsed, header, ["best", threat])[2:] == cells
    # Side by side, the BaSS run minus the baseline, by hand (e.g. LFC 13 - 20 = -7 points).
    deltas = {
        "domain − standard": ["15 vs 6", "-6.00", "+5.00", "-7.00", "+8.00"],
        "end-to-end − standard": ["6", "-6.00", "-3.00", "+22.00", "-12.00"],
    }
    for threats, cells in deltas.items():
        assert _table_with(parsed, ["run", "threat model", "boundary b"], ["Δ vs erm", threats])[2:] == cells
    page = html.unescape(result.html.read_text(encoding="utf-8"))
    assert "compare attacks on different bands" in page and "b = 15: measured on the 100 evaluated" in page


def test_bass_power_shares_are_compared_at_common_boundaries(tmp_path):
    run = tmp_path / "bass"
    run.mkdir()
    before = [0.0, 0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05]
    after = [0.0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1]
    spectrum = {"entropy": 1.0, "entropy_normalized": 0.5, "alpha": 2.0}
    (run / "bass.json").write_text(
        json.dumps(
            {
                "images": 10,
                "degenerate": 0,
                "strength": 1.0,
                "spectrum_before": {**spectrum, "boundary_band": 3, "lfc_power_share": 0.6, "pi": before},
                "spectrum_after": {**spectrum, "boundary_band": 5, "lfc_power_share": 0.5, "pi": after},
            }
        )
    )
    parsed = parse_page(build_report([run]).html.read_text(encoding="utf-8"))
    at_original = _table_with(
        parsed, ["long tail"], ["LFC power share (%) below band 3 (boundary: original)"]
    )
    assert at_original[1:] == [f"{100 * sum(before[:3]):.1f}", f"{100 * sum(after[:3]):.1f}"]
    at_after = _table_with(parsed, ["long tail"], ["LFC power share (%) below band 5 (boundary: after BaSS)"])
    assert at_after[1:] == [f"{100 * sum(before[:5]):.1f}", f"{100 * sum(after[:5]):.1f}"]
    # Without the band proportions the two own-boundary shares are labelled as not comparable.
    data = json.loads((run / "bass.json").read_text())
    for part in ("spectrum_before", "spectrum_after"):
        del data[part]["pi"]
    (run / "bass.json").write_text(json.dumps(data))
    page = html.unescape(build_report([run]).html.read_text(encoding="utf-8"))
    assert "each below its own b (different boundaries: not comparable)" in page


def test_sensitivity_shares_of_two_runs_are_compared_at_each_boundary(tmp_path):
    shares = {"erm": [0.0, 0.5, 0.2, 0.1, 0.1, 0.1], "erm-bass": [0.0, 0.1, 0.1, 0.2, 0.3, 0.3]}
    tops = {"erm": [0, 6, 2, 1, 1, 0], "erm-bass": [0, 1, 1, 2, 3, 3]}
    bands = {"erm": 2, "erm-bass": 4}
    for name in shares:
        run = tmp_path / name
        run.mkdir()
        (run / "sensitivity.json").write_text(
            json.dumps(
                {
                    "num_images": 10,
                    "boundary_band": bands[name],
                    "hfc_energy_share": sum(shares[name][bands[name] :]),
                    "top_fraction": 0.1,
                    "top_hfc_share": sum(tops[name][bands[name] :]) / sum(tops[name]),
                    "band_energy_share": shares[name],
                    "top_band_counts": tops[name],
                    "source": "embedded test split",
                    "subset": "all",
                }
            )
        )
    result = build_report([tmp_path / "erm", tmp_path / "erm-bass"], out=tmp_path / "cmp")
    parsed = parse_page(result.html.read_text(encoding="utf-8"))
    header = [
        "run",
        "own boundary b",
        "HFC energy share (%) at b = 2 (erm)",
        "HFC energy share (%) at b = 4 (erm-bass)",
    ]
    for name in shares:
        row = _table_with(parsed, header, [name])
        expected = [f"{100 * sum(shares[name][b:]):.1f}" for b in (2, 4)]
        expected += [f"{100 * sum(tops[name][b:]) / sum(tops[name]):.1f}" for b in (2, 4)]
        assert row[1:] == [str(bands[name]), *expected]


def test_spectrum_section_shows_both_boundaries(tmp_path, natural_crops):
    from freqtail.spectrum import summarize

    summary = summarize(natural_crops(16, 4, seed=0)).to_dict()
    run = tmp_path / "spectrum-only"
    run.mkdir()
    (run / "spectrum.json").write_text(json.dumps(summary))
    parsed = parse_page(build_report([run]).html.read_text(encoding="utf-8"))
    corner = _table_with(parsed, ["quantity"], ["80/20 boundary band b"])
    assert corner[1].startswith(f"{summary['boundary_band']} (")
    inscribed = _table_with(
        parsed, ["quantity"], ["80/20 boundary over the inscribed bands k <= 8 (the paper's range)"]
    )
    assert inscribed[1].startswith(f"{summary['boundary_band_inscribed']} (")
    assert f"{100 * summary['inscribed_power_share']:.1f}% of the non-DC power" in inscribed[1]


@pytest.mark.parametrize("given", ["run", "collection", "out"])
def test_run_folder_name_that_is_not_utf8_is_one_sentence(tmp_path, capsys, given):
    odd = tmp_path / "runs" / os.fsdecode(b"bad\xffname")  # a byte that is no UTF-8 text
    good = tmp_path / "runs" / "good"
    for folder in (odd, good) if given != "out" else (good,):
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    argv = {
        "run": ["report", str(odd)],
        "collection": ["report", str(tmp_path / "runs")],
        "out": ["report", str(good), "--out", str(odd)],
    }[given]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "bad\\xffname has a name that is not UTF-8 text (byte 0xff); rename it." in err
    assert err.count("\n") == 1 and not (good / "report.html").exists()


@pytest.mark.parametrize(
    ("stored", "words"),
    [
        (1, "holds a record that is not a JSON object"),
        ({"metric": "clean"}, "holds a record without an id"),
        ({**_record("domain", "clean", 1, 2), "data": 7}, "whose 'data' is not a JSON object"),
        (
            {k: v for k, v in _record("domain", "clean", 1, 2).items() if k != "threat_model"},
            "without a threat_model",
        ),
    ],
    ids=["not-an-object", "no-id", "data-not-an-object", "no-threat-model"],
)
def test_misshapen_records_are_named_by_report_and_refused_by_compare(tmp_path, capsys, stored, words):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
        document = {
            "format": "freqtail-results",
            "version": 1,
            "results": [_record("standard", "clean", 1, 2), stored],
        }
        (run / "results.json").write_text(json.dumps(document))
    result = build_report([runs[0]])  # the report leaves the file out and says why
    assert words in html.unescape(result.html.read_text(encoding="utf-8"))
    assert main(["compare", str(runs[0]), str(runs[1])]) == 2
    err = capsys.readouterr().err
    assert words in err and str(runs[0] / "results.json") in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ("erm,", "The run label must not be empty."),
        ("erm,b\x1bass", "The run label 'b\\x1bass' holds the control character U+001B;"),
    ],
)
def test_compare_refuses_empty_labels_and_control_characters(tmp_path, capsys, labels, words):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
        _results(run, [_record("standard", "clean", 1, 2)])
    assert main(["compare", *map(str, runs), "--labels", labels]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert err.count("\n") == 1
