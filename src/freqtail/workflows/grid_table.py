"""A grid folder's table against the paper: :func:`grid_table` reads it, :func:`write_grid_table` writes it.

:func:`grid_table` reads the grid's manifest (every cell's state and comparable config,
:func:`~freqtail.workflows.grid_manifest.read_states`) and each done cell's ``results.json``
(:func:`freqtail.evaluate.load_records`), and lays them out with
:func:`freqtail.report.paper_table.build_paper_table`. :func:`write_grid_table` writes the three
renderings atomically to ``GRID/table.md``, ``table.csv`` and ``table.tex``
(:class:`~freqtail.runs.layout.GridLayout`); :func:`~freqtail.workflows.grid_run.run_grid` rewrites
them after every finished or failed cell.

**Which published row a cell is** (:func:`published_key`, the one rule), from the cell's config:

* ``objective`` pgd-at / trades / mart -> PGD-AT / TRADES / MART; BaSS = ``bass: dataset`` (the
  paper's "new dataset" protocol), no BaSS = ``bass: null``; Table 3 for ``restricted-imagenet`` with
  ``resnet50`` at eps 4/255, Table 1 for CIFAR-10 / CIFAR-100 at eps 8/255;
* ``objective`` augmix / augmix-bass -> Table 4's AugMix; BaSS = the AugMix BaSS branch
  (``augmix-bass``, or ``augmix`` with ``bass_branch``), with ``bass: null``;
* datasets cifar10, cifar100, restricted-imagenet -> CIFAR-10, CIFAR-100, Restricted-ImageNet; models
  resnet18, wrn-34-10, resnet50, wrn-40-2, densenet-bc, resnext29-32x4d -> ResNet-18, WRN-34-10,
  ResNet-50, WRN-40-2, DenseNet, ResNeXt-29 (:data:`DATASET_NAMES`, :data:`MODEL_NAMES`);
* a BaSS row also needs ``bass_strength: 1`` (the published weights); BaSS as augmentation
  (``bass: augment``, Figure 3) and every other combination match no row.

**Which point of Figure 3 a cell is** (:func:`figure_point`), for a cell without a published row:
``objective: erm`` with ``resnet18`` on ``cifar10`` at ``bass_strength: 1``: ``bass: augment`` at
``gamma`` g is the point "gamma = g", ``bass: dataset`` the point "BaSS dataset", ``bass: null``
"no BaSS". Those cells form the Figure 3 section (clean, corruption mean, PGD-20 at each eps of the
figure); the paper plots them without printing numbers, so the section has no published columns.

So ``t1-cifar10-resnet18-pgd-at-bass`` is Table 1, PGD-AT + BaSS, ResNet-18, CIFAR-10. A cell of a
preset family grid (``freqtail reproduce t1`` ...) is matched by the config of its preset at paper
scale, so a ``--scale smoke`` cell (trained on the embedded set) stands beside the row it stands in
for. Other keys (epochs, lr, the scale) are not compared: a cell is shown beside its row whatever its
recipe. A
cell that matches no row still gets its measured values, intervals and seed summary, without
published columns.

**Threat model**: a cell trained on the BaSS dataset (``bass: dataset``) is shown under ``domain``
(the paper tests on the BaSS-converted test set), every other cell under ``standard``.

**Seeds**: cells whose comparable configs are equal but for ``seed`` form one group (their seed
summary); its label is the first cell's name without its ``-seed=N`` part.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from freqtail.errors import InputError
from freqtail.evaluate import load_records
from freqtail.evaluate.records import Record
from freqtail.evaluate.results import eps_label
from freqtail.io import atomic_write_text
from freqtail.paper import published_row
from freqtail.report.paper_table import (
    DONE,
    FAILED,
    FigurePoint,
    MeasuredCell,
    PaperTable,
    PublishedKey,
    build_paper_table,
)
from freqtail.runs.layout import GridLayout, RunLayout
from freqtail.workflows.grid_manifest import CellRecord, read_family, read_states
from freqtail.workflows.grid_spec import GridSpec

#: Config dataset -> the paper's name.
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "restricted-imagenet": "Restricted-ImageNet"}
#: Config model -> the paper's name.
MODEL_NAMES = {
    "resnet18": "ResNet-18",
    "wrn-34-10": "WRN-34-10",
    "resnet50": "ResNet-50",
    "wrn-40-2": "WRN-40-2",
    "densenet-bc": "DenseNet",
    "resnext29-32x4d": "ResNeXt-29",
}
#: Adversarial objective -> the paper's method name.
ADVERSARIAL_METHODS = {"pgd-at": "PGD-AT", "trades": "TRADES", "mart": "MART"}
#: The training budget (eps on the [0, 1] scale) of Tables 1 and 3.
TABLE_EPS = {"table1": 8 / 255, "table3": 4 / 255}
#: The sentence under every grid table on how cells were matched.
MATCHING_NOTE = (
    "Cells are matched to the paper's rows by dataset, model, objective, BaSS mode and (adversarial "
    "rows) training eps only (a preset family's cells by their preset, at any scale); other keys "
    "(epochs, lr, the scale) may differ from the paper's recipe."
)
_SEED_PART = re.compile(r"-seed=\d+")


def _same_eps(value: Any, target: float) -> bool:
    return isinstance(value, (int, float)) and math.isclose(float(value), target, rel_tol=0, abs_tol=1e-9)


def published_key(config: Mapping[str, Any]) -> PublishedKey | None:
    """The published row of a cell's comparable config (the rule of the module docstring), or None."""
    dataset = DATASET_NAMES.get(config.get("dataset"))
    model = MODEL_NAMES.get(config.get("model"))
    objective = config.get("objective")
    bass_mode = config.get("bass")
    if dataset is None or model is None:
        return None
    if objective in ADVERSARIAL_METHODS:
        if bass_mode not in (None, "dataset"):
            return None
        table = "table3" if dataset == "Restricted-ImageNet" else "table1"
        if not _same_eps(config.get("eps"), TABLE_EPS[table]):
            return None
        key = PublishedKey(table, ADVERSARIAL_METHODS[objective], model, dataset, bass_mode == "dataset")
    elif objective in ("augmix", "augmix-bass"):
        if bass_mode is not None:
            return None
        branch = objective == "augmix-bass" or bool(config.get("bass_branch"))
        key = PublishedKey("table4", "AugMix", model, dataset, branch)
    else:
        return None
    if key.bass and not _same_eps(config.get("bass_strength", 1.0), 1.0):
        return None
    try:
        published_row(key.table, method=key.method, model=key.model, dataset=key.dataset, bass=key.bass)
    except InputError:
        return None
    return key


def figure_point(config: Mapping[str, Any]) -> FigurePoint | None:
    """The point of Figure 3 a cell's comparable config stands for (the module docstring's rule), or
    None."""
    if (config.get("dataset"), config.get("model"), config.get("objective")) != (
        "cifar10",
        "resnet18",
        "erm",
    ):
        return None
    if not _same_eps(config.get("bass_strength", 1.0), 1.0):
        return None
    bass_mode, gamma = config.get("bass"), config.get("gamma")
    if bass_mode == "augment" and isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        return FigurePoint("figure3", f"gamma = {float(gamma):g}", float(gamma))
    if bass_mode == "dataset":
        return FigurePoint("figure3", "BaSS dataset", 2.0)
    if bass_mode is None:
        return FigurePoint("figure3", "no BaSS", -1.0)
    return None


def paper_threat_model(config: Mapping[str, Any]) -> str:
    """``domain`` for a cell trained on the BaSS dataset (``bass: dataset``), else ``standard``."""
    return "domain" if config.get("bass") == "dataset" else "standard"


def _group(row: CellRecord) -> str:
    without_seed = {k: v for k, v in row.config.items() if k != "seed"}
    return json.dumps(without_seed, sort_keys=True, default=str)


def _budget(config: Mapping[str, Any]) -> str | None:
    eps = config.get("eps")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
        return None
    return f"eps={eps_label(float(eps))}"


def _cell(row: CellRecord, group: str | None, preset: Mapping[str, Any] | None) -> MeasuredCell:
    """One manifest row as a :class:`MeasuredCell` (a done cell's records loaded); ``preset`` is the
    paper-scale config the cell stands in for (a family grid at any scale), matched instead of its own."""
    config = row.config
    state, why = row.state.value, row.why
    by_threat: dict[str, list[Record]] = {}
    if state == DONE:
        results = RunLayout.of(row.run_dir).results
        if results.is_file():
            try:
                records = load_records(results)
            except InputError as err:
                state, why = FAILED, f"Its results cannot be read: {err}"
            else:
                for record in records:
                    by_threat.setdefault(record.id.threat_model, []).append(record)
    seed = config.get("seed")
    matched = preset if preset is not None else config
    key = published_key(matched)
    return MeasuredCell(
        name=row.name,
        key=key,
        state=state,
        why=why,
        threat_model=paper_threat_model(config),
        records={tm: tuple(records) for tm, records in by_threat.items()},
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        group=group,
        budget=_budget(config),
        figure=figure_point(matched) if key is None else None,
    )


def grid_table(folder: str | os.PathLike) -> PaperTable:
    """The :class:`~freqtail.report.paper_table.PaperTable` of the grid in ``folder``: every cell in
    its manifest state, done cells with the numbers of their ``results.json``.

    A done cell whose ``results.json`` cannot be read is shown as failed with that sentence; one
    without ``results.json`` shows "not evaluated".

    Raises:
        InputError: no grid manifest in ``folder``, or a damaged one (one sentence).
    """
    rows = read_states(folder)
    family = read_family(folder)
    presets = (
        {cell.name: cell.config.comparable() for cell in GridSpec.family(family).cells()} if family else {}
    )
    members: dict[str, list[str]] = {}
    for row in rows:
        members.setdefault(_group(row), []).append(row.name)
    labels: dict[str, str] = {}
    for key, names in members.items():
        if len(names) > 1:
            label = _SEED_PART.sub("", names[0])
            labels[key] = label if label not in labels.values() else names[0]
    # a family cell is named by its preset, with --seeds followed by -seed=N
    cells = [
        _cell(row, labels.get(_group(row)), presets.get(row.name, presets.get(_SEED_PART.sub("", row.name))))
        for row in rows
    ]
    return build_paper_table(cells, notes=(MATCHING_NOTE,))


def write_grid_table(folder: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Write the grid's table as ``table.md``, ``table.csv`` and ``table.tex`` in ``folder``, each
    atomically, and return their paths.

    Raises:
        InputError: see :func:`grid_table`; OutputError: a file cannot be written.
    """
    layout = GridLayout.of(folder)
    table = grid_table(layout.folder)
    return (
        atomic_write_text(layout.table_md, table.to_markdown()),
        atomic_write_text(layout.table_csv, table.to_csv()),
        atomic_write_text(layout.table_tex, table.to_latex()),
    )


__all__ = [
    "DATASET_NAMES",
    "MATCHING_NOTE",
    "MODEL_NAMES",
    "figure_point",
    "grid_table",
    "paper_threat_model",
    "published_key",
    "write_grid_table",
]
