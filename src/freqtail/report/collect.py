"""Gather what a run folder holds, for the report: every artefact is optional, nothing here raises on
a missing or damaged file (it is listed in ``problems`` instead).

Recognised files (all relative to the folder; written by the commands named):

=========================  ==========================================================================
``config.yaml``            the training config (``freqtail train``)
``metrics.jsonl``          one record per epoch (``freqtail train``)
``results.json``           evaluation records (``freqtail evaluate``); a demo folder of an older
                           freqtail may hold its summary here (format ``freqtail-demo``), still read
``demo-summary.json``      a demo's key numbers and settings (``freqtail demo``, format
                           ``freqtail-demo-summary``, :mod:`freqtail.report.key_numbers`)
``spectrum.json``          a :class:`freqtail.spectrum.SpectrumSummary` dict (``freqtail spectrum --json``
                           or the demo); figure ``figures/spectrum.png``
``bass.json``              BaSS conversion facts (the demo); figure ``figures/bass_examples.png``
``sensitivity.json``       ``freqtail sensitivity``; figures ``figures/sensitivity.png``,
                           ``figures/long_tail.png``
``landscape.json``         ``freqtail landscape``; figures ``figures/landscape.png``,
                           ``figures/landscape_3d.png``
``heatmap.json``           ``freqtail heatmap``; figure ``figures/heatmap.png``
=========================  ==========================================================================

A folder is a *run* when it holds any of these; a folder holding none but with sub-folders that do
(``runs/``, or a demo folder) is a *collection* of those runs, in the order its demo summary lists
them, else by name.

A folder may come from someone else, and the report is made to be shared: a file above, the
``figures/`` folder or a sub-run that leads out of its folder (a symbolic link, checked with
:func:`freqtail.runs.containment.inside`) is refused with one sentence before anything is read, so
nothing from elsewhere is embedded in ``report.html`` or copied beside ``report.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from freqtail.checks import check_utf8_path
from freqtail.errors import InputError
from freqtail.evaluate.results import load_results
from freqtail.report.key_numbers import DEMO_SUMMARY_FORMAT, LEGACY_DEMO_FORMAT
from freqtail.runs.containment import inside
from freqtail.runs.existence import check_folder
from freqtail.runs.layout import ANALYSES, DATA_FACTS, FIGURES_DIR, RunLayout
from freqtail.runs.layout import FIGURES as FIGURE_FILES
from freqtail.train.config import yaml_load  # the one reader of config YAML (numbers like 5e-4)
from freqtail.train.staleness import StaleCheckpoint, stale_checkpoints

__all__ = ["DEMO_FORMAT", "FIGURES", "RunArtefacts", "collect", "collect_run", "is_run_folder"]

DEMO_FORMAT = DEMO_SUMMARY_FORMAT
RESULTS_FORMAT = "freqtail-results"
JSON_FILES = (*DATA_FACTS, *ANALYSES)
#: Figure key -> file under the folder.
FIGURES = {key: f"{FIGURES_DIR}/{name}" for key, name in FIGURE_FILES.items()}


@dataclass
class RunArtefacts:
    """What one folder holds. Missing parts are None / empty; unreadable ones are named in ``problems``.

    Attributes:
        path: the folder.
        label: its name in tables (the folder name unless given).
        config: ``config.yaml`` as a dict.
        metrics: the ``metrics.jsonl`` records, in order.
        results: an evaluation ``results.json`` (format ``freqtail-results``).
        demo: a demo's summary (``demo-summary.json``, format ``freqtail-demo-summary``; or the
            ``results.json`` of an older demo, format ``freqtail-demo``).
        spectrum, bass, sensitivity, landscape, heatmap: the JSON files of the same names.
        figures: figure key (:data:`FIGURES`) -> existing file.
        problems: one sentence per file that exists but could not be read.
    """

    path: Path
    label: str
    config: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] | None = None
    demo: dict[str, Any] | None = None
    spectrum: dict[str, Any] | None = None
    bass: dict[str, Any] | None = None
    sensitivity: dict[str, Any] | None = None
    landscape: dict[str, Any] | None = None
    heatmap: dict[str, Any] | None = None
    figures: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The evaluation records (empty without results)."""
        return list((self.results or {}).get("results", []))

    @property
    def has_checkpoints(self) -> bool:
        return RunLayout.of(self.path).checkpoints.is_dir()

    @cached_property
    def stale(self) -> list[StaleCheckpoint]:
        """Its records measured on a checkpoint its pointers no longer name
        (:mod:`freqtail.train.staleness`)."""
        return stale_checkpoints(self.path, self.records)


def is_run_folder(path: Path) -> bool:
    """True when ``path`` holds any file the report recognises."""
    return path.is_dir() and any(marker.exists() for marker in RunLayout.of(path).markers())


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{path.name} could not be read ({type(err).__name__}); it is left out.")
        return None


def _read_metrics(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"{path.name} could not be read ({type(err).__name__}); it is left out.")
        return []
    records, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            records.append(record)
        else:
            bad += 1
    if bad:
        problems.append(f"{path.name} has {bad} unreadable line(s); they are left out.")
    return records


def _read_config(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problems.append(f"{path.name} could not be read ({type(err).__name__}); it is left out.")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name} does not hold a mapping of keys; it is left out.")
        return None
    return data


def _check_contained(folder: Path) -> None:
    """Refuse a folder whose files the report reads lead out of it (see the module docstring)."""
    layout = RunLayout.of(folder)
    folder = layout.folder
    names = [layout.config, layout.metrics, layout.results, layout.demo_summary, layout.figures]
    names += [layout.json(name) for name in JSON_FILES]
    names += [folder / relative for relative in FIGURES.values()]
    for file in names:
        inside(folder, file.relative_to(folder), "The report's input", error=InputError)


def collect_run(path: str | os.PathLike, label: str | None = None) -> RunArtefacts:
    """Read everything the report can show from one folder (see the module docstring).

    Raises:
        InputError: a file, ``figures/`` or a figure leads out of the folder (a symbolic link).
    """
    folder = Path(path)
    layout = RunLayout.of(folder)
    _check_contained(folder)
    run = RunArtefacts(folder, label or folder.resolve().name)
    if layout.config.is_file():
        run.config = _read_config(layout.config, run.problems)
    if layout.metrics.is_file():
        run.metrics = _read_metrics(layout.metrics, run.problems)
    if layout.results.is_file():
        data = _read_json(layout.results, run.problems)
        kind = data.get("format") if isinstance(data, dict) else None
        if kind == RESULTS_FORMAT:
            try:
                run.results = load_results(layout.results)  # every record's shape checked there
            except InputError as err:
                run.problems.append(f"{err} It is left out.")
        elif kind == LEGACY_DEMO_FORMAT:
            run.demo = data
        elif data is not None:
            run.problems.append(f"{layout.results.name} is not a freqtail results file; it is left out.")
    if layout.demo_summary.is_file():
        data = _read_json(layout.demo_summary, run.problems)
        if isinstance(data, dict) and data.get("format") == DEMO_SUMMARY_FORMAT:
            run.demo = data
        elif data is not None:
            run.problems.append(f"{layout.demo_summary.name} is not a freqtail demo summary; it is left out.")
    for name in JSON_FILES:
        file = layout.json(name)
        if file.is_file():
            data = _read_json(file, run.problems)
            if isinstance(data, dict):
                setattr(run, name, data)
            elif data is not None:
                run.problems.append(f"{file.name} does not hold a JSON object; it is left out.")
    for key, relative in FIGURES.items():
        if (folder / relative).is_file():
            run.figures[key] = folder / relative
    return run


def _sub_runs(folder: Path, order: list[str]) -> list[Path]:
    found = sorted(p for p in folder.iterdir() if p.is_dir() and is_run_folder(p))
    for run in found:
        inside(folder, run.name, "The run folder", error=InputError)
    ranked = {name: i for i, name in enumerate(order)}
    return sorted(found, key=lambda p: (ranked.get(p.name, len(ranked)), p.name))


def collect(paths: list[str | os.PathLike]) -> list[RunArtefacts]:
    """The folders to report on, in order: each path's own artefacts (if any) then its sub-runs.

    Raises:
        InputError: a path that is not a folder, or a folder with nothing to report.
    """
    units: list[RunArtefacts] = []
    for raw in paths:
        folder = check_utf8_path(raw, "The folder")  # its name labels the run on UTF-8 pages
        check_folder(folder)
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder; give a run folder written by freqtail.")
        own = collect_run(folder) if is_run_folder(folder) else None
        listed = [r for r in ((own.demo or {}).get("runs") or []) if isinstance(r, dict)] if own else []
        labels = {str(r.get("name")): str(r.get("label") or r.get("name")) for r in listed}
        children = [] if own is not None and own.config is not None else _sub_runs(folder, list(labels))
        if own is None and not children:
            raise InputError(
                f"The folder {folder} holds nothing to report (no config.yaml, metrics.jsonl, results.json "
                "or analysis files, and no run folders inside)."
            )
        if own is not None:
            units.append(own)
        for child in children:
            check_utf8_path(child, "The run folder")
            default = child.name if len(paths) == 1 else f"{folder.resolve().name}/{child.name}"
            units.append(collect_run(child, labels.get(child.name, default)))
    return units
