"""The run report: every figure and table one or more run folders hold, as one self-contained HTML page
and Markdown beside it.

>>> from freqtail.report.build import build_report
>>> result = build_report(["runs/demo"])                      # runs/demo/report.html, report.md
>>> result = build_report(["runs/erm", "runs/erm-bass"], out="runs/comparison")

The page opens with a Summary (the key numbers with their intervals, the threat models, what the
page shows and what it does not); every section after it is folded in HTML (``<details>``, the title
is the summary line) and a plain section in Markdown. Sections, in order, each present only when some
folder holds its material: Summary, Frequency long tail, Balanced Spectrum Sampling, Training,
Evaluation (clean and adversarial, per threat model), Robust accuracy by band (Clean, PGD-20, PGD-20
LFC / HFC with the boundary band b and n, per run and threat model), Corruption robustness, Frequency
sensitivity, Loss landscape, Fourier heat map, Configuration, Demo stages and timings, and "Not in
this report" (what is missing and the command that makes it). With several runs the evaluation
tables start with a side-by-side comparison with deltas
(:func:`freqtail.evaluate.compare.compare_runs`), and training curves share one figure.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from freqtail import __version__
from freqtail.checks import check_utf8_path
from freqtail.environment import measured_with
from freqtail.errors import InputError
from freqtail.evaluate.compare import RunResults, compare_markdown, compare_runs
from freqtail.evaluate.tables import (
    BAND_TABLE_TITLE,
    adversarial_table,
    band_table,
    corruption_table,
    marked_stale,
    subset_words,
)
from freqtail.evaluate.threat_model_names import THREAT_MODELS
from freqtail.formatting import MISSING, percent
from freqtail.io import atomic_write_bytes, atomic_write_text
from freqtail.report import summary
from freqtail.report.collect import RunArtefacts, collect
from freqtail.report.key_numbers import TEXT_COLUMNS, key_number_table, last_epoch_notes
from freqtail.report.page import (
    Bullets,
    Code,
    Figure,
    Heading,
    Note,
    Page,
    Paragraph,
    Section,
    Table,
    markdown_blocks,
    render_html,
    render_markdown,
    slug,
)
from freqtail.report.read_once import explain_once
from freqtail.report.training_figures import plot_training_curves
from freqtail.runs.layout import REPORT_HTML, REPORT_MD, RunLayout
from freqtail.train.staleness import stale_ids, with_staleness

__all__ = ["HTML_NAME", "MARKDOWN_NAME", "ReportResult", "build_report", "key_number_rows", "percent"]

HTML_NAME = REPORT_HTML
MARKDOWN_NAME = REPORT_MD
TRAINING_FIGURE = "figures/report-training.png"

#: Config keys shown in the configuration table (others appear when they differ between runs).
CONFIG_KEYS = (
    "dataset",
    "model",
    "model_options",
    "objective",
    "bass",
    "gamma",
    "epochs",
    "steps",
    "batch_size",
    "lr",
    "schedule",
    "weight_decay",
    "eps",
    "step_size",
    "attack_steps",
    "train_subset",
    "test_subset",
    "seed",
)


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        html, markdown: the two files.
        sections: titles of the sections on the page, in order.
        omitted: one sentence per part that no folder holds (also listed on the page).
        runs: the labels of the folders reported on.
    """

    html: Path
    markdown: Path
    sections: list[str] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "html": str(self.html),
            "markdown": str(self.markdown),
            "sections": self.sections,
            "omitted": self.omitted,
            "runs": self.runs,
        }


# ----------------------------------------------------------------------------- formatting
def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return MISSING if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return MISSING
    value = float(value)
    return f"{value:.1f} s" if value < 120 else f"{int(value // 60)} min {value % 60:.0f} s"


def _is_training_run(unit: RunArtefacts) -> bool:
    return unit.config is not None or bool(unit.metrics) or unit.has_checkpoints or unit.results is not None


class _Figures:
    """Figures for the page: the HTML embeds the file; the Markdown needs a path relative to the output
    folder, so a figure outside it is copied to ``out/figures/<run>-<name>``."""

    def __init__(self, out: Path) -> None:
        self.out = out.resolve()

    def __call__(self, path: Path, caption: str, label: str) -> Figure:
        source = Path(path).resolve()
        try:
            relative = source.relative_to(self.out)
        except ValueError:
            target = RunLayout.of(self.out).figures / f"{slug(label)}-{source.name}"
            try:
                atomic_write_bytes(target, source.read_bytes())
            except OSError:
                return Figure(source, caption)
            relative = target.relative_to(self.out)
        return Figure(source, caption, markdown_path=relative.as_posix())


# ----------------------------------------------------------------------------- sections
def _inscribed_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """The boundary over the inscribed bands (the paper's range, up to min(H, W) // 2), when recorded."""
    if "boundary_band_inscribed" not in data:
        return []
    top = data.get("inscribed_max_band")
    label = f"80/20 boundary over the inscribed bands k <= {_num(top)} (the paper's range)"
    if data.get("boundary_band_inscribed") is None:
        return [[label, "none: those bands carry no power"]]
    return [
        [
            label,
            f"{_num(data.get('boundary_band_inscribed'))} (= "
            f"{_num(data.get('boundary_fraction_nyquist_inscribed'))} of the Nyquist radius; LFC share "
            f"{percent(data.get('lfc_power_share_inscribed'), 1)}% of the inscribed bands' power, which "
            f"hold {percent(data.get('inscribed_power_share'), 1)}% of the non-DC power)",
        ]
    ]


#: Below this R², a power-law fit is called poor next to its alpha (the spectrum is then no power law).
POOR_FIT_R2 = 0.5


def alpha_text(alpha: Any, r2: Any) -> str:
    """``"1.874 (R² 0.971)"``, or with a poor fit (R² below :data:`POOR_FIT_R2`) ``"0.586 (R² 0.080: a
    poor fit; the spectrum is not a power law here, so alpha says little)"``."""
    text = f"{_num(alpha)} (R² {_num(r2)}"
    if isinstance(r2, (int, float)) and not isinstance(r2, bool) and r2 < POOR_FIT_R2:
        text += ": a poor fit; the spectrum is not a power law here, so alpha says little"
    return text + ")"


def _spectrum_blocks(data: Mapping[str, Any]) -> list:
    size = data.get("image_size") or [None, None]
    dist = data.get("per_image_boundary") or {}
    lfc = data.get("lfc_power_share")
    rows = [
        ["images", f"{_num(data.get('num_images'))} of {size[0]}x{size[1]} pixels"],
        [
            "80/20 boundary band b",
            f"{_num(data.get('boundary_band'))} (= {_num(data.get('boundary_fraction_nyquist'))} of the "
            f"Nyquist radius, {_num(data.get('boundary_fraction_corner'))} of the corner radius)",
        ],
        ["LFC power share (bands < b)", f"{percent(lfc, 1)}% of the non-DC power"],
        ["HFC power share (bands >= b)", f"{percent(None if lfc is None else 1 - lfc, 1)}%"],
        *_inscribed_rows(data),
        [
            "power-law exponent alpha, all bands",
            alpha_text(data.get("alpha"), data.get("alpha_r2")),
        ],
        [
            "alpha over the full rings",
            alpha_text(data.get("alpha_rings"), data.get("alpha_rings_r2")),
        ],
        [
            "spectral entropy",
            f"{_num(data.get('entropy'))} nats (normalised {_num(data.get('entropy_normalized'))})",
        ],
    ]
    if dist:
        rows.append(
            [
                "per-image boundary band",
                f"median {_num(dist.get('median'))}, p10 {_num(dist.get('p10'))}, "
                f"p90 {_num(dist.get('p90'))}",
            ]
        )
    blocks: list = []
    if data.get("source"):
        blocks.append(Paragraph(f"Images: {data['source']}."))
    blocks.append(Table(["quantity", "value"], rows, numeric_from=2))
    return blocks


def _bass_blocks(data: Mapping[str, Any]) -> list:
    blocks: list = []
    if data.get("source"):
        blocks.append(Paragraph(f"Images: {data['source']}."))
    images, degenerate = data.get("images"), data.get("degenerate")
    share = (
        degenerate / images if isinstance(images, int) and images and isinstance(degenerate, int) else None
    )
    blocks.append(
        Paragraph(
            f"BaSS (strength {_num(data.get('strength'), 2)}) converted {_num(images)} images; "
            f"**{_num(degenerate)}** ({percent(share, 2)}%) had a channel that hit the degenerate rule "
            "(a profiled band with mean amplitude <= 1: a flat or near-black channel), which BaSS returns "
            "unchanged while converting the image's other channels, as the published code does."
        )
    )
    before, after = data.get("spectrum_before") or {}, data.get("spectrum_after") or {}
    if before and after:
        b_before, b_after = before.get("boundary_band"), after.get("boundary_band")
        rows = [["80/20 boundary band b", _num(b_before), _num(b_after)]]
        # A share below a boundary depends on the boundary: both spectra are compared at each b.
        bands = [b for b in dict.fromkeys((b_before, b_after)) if isinstance(b, int)]
        if bands and all(_share_below(part, b) is not None for part in (before, after) for b in bands):
            for band in bands:
                whose = "both" if b_before == b_after else ("original" if band == b_before else "after BaSS")
                rows.append(
                    [
                        f"LFC power share (%) below band {band} (boundary: {whose})",
                        percent(_share_below(before, band), 1),
                        percent(_share_below(after, band), 1),
                    ]
                )
        else:
            rows.append(
                [
                    "LFC power share (%), each below its own b (different boundaries: not comparable)",
                    percent(before.get("lfc_power_share"), 1),
                    percent(after.get("lfc_power_share"), 1),
                ]
            )
        rows += [
            ["spectral entropy (nats)", _num(before.get("entropy")), _num(after.get("entropy"))],
            [
                "normalised entropy",
                _num(before.get("entropy_normalized")),
                _num(after.get("entropy_normalized")),
            ],
            [
                "power-law alpha, all bands",
                alpha_text(before.get("alpha"), before.get("alpha_r2")),
                alpha_text(after.get("alpha"), after.get("alpha_r2")),
            ],
        ]
        blocks.append(
            Table(["long tail", "original", "after BaSS"], rows, caption="The spectrum before and after BaSS")
        )
    return blocks


def _share_below(spectrum: Mapping[str, Any], band: Any) -> float | None:
    """The power share of the bands below ``band`` from a spectrum dict: its ``pi`` summed, or its
    own ``lfc_power_share`` when ``band`` is its own boundary; None when neither is stored."""
    if not isinstance(band, int):
        return None
    pi = spectrum.get("pi")
    if isinstance(pi, list) and pi:
        return float(sum(pi[:band]))
    if band == spectrum.get("boundary_band"):
        return spectrum.get("lfc_power_share")
    return None


def _training_table(units: Sequence[RunArtefacts]) -> Table:
    rows = []
    for unit in units:
        last = unit.metrics[-1]
        config = unit.config or {}
        best_records = [r for r in unit.metrics if r.get("best")]
        best_epoch = best_records[-1]["epoch"] if best_records else None
        total = sum(float(r.get("epoch_time") or 0.0) for r in unit.metrics)
        rows.append(
            [
                unit.label,
                str(config.get("objective", MISSING)),
                str(config.get("bass") or "none"),
                str(last.get("test_data") or MISSING),
                f"{last['epoch']}" + (f"/{config['epochs']}" if config.get("epochs") else ""),
                _num(last.get("train_loss"), 4),
                percent(last.get("train_acc")),
                percent(last.get("test_acc")),
                percent(last.get("test_robust_acc")),
                _num(best_epoch),
                _seconds(total),
            ]
        )
    header = [
        "run",
        "objective",
        "BaSS",
        "test data",
        "epochs",
        "train loss",
        "train acc",
        "test acc",
        "robust acc",
        "best epoch",
        "time",
    ]
    return Table(header, rows, numeric_from=4, caption="Last epoch (accuracy in %)")


def _training_notes(units: Sequence[RunArtefacts]) -> list[str]:
    notes = []
    for unit in units:
        last = unit.metrics[-1]
        parts = [f"{unit.label}: test accuracy on {_num(last.get('test_images'))} test images"]
        if last.get("robust_attack"):
            parts.append(f"robust accuracy by {last['robust_attack']}")
        images = sum(int(r.get("train_images") or 0) for r in unit.metrics)
        parts.append(f"{images} training images seen over {len(unit.metrics)} epoch(s)")
        notes.append("; ".join(parts) + ".")
    return notes


def _records_tables(unit: RunArtefacts, kind: str) -> list:
    """The blocks of one run's results table of ``kind``: "adversarial", "bands" or "corruptions"."""
    make = {"adversarial": adversarial_table, "bands": band_table, "corruptions": corruption_table}[kind]
    text = make(marked_stale(unit.records, stale_ids(unit.stale)))
    if not text:
        return []
    blocks = markdown_blocks(text)
    if kind == "adversarial":
        blocks = [*(Note(f"⚠ {entry.sentence(unit.path)}") for entry in unit.stale), *blocks]
        blocks.append(Paragraph(measured_with(unit.records)))
    return blocks


def _comparison_parts(units: Sequence[RunArtefacts]) -> dict[str, list]:
    """Blocks of the side-by-side tables by kind ("adversarial", "bands", "corruptions"); empty on < 2
    runs."""
    evaluated = [u for u in units if u.records]
    if len(evaluated) < 2:
        return {}
    runs = [with_staleness(RunResults(u.label, str(u.path), u.records)) for u in evaluated]
    try:
        text = compare_markdown(compare_runs(runs))
    except InputError:
        return {}
    parts: dict[str, list] = {}
    current = None
    for block in markdown_blocks(text, heading_offset=1):
        if isinstance(block, Heading):
            if block.text.startswith("Corruption"):
                current = "corruptions"
            elif block.text.startswith(BAND_TABLE_TITLE):
                current = "bands"
            else:
                current = "adversarial"
            parts[current] = []
            continue
        if current is not None and not (
            isinstance(block, Paragraph) and block.text.startswith("Each number")
        ):
            parts[current].append(block)
    return parts


def _images_words(data: Mapping[str, Any]) -> str:
    """``"500 images (embedded test split; class-stratified seeded subset, subset seed 0)"``."""
    what = [str(data.get("source", "test images"))]
    if data.get("subset") not in (None, "all"):
        what.append(subset_words(data))
    return f"{_num(data.get('num_images'))} images ({'; '.join(what)})"


def _sensitivity_blocks(data: Mapping[str, Any]) -> list:
    rows = [
        ["images", _images_words(data)],
        ["LFC/HFC boundary band", _num(data.get("boundary_band"))],
        *(
            [["coefficient ranking", str(data["ranking"])]]
            if data.get("ranking", "definition") != "definition"
            else []
        ),
        ["HFC share of the gradient's spectral energy", f"{percent(data.get('hfc_energy_share'), 1)}%"],
        [
            f"HFC share of the top {percent(data.get('top_fraction'), 0)}% coefficients",
            f"{percent(data.get('top_hfc_share'), 1)}%",
        ],
    ]
    for rank in data.get("ranks") or []:
        if isinstance(rank, Mapping):
            rows.append(
                [
                    f"coefficient at rank {percent(rank.get('fraction'), 0)}%",
                    f"median radius {_num(rank.get('median_radius'), 2)}, in HFC for "
                    f"{percent(rank.get('hfc_share'), 1)}% of the images",
                ]
            )
    return [Table(["quantity", "value"], rows, numeric_from=2)]


def _shares_at(values: Any, band: int) -> float | None:
    """Share of ``values`` (per band, 0 .. K) in the bands at or above ``band``; None without values."""
    if not isinstance(values, list) or not values:
        return None
    total = float(sum(values))
    return float(sum(values[band:])) / total if total > 0 else None


def _sensitivity_comparison(units: Sequence[RunArtefacts]) -> list:
    """Side by side, the HFC shares of several sensitivity analyses at every boundary any of them used.

    Each analysis splits LFC/HFC at the 80/20 boundary of its own images (BaSS images have a higher
    one), so their own shares are not comparable; the shares are recomputed from the stored per-band
    values at each boundary, labelled with whose boundary it is.
    """
    with_bands = [
        u for u in units if u.sensitivity and isinstance(u.sensitivity.get("band_energy_share"), list)
    ]
    if len(with_bands) < 2:
        return []
    owners: dict[int, list[str]] = {}
    for unit in with_bands:
        band = unit.sensitivity.get("boundary_band")
        if isinstance(band, int):
            owners.setdefault(band, []).append(unit.label)
    if len(owners) < 2:
        return []
    bands = sorted(owners)
    header = ["run", "own boundary b"]
    for band in bands:
        whose = ", ".join(owners[band])
        header.append(f"HFC energy share (%) at b = {band} ({whose})")
    has_top = all(isinstance(u.sensitivity.get("top_band_counts"), list) for u in with_bands)
    if has_top:
        header += [f"top-coefficient HFC share (%) at b = {band}" for band in bands]
    rows = []
    for unit in with_bands:
        data = unit.sensitivity
        row = [unit.label, _num(data.get("boundary_band"))]
        row += [percent(_shares_at(data["band_energy_share"], band), 1) for band in bands]
        if has_top:
            row += [percent(_shares_at(data["top_band_counts"], band), 1) for band in bands]
        rows.append(row)
    return [
        Heading("Side by side, at common boundaries", 3),
        Paragraph(
            "Each analysis reports its shares at the 80/20 boundary of its own images (BaSS images have a "
            "higher one), so those are not comparable across runs; here every run's shares are computed "
            "at each boundary, named with the runs whose boundary it is."
        ),
        Table(header, rows, numeric_from=1),
    ]


def _landscape_blocks(data: Mapping[str, Any]) -> list:
    center = data.get("center") or {}
    lfc_range, hfc_range = (
        data.get("loss_lfc_range") or [None, None],
        data.get("loss_hfc_range") or [None, None],
    )
    rows = [
        ["low frequencies (LFC)", _num(center.get("loss_lfc"), 4), percent(center.get("acc_lfc"), 1)]
        + [f"{_num(lfc_range[0], 4)} .. {_num(lfc_range[1], 4)}"],
        ["high frequencies (HFC)", _num(center.get("loss_hfc"), 4), percent(center.get("acc_hfc"), 1)]
        + [f"{_num(hfc_range[0], 4)} .. {_num(hfc_range[1], 4)}"],
    ]
    blocks: list = [
        Paragraph(
            f"{_num(data.get('grid'))}x{_num(data.get('grid'))} grid over [-{_num(data.get('span'), 2)}, "
            f"{_num(data.get('span'), 2)}]² along two filter-normalised directions (seed "
            f"{_num(data.get('seed'))}), {_images_words(data)}, boundary band "
            f"{_num(data.get('boundary_band'))}."
        ),
        Table(
            ["data", "loss at the weights", "accuracy (%)", "loss range on the grid"], rows, numeric_from=1
        ),
    ]
    if data.get("nonfinite_points"):
        blocks.append(Note(f"{data['nonfinite_points']} grid points had a non-finite loss."))
    return blocks


_SIGN_WORDS = {
    "channel": "channel: one random sign per channel, image and frequency (Yin et al.'s definition)",
    "image": "image: one random sign per image and frequency, shared by its channels (not the reference's)",
}


def _heatmap_blocks(data: Mapping[str, Any]) -> list:
    worst = data.get("max_error_frequency") or [None, None]
    rows = [
        ["perturbation", f"L2 norm {_num(data.get('eps'), 2)} per channel"],
        ["sign mode", _SIGN_WORDS.get(data.get("sign"), "not recorded (a heat map from before sign modes)")],
        ["images", _images_words(data)],
        ["clean error", f"{percent(data.get('clean_error'), 1)}%"],
        ["mean error over frequencies", f"{percent(data.get('mean_error'), 1)}%"],
        [
            "worst frequency (du, dv)",
            f"({_num(worst[0])}, {_num(worst[1])}): {percent(data.get('max_error'), 1)}%",
        ],
    ]
    return [Table(["quantity", "value"], rows, numeric_from=2)]


def _config_blocks(units: Sequence[RunArtefacts]) -> list:
    configs = [(u.label, u.config) for u in units if u.config is not None]
    keys = [k for k in CONFIG_KEYS if any(k in c for _, c in configs)]
    every = sorted({k for _, c in configs for k in c})
    differing = [
        k
        for k in every
        if k not in keys and len({repr(c.get(k)) for _, c in configs}) > 1 and len(configs) > 1
    ]
    rows = [[key, *(_config_value(c.get(key)) for _, c in configs)] for key in keys + differing]
    blocks: list = [
        Table(["key", *(label for label, _ in configs)], rows, numeric_from=len(configs) + 1),
    ]
    for label, config in configs:
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
        blocks.append(Code(text, summary=f"Full config.yaml of {label}"))
    return blocks


def _config_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}" if value else "{}"
    return str(value)


# ----------------------------------------------------------------------------- the demo overview
def key_number_rows(demo: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the key-number table of a demo summary (:mod:`freqtail.report.key_numbers`, the table
    ``freqtail demo`` prints too)."""
    return key_number_table(demo.get("key_numbers") or [])[1]


KEY_NUMBER_HEADER = key_number_table([])[0]


def _key_number_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """The key-number table (:func:`freqtail.report.key_numbers.key_number_table`) of ``rows``."""
    return Table(
        KEY_NUMBER_HEADER,
        key_number_table(rows)[1],
        numeric_from=TEXT_COLUMNS,
        caption="Key numbers (accuracy in %, threat model and checkpoint stated on every row)",
    )


def _demo_blocks(demo: Mapping[str, Any]) -> list:
    blocks: list = []
    if demo.get("quick"):
        blocks.append(
            Note(
                "This is the **--quick** demo (tiny subsets, 1 epoch, for tests and CI): its numbers show "
                "that everything runs, not what the method achieves. Run `freqtail demo` for the full demo."
            )
        )
    blocks.append(_key_number_table(demo.get("key_numbers") or []))
    blocks += [Paragraph(note) for note in last_epoch_notes(demo.get("key_numbers") or [])]
    settings = demo.get("settings") or {}
    attack = settings.get("pgd") or {}
    corr = settings.get("corruptions") or {}
    items = [
        f"PGD-20: L-inf eps {attack.get('eps', '8/255')}, step {attack.get('step_size', '2/255')}, "
        f"{attack.get('steps', 20)} steps, cross-entropy, random start, on {settings.get('eval_n')} test "
        f"images (a seeded subset of {settings.get('test_images')}, stratified across classes).",
        f"Corruptions: {corr.get('description', MISSING)}, generated from the same evaluated images "
        "(freqtail's re-implementation of CIFAR-10-C).",
        _threat_models_line(THREAT_MODELS),
    ]
    if settings.get("description"):
        items.insert(0, str(settings["description"]))
    blocks.append(Bullets(items))
    return blocks


def _stage_blocks(demo: Mapping[str, Any]) -> list:
    """The demo's stages with their times (the table of its ``timings``), or nothing."""
    blocks: list = []
    timings = demo.get("timings") or {}
    stages = timings.get("stages") or []
    if stages:
        rows = [
            [
                str(s.get("name")),
                str(s.get("what", "")),
                _seconds(s.get("seconds")),
                "reused" if s.get("reused") else "",
            ]
            for s in stages
        ]
        load = timings.get("load_average")
        caption = f"Stages (total {_seconds(timings.get('total_seconds'))}"
        if isinstance(load, list) and len(load) == 2:
            caption += (
                f"; 1-minute load average {_num(load[0], 2)} at the start, {_num(load[1], 2)} at the end"
            )
        threads = timings.get("threads")
        if isinstance(threads, int) and not isinstance(threads, bool):
            caption += f"; {threads} torch thread{'s' if threads != 1 else ''}, which the numbers move with"
        blocks.append(Table(["stage", "what", "time", "note"], rows, numeric_from=2, caption=caption + ")"))
    return blocks


# ----------------------------------------------------------------------------- assembling
def _per_unit(
    units: Sequence[RunArtefacts], make: Callable[[RunArtefacts], list], titled: bool = False
) -> list:
    """The blocks ``make`` gives for each unit, under the unit's name when several units (or, with
    ``titled``, any) contribute."""
    bodies = [(unit, make(unit)) for unit in units]
    bodies = [(unit, body) for unit, body in bodies if body]
    blocks: list = []
    for unit, body in bodies:
        if titled or len(bodies) > 1:
            blocks.append(Heading(unit.label, 3))
        blocks += body
    return blocks


def _missing_items(unit: RunArtefacts) -> list[str]:
    if not _is_training_run(unit):
        return []
    where = unit.path.as_posix()
    checks = [
        (bool(unit.metrics), f"training metrics (metrics.jsonl): `freqtail train ... --out {where}`"),
        (
            unit.results is not None,
            f"evaluation (results.json): `freqtail evaluate {where} --suite clean,pgd20`",
        ),
        (
            any(r.get("metric") == "corruptions" for r in unit.records),
            f"corruptions: `freqtail evaluate {where} --suite corruptions --generate-c`",
        ),
        (
            any(str(r.get("metric", "")).endswith(("-lfc", "-hfc")) for r in unit.records),
            f"robust accuracy by band: `freqtail evaluate {where} --suite clean,pgd20,pgd20-lfc,pgd20-hfc`",
        ),
        (unit.sensitivity is not None, f"frequency sensitivity: `freqtail sensitivity {where}`"),
        (unit.landscape is not None, f"loss landscape: `freqtail landscape {where}`"),
        (unit.heatmap is not None, f"Fourier heat map: `freqtail heatmap {where}`"),
    ]
    return [text for present, text in checks if not present]


def _title(units: Sequence[RunArtefacts]) -> str:
    demo = next((u.demo for u in units if u.demo), None)
    if demo is not None:
        return "freqtail demo report" + (" (--quick)" if demo.get("quick") else "")
    if len(units) == 1:
        return f"freqtail report: {units[0].label}"
    return "freqtail report: " + ", ".join(u.label for u in units)


@dataclass
class _Context:
    """What every section builder reads: the reported folders, the output folder, the figure maker."""

    units: Sequence[RunArtefacts]
    out: Path
    figure: _Figures

    @functools.cached_property
    def comparison(self) -> dict[str, list]:
        """The side-by-side tables of the evaluated runs, by kind (made once for the three sections)."""
        return _comparison_parts(self.units)


def _with_figures(ctx: _Context, unit: RunArtefacts, figures: Sequence[tuple[str, str]]) -> list:
    """The unit's figures among ``(name, caption)`` that it has, in that order."""
    return [
        ctx.figure(unit.figures[name], caption, unit.label)
        for name, caption in figures
        if name in unit.figures
    ]


def _overview_blocks(ctx: _Context) -> list:
    """The demo's key numbers, else one row per training run and the threat models evaluated."""
    overview = [block for unit in ctx.units if unit.demo for block in _demo_blocks(unit.demo)]
    trained = [u for u in ctx.units if _is_training_run(u)]
    if overview or not trained:
        return overview
    rows = []
    for u in trained:
        config = u.config or {}
        last = u.metrics[-1] if u.metrics else {}
        rows.append(
            [
                u.label,
                str(config.get("model", MISSING)),
                str(config.get("objective", MISSING)),
                str(config.get("bass") or "none"),
                "yes" if u.results is not None else "no",
                _num(last.get("epoch")),
                percent(last.get("test_acc")),
            ]
        )
    header = ["run", "model", "objective", "BaSS", "evaluated", "epochs", "test acc (%)"]
    blocks: list = [Table(header, rows, numeric_from=5)]
    threats = {r.get("threat_model") for u in trained for r in u.records}
    if threats & set(THREAT_MODELS):
        blocks.append(Bullets([_threat_models_line([t for t in THREAT_MODELS if t in threats])]))
    return blocks


#: The threat models in a few words, for the summary (the tables' notes give them in full).
THREAT_MODEL_WORDS = {
    "standard": "raw images, model as trained",
    "domain": "the paper's protocol (BaSS-converted test set, attack in the BaSS domain)",
    "end-to-end": "raw images with BaSS inside the model, eps on raw pixels",
}


def _threat_models_line(names: Sequence[str]) -> str:
    """``"Threat models: `standard` = raw images, model as trained; ..."`` for ``names``."""
    return "Threat models: " + "; ".join(f"`{name}` = {THREAT_MODEL_WORDS[name]}" for name in names) + "."


def _summary_blocks(ctx: _Context, details: Sequence[Section], omitted: Sequence[str]) -> list:
    """The page's opening: the key numbers (or one row per run), then what the page shows and what it
    does not (:mod:`freqtail.report.summary`); ``details`` are the folded sections that follow."""
    key_numbers = [row for u in ctx.units if u.demo for row in (u.demo.get("key_numbers") or [])]
    quick = any(u.demo.get("quick") for u in ctx.units if u.demo)
    listed = [(s.title, s.anchor) for s in details]
    missing = bool(omitted) or any(_missing_items(u) or u.problems for u in ctx.units)
    blocks = _overview_blocks(ctx)
    if not key_numbers:
        key_numbers = summary.key_numbers_of_runs(ctx.units)
        if key_numbers:
            blocks.append(_key_number_table(key_numbers))
    shown = summary.shows(ctx.units, key_numbers, listed)
    not_shown = summary.does_not_show(ctx.units, key_numbers, quick, missing)
    if shown:
        blocks += [Heading("What this report shows", 3), Bullets(shown)]
    if not_shown:
        blocks += [Heading("What it does not show", 3), Bullets(not_shown)]
    return blocks


def _stages_section(ctx: _Context) -> list:
    return [block for unit in ctx.units if unit.demo for block in _stage_blocks(unit.demo)]


def _spectrum_section(ctx: _Context) -> list:
    caption = (
        "Band proportions pi_k (log-log) with power-law fits and the 80/20 boundary; "
        "spectral entropy per band."
    )
    return _per_unit(
        [u for u in ctx.units if u.spectrum],
        lambda u: _spectrum_blocks(u.spectrum) + _with_figures(ctx, u, [("spectrum", caption)]),
    )


def _bass_section(ctx: _Context) -> list:
    caption = "Images before and after BaSS, with their log-amplitude spectra on one colour scale."
    return _per_unit(
        [u for u in ctx.units if u.bass or "bass_examples" in u.figures],
        lambda u: (
            (_bass_blocks(u.bass) if u.bass else []) + _with_figures(ctx, u, [("bass_examples", caption)])
        ),
    )


def _training_section(ctx: _Context) -> list:
    with_metrics = [u for u in ctx.units if u.metrics]
    if not with_metrics:
        return []
    blocks: list = []
    try:
        curves = plot_training_curves([(u.label, u.metrics) for u in with_metrics], ctx.out / TRAINING_FIGURE)
        blocks.append(
            ctx.figure(curves, "Training loss and accuracies per epoch (from metrics.jsonl).", "report")
        )
    except InputError as err:
        blocks.append(Note(str(err)))
    return [*blocks, _training_table(with_metrics), Bullets(_training_notes(with_metrics))]


def _results_section(kind: str) -> Callable[[_Context], list]:
    """The builder of one kind of results table ("adversarial", "bands", "corruptions"): the runs side
    by side first (two or more evaluated runs), then each run's own table."""

    def build(ctx: _Context) -> list:
        side_by_side = ctx.comparison.get(kind)
        blocks: list = [Heading("Side by side", 3), *side_by_side] if side_by_side else []
        evaluated = [u for u in ctx.units if u.records]
        return blocks + _per_unit(evaluated, lambda u: _records_tables(u, kind), bool(blocks))

    return build


def _analysis_section(
    key: str, blocks_of: Callable[[Mapping[str, Any]], list], figures: Sequence[tuple[str, str]]
) -> Callable[[_Context], list]:
    """The builder of one analysis' section: per unit that has ``key``, its blocks and its figures."""

    def build(ctx: _Context) -> list:
        def make(u: RunArtefacts) -> list:
            return blocks_of(getattr(u, key)) + _with_figures(ctx, u, figures)

        blocks = _per_unit([u for u in ctx.units if getattr(u, key)], make)
        return (_sensitivity_comparison(ctx.units) + blocks) if key == "sensitivity" else blocks

    return build


def _configuration_section(ctx: _Context) -> list:
    return _config_blocks(ctx.units) if any(u.config is not None for u in ctx.units) else []


@dataclass(frozen=True)
class _SectionSpec:
    """One section of the page: its title and anchor, its builder, and what to say when it is empty
    (None: an empty section is left out without a word)."""

    title: str
    anchor: str
    build: Callable[[_Context], list]
    absent: str | None


#: The page's sections, in order.
SECTIONS: tuple[_SectionSpec, ...] = (
    _SectionSpec(
        "Frequency long tail",
        "spectrum",
        _spectrum_section,
        "No spectrum.json: measure a dataset with `freqtail spectrum --json` (the demo writes one).",
    ),
    _SectionSpec(
        "Balanced Spectrum Sampling (BaSS)",
        "bass",
        _bass_section,
        "No BaSS examples (bass.json): the demo writes them.",
    ),
    _SectionSpec(
        "Training", "training", _training_section, "No metrics.jsonl: train a model with `freqtail train`."
    ),
    _SectionSpec(
        "Evaluation: clean and adversarial accuracy",
        "evaluation",
        _results_section("adversarial"),
        "No evaluation results (results.json): run `freqtail evaluate RUN`.",
    ),
    _SectionSpec(
        "Robust accuracy by band",
        "bands",
        _results_section("bands"),
        "No robust accuracy by band: run `freqtail evaluate RUN --suite pgd20-lfc,pgd20-hfc` (PGD-20 "
        "restricted to the bands below / at or above the 80/20 boundary).",
    ),
    _SectionSpec(
        "Corruption robustness",
        "corruptions",
        _results_section("corruptions"),
        "No corruption results: run `freqtail evaluate RUN --suite corruptions --generate-c`.",
    ),
    _SectionSpec(
        "Frequency sensitivity",
        "sensitivity",
        _analysis_section(
            "sensitivity",
            _sensitivity_blocks,
            [
                (
                    "sensitivity",
                    "Sorted gradient spectrum and where the coefficient at each rank lies (Fig. 2).",
                ),
                ("long_tail", "Long tail of the analysed test images (the boundary used above)."),
            ],
        ),
        "No sensitivity analysis: run `freqtail sensitivity RUN`.",
    ),
    _SectionSpec(
        "Loss landscape on LFC / HFC",
        "landscape",
        _analysis_section(
            "landscape",
            _landscape_blocks,
            [
                (
                    "landscape",
                    "Loss around the trained weights on high- and low-frequency images (Fig. 1, 4).",
                ),
                ("landscape_3d", "The same losses as surfaces."),
            ],
        ),
        "No loss landscape: run `freqtail landscape RUN`.",
    ),
    _SectionSpec(
        "Fourier heat map",
        "heatmap",
        _analysis_section(
            "heatmap",
            _heatmap_blocks,
            [("heatmap", "Error rate under a single-frequency perturbation, DC at the centre.")],
        ),
        "No Fourier heat map: run `freqtail heatmap RUN`.",
    ),
    _SectionSpec("Configuration", "configuration", _configuration_section, "No config.yaml."),
    _SectionSpec("Demo stages and timings", "stages", _stages_section, None),
)
#: The opening section, open in HTML; every section after it is folded (``<details>``).
SUMMARY_TITLE, SUMMARY_ANCHOR = "Summary", "summary"


def _not_in_report(units: Sequence[RunArtefacts], omitted: list[str]) -> Section | None:
    """The closing section: the sections left out, and per folder what is missing and how to make it."""
    missing = [(f"`{u.label}`", items) for u in units if (items := _missing_items(u) + u.problems)]
    if not (omitted or missing):
        return None
    blocks: list = []
    if omitted:
        blocks += [
            Paragraph("Sections left out because no folder holds their material:"),
            Bullets(list(omitted)),
        ]
    if missing:
        blocks += [Paragraph("Per folder, what is not there yet and how to make it:"), Bullets(missing)]
    return Section("Not in this report", "not-in-this-report", blocks)


def build_page(units: Sequence[RunArtefacts], out: Path, title: str | None = None) -> tuple[Page, list[str]]:
    """The :class:`Page` for ``units`` (figures outside ``out`` are copied there for the Markdown) and
    the sentences naming what no unit has."""
    ctx = _Context(units, out, _Figures(out))
    page = Page(title or _title(units))
    names = ", ".join(f"`{u.label}` ({u.path.as_posix()})" for u in units)
    page.intro.append(Paragraph(f"Folders: {names}. Every figure and table below comes from those folders."))
    omitted: list[str] = []
    details: list[Section] = []
    for spec in SECTIONS:
        blocks = spec.build(ctx)
        if blocks:
            details.append(Section(spec.title, spec.anchor, blocks, collapsed=True))
        elif spec.absent is not None:
            omitted.append(spec.absent)
    closing = _not_in_report(units, omitted)
    if closing is not None:
        closing.collapsed = True
        details.append(closing)
    opening = _summary_blocks(ctx, details, omitted)
    if opening:
        page.sections.append(Section(SUMMARY_TITLE, SUMMARY_ANCHOR, opening))
    page.sections = explain_once(page.sections + details)
    return page, omitted


def build_report(
    paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, title: str | None = None
) -> ReportResult:
    """Write ``report.html`` (self-contained) and ``report.md`` for one or several run folders.

    Args:
        paths: run folders (or a folder of runs, such as a demo folder).
        out: output folder; default: the folder itself when one path is given. Several paths need it.
        title: the page title (default: from the folders).

    Raises:
        InputError: no path, a missing folder, a folder with nothing to report, several paths without
            ``out``, or an output path that is a file.
    """
    if not paths:
        raise InputError("Give at least one run folder to report on.")
    if out is None and len(paths) > 1:
        raise InputError("A report on several folders needs --out DIR (where report.html goes).")
    units = collect(list(paths))
    out_dir = check_utf8_path(out, "The output folder") if out is not None else Path(paths[0])
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"The output path {out_dir} is a file, not a folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    page, omitted = build_page(units, out_dir, title)
    footer = (
        f"Written by freqtail {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')}. "
        "Self-contained: the figures are embedded in this file."
    )
    html_path = atomic_write_text(out_dir / HTML_NAME, render_html(page, footer))
    md_footer = f"Written by freqtail {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S')}."
    md_path = atomic_write_text(out_dir / MARKDOWN_NAME, render_markdown(page, out_dir, md_footer))
    return ReportResult(
        html_path, md_path, [s.title for s in page.sections], omitted, [u.label for u in units]
    )
