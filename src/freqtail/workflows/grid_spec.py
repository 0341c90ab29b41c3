"""What an experiment grid trains and evaluates: one frozen :class:`GridSpec`, checked once when built.

A grid is a **base** configuration and a set of **cells**, each one training run (a
:class:`~freqtail.train.config.TrainConfig`) and its evaluation:

* ``base``: a preset name (``t1-cifar10-resnet18-pgd-at``, :func:`freqtail.train.presets.preset_configs`)
  or a config YAML path; None = the config defaults. ``overrides`` (``set:`` in YAML) apply to every
  cell.
* ``axes``: a product over any config keys (``seed`` included): ``{lr: [0.1, 0.05], seed: [0, 1]}``
  gives four cells, the first axis varying slowest.
* ``cells``: explicit cells, each a set of overrides, optionally with its own ``base`` (a preset
  or YAML path replacing the spec's) and its own ``name``. With ``axes`` too, they are extra cells
  after the product (they do not take axis values).
* ``suites``: the evaluation suites every cell's pipeline runs after training
  (:func:`freqtail.evaluate.parse_suites`); ``evaluation``: further
  :meth:`freqtail.evaluate.EvaluationRequest.of` options (``n``, ``batch_size``, ``generate_c``, ...).
* ``analyses``: what a cell runs after its evaluation (:mod:`freqtail.workflows.grid_analyses`): an
  eps sweep of a robust suite (``kind: eps-sweep``) or an explanation (``kind: sensitivity``,
  ``landscape``, ``heatmap``), each entry optionally limited to some cells (``cells:`` a shell pattern
  or a list of them); an unknown kind or key is one sentence naming it.

A cell's config is, in order: its base's values <- the spec's ``overrides`` <- its axis values <- its
own overrides, validated by the config's own rules; a bad key or value is one :class:`ConfigError`
sentence naming the key and the cell. A cell's **name** is readable and filesystem-safe (it is the
cell's run-folder name): an explicit ``name``, else the base's label (the preset or YAML file stem,
``base`` without one) followed by ``-key=value`` for each axis value and own override, e.g.
``t1-cifar10-resnet18-pgd-at-bass`` or ``base-seed=1-lr=0.05``.

The paper's grids come from the preset families (:meth:`GridSpec.family`): ``t1`` (Table 1, 24
cells), ``t3`` (Table 3, 4), ``t4`` (Table 4, 16) and ``fig3`` (Figure 3, 6), one cell per preset,
evaluated with the suites the paper reports (:data:`FAMILY_SUITES`) and followed by the analyses its
figure needs (:data:`FAMILY_ANALYSES`: Figure 3's PGD-20 at eps 1/255, 2/255, 4/255 and 8/255).

YAML form (:meth:`GridSpec.from_yaml`)::

    base: t1-cifar10-resnet18-pgd-at      # or path/to/config.yaml; omitted = the defaults
    set: {epochs: 2, data_root: ~/data}   # every cell
    axes: {lr: [0.1, 0.05], seed: [0, 1]}
    cells:                                # extra cells (or the only ones, without axes)
      - {objective: trades, beta: 6.0}
      - {base: t1-cifar10-resnet18-mart, name: mart}
    suites: [clean, pgd20]
    evaluation: {n: 1000}
    analyses:                             # after each cell's evaluation, in this order
      - {kind: eps-sweep, eps: [1/255, 2/255, 4/255, 8/255], suite: pgd20}
      - {kind: sensitivity, cells: '*-bass', n: 500}
      - {kind: landscape, cells: [mart, 'base-*'], n: 256, grid: 11, span: 1.0}
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from freqtail.errors import ConfigError
from freqtail.evaluate import EvaluationRequest
from freqtail.evaluate.suite_names import parse_suites
from freqtail.runs.layout import GRID_MANIFEST
from freqtail.train.config import (
    TrainConfig,
    config_from_dict,
    parse_override,
    plain_value,
    read_config_file,
    yaml_load,
)
from freqtail.train.presets import preset_configs
from freqtail.workflows.grid_analyses import CellExplanation, EpsSweep, GridAnalysis, parse_analyses

#: The preset families and the suites their table or figure reports: Tables 1 and 3 clean accuracy,
#: PGD-20 and AutoAttack; Table 4 clean accuracy and the corruption error; Figure 3 clean accuracy, the
#: corruption accuracy (CIFAR10-C; CIFAR10-B-C for the BaSS-dataset model) and PGD-20.
FAMILY_SUITES: dict[str, tuple[str, ...]] = {
    "t1": ("clean", "pgd20", "aa"),
    "t3": ("clean", "pgd20", "aa"),
    "t4": ("clean", "corruptions"),
    "fig3": ("clean", "pgd20", "corruptions"),
}
#: The L-inf budgets of Figure 3 (c): PGD-20 at each.
FIG3_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
#: Evaluation options of a family (under the caller's): Figure 3's BaSS-dataset cell is measured on
#: CIFAR10-B-C (BaSS, then the corruption), which has no published copy, so the -C sets a cell does not
#: find under its data root are generated from its test images (resumable, in its ``eval-cache/``).
FAMILY_EVALUATION: dict[str, dict[str, Any]] = {"fig3": {"generate_c": True}}
#: The analyses each family's cells run after their evaluation (none for the tables).
FAMILY_ANALYSES: dict[str, tuple[GridAnalysis, ...]] = {
    "t1": (),
    "t3": (),
    "t4": (),
    "fig3": (EpsSweep(FIG3_EPS, "pgd20"),),
}
#: Suites of a grid that names none (and is no family).
DEFAULT_SUITES = ("clean",)
#: The keys of a spec mapping, and the keys of a cell entry that are not config keys.
SPEC_KEYS = ("base", "set", "axes", "cells", "suites", "evaluation", "analyses", "family")
CELL_KEYS = ("base", "name")
#: Longest cell name (a folder name); longer ones are cut and end with a part of the config hash.
MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=,+-]*")  # fullmatch: "$" would let "a\n" through

Pairs = tuple[tuple[str, Any], ...]


def _pairs(values: Mapping[str, Any] | Sequence[Any] | None, what: str) -> Pairs:
    """A mapping, ``(key, value)`` pairs or ``"key=value"`` strings -> typed ``(key, value)`` pairs."""
    if values is None:
        return ()
    if isinstance(values, Mapping):
        items = list(values.items())
    elif isinstance(values, (list, tuple)):
        items = []
        for item in values:
            if isinstance(item, str):
                items.append(parse_override(item))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                items.append((item[0], item[1]))
            else:
                raise ConfigError(f"{what} must be key=value texts or (key, value) pairs, not {item!r}.")
    else:
        raise ConfigError(f"{what} must be a mapping of config keys to values, not {values!r}.")
    out = []
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{what} has a key that is not a config key name: {key!r}.")
        out.append((key.replace("-", "_"), plain_value(value)))
    return tuple(out)


def _format_value(value: Any) -> str:
    """A value as it appears in a cell name (before unsafe characters become ``_``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{_format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value)
    return str(value)


def _name_part(key: str, value: Any) -> str:
    return _UNSAFE.sub("_", f"{key}={_format_value(value)}")


def config_hash(config: TrainConfig) -> str:
    """sha256 (hex) of the config's :meth:`~TrainConfig.comparable` JSON with sorted keys: what the run
    computes, runtime keys (device, num_workers, ...) left out."""
    text = json.dumps(config.comparable(), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------- bases
def _base_name(base: Any, where: str) -> str:
    """A ``base:`` as its text (a preset name or a config YAML path)."""
    if not isinstance(base, (str, os.PathLike)):
        raise ConfigError(f"The base of {where} must be a preset name or a config YAML path, not {base!r}.")
    return os.fspath(base)


def _base_values(base: str | None, where: str) -> tuple[dict[str, Any], str]:
    """The config values of a base and its label (the preset or file stem; ``base`` for None)."""
    if base is None:
        return {}, "base"
    presets = preset_configs()
    if base in presets:
        return dict(presets[base][1]), base
    path = Path(base).expanduser()
    if path.is_file():
        return read_config_file(path), _UNSAFE.sub("_", path.stem)
    example = next(iter(presets))
    raise ConfigError(
        f"The base {base!r} of {where} is neither a preset name (one of the {len(presets)} presets such "
        f"as {example}) nor a config YAML file."
    )


@dataclass(frozen=True)
class CellSpec:
    """One explicit cell of a spec.

    Attributes:
        overrides: ``(key, value)`` pairs applied after the spec's overrides (typed values).
        base: a preset name or YAML path replacing the spec's base for this cell; None = the spec's.
        name: the cell's name (filesystem-safe); None = derived from the base and the overrides.
    """

    overrides: Pairs = ()
    base: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", _pairs(self.overrides, "A grid cell's overrides"))
        if self.base is not None:
            object.__setattr__(self, "base", _base_name(self.base, "a grid cell"))
        if self.name is not None:
            _check_name(self.name)

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.base is not None:
            out["base"] = self.base
        if self.name is not None:
            out["name"] = self.name
        return {**out, **dict(self.overrides)}

    @classmethod
    def from_mapping(cls, entry: Any, where: str) -> CellSpec:
        if not isinstance(entry, Mapping):
            raise ConfigError(f"Each entry of {where}'s cells must be a mapping of overrides, not {entry!r}.")
        overrides = {k: v for k, v in entry.items() if k not in CELL_KEYS}
        return cls(_pairs(overrides, f"A cell of {where}"), entry.get("base"), entry.get("name"))


@dataclass(frozen=True)
class GridCell:
    """One cell of a grid: a training run and its evaluation.

    Attributes:
        name: readable, filesystem-safe, unique in its grid: the cell's run-folder name.
        config: the validated :class:`~freqtail.train.config.TrainConfig`.
        base: the preset name or YAML path the config starts from (None = the defaults).
        overrides: every ``(key, value)`` applied on top of ``base``, in order (the spec's, the axis
            values, the cell's own); typed values, never texts split by position.
        axis_values: the ``(key, value)`` of each axis for a product cell, else ``()``.
        config_hash: :func:`config_hash` of ``config`` (sha256 hex).
    """

    name: str
    config: TrainConfig
    base: str | None
    overrides: Pairs
    axis_values: Pairs
    config_hash: str


def _check_name(name: Any) -> str:
    """An explicit cell name: a folder name that cannot be mistaken for the grid's own files."""
    if not (isinstance(name, str) and _SAFE_NAME.fullmatch(name) and len(name) <= MAX_NAME):
        raise ConfigError(
            f"The grid cell name {name!r} must start with a letter or digit and hold only letters, "
            f"digits and . _ = , + - (at most {MAX_NAME} characters)."
        )
    if name == GRID_MANIFEST:
        raise ConfigError(f"A grid cell may not be named {name}, the grid manifest's file name.")
    return name


def _build_cell(
    base: str | None, overrides: Pairs, named: Pairs, axis_values: Pairs, name: str | None, where: str
) -> GridCell:
    """Resolve one cell: ``named`` are the overrides that appear in its derived name."""
    values, label = _base_values(base, where)
    if name is None:
        name = "-".join([label, *(_name_part(k, v) for k, v in named)])
        if not _SAFE_NAME.fullmatch(name) or name == GRID_MANIFEST:  # a YAML file called .x.yaml, ...
            name = f"cell-{name}"
    applied = overrides + named
    cell_where = f"the grid cell {name}"
    try:
        config = config_from_dict({**values, **dict(applied)}, where=cell_where)
    except ConfigError as err:
        if cell_where in str(err):
            raise
        raise ConfigError(f"In {cell_where}: {err}") from None
    digest = config_hash(config)
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 11]}-{digest[:10]}"
    return GridCell(name, config, base, applied, axis_values, digest)


@dataclass(frozen=True)
class GridSpec:
    """An experiment grid (see the module docstring); every field is checked when it is built.

    Attributes:
        base: a preset name or config YAML path; None = the config defaults.
        overrides: ``(key, value)`` pairs for every cell (a mapping or ``"key=value"`` texts are taken).
        axes: ``(key, values)`` pairs; their product gives one cell per combination.
        explicit: the explicit cells, :class:`CellSpec` entries (mappings are taken), after the product
            (``cells:`` in the mapping form).
        suites: the evaluation suites each cell's pipeline runs (a tuple of suite names once built);
            None = the family's (:data:`FAMILY_SUITES`), else :data:`DEFAULT_SUITES`.
        evaluation: further :meth:`~freqtail.evaluate.EvaluationRequest.of` options as
            ``(key, value)`` pairs (``suites`` and ``resume`` belong to the grid).
        analyses: what each cell runs after its evaluation, in order
            (:class:`~freqtail.workflows.grid_analyses.EpsSweep` /
            :class:`~freqtail.workflows.grid_analyses.CellExplanation` entries; mappings are taken);
            None = the family's (:data:`FAMILY_ANALYSES`), else none.
        family_name: the preset family the grid was built from (:meth:`family`), else None
            (``family:`` in the mapping form).

    Raises:
        ConfigError: one sentence naming the key and the cell (unknown key, bad value), a
            duplicate cell name or configuration, an analysis whose ``cells`` match no cell, or two
            explanations of one kind for one cell (they would write the same files).
    """

    base: str | None = None
    overrides: Pairs = ()
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    explicit: tuple[CellSpec, ...] = ()
    suites: tuple[str, ...] | str | None = None
    evaluation: Pairs = ()
    analyses: tuple[GridAnalysis, ...] | None = None
    family_name: str | None = None
    _cells: tuple[GridCell, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base is not None:
            object.__setattr__(self, "base", _base_name(self.base, "the grid"))
        object.__setattr__(self, "overrides", _pairs(self.overrides, "The grid's overrides"))
        object.__setattr__(self, "axes", self._checked_axes(self.axes))
        explicit = tuple(
            c if isinstance(c, CellSpec) else CellSpec.from_mapping(c, "the grid") for c in self.explicit
        )
        object.__setattr__(self, "explicit", explicit)
        if self.family_name is not None and self.family_name not in FAMILY_SUITES:
            raise ConfigError(_unknown_family(self.family_name))
        suites = self.suites
        if suites is None:
            suites = FAMILY_SUITES.get(self.family_name or "", DEFAULT_SUITES)
        object.__setattr__(self, "suites", tuple(parse_suites(suites)))
        object.__setattr__(self, "evaluation", _pairs(self.evaluation, "The grid's evaluation options"))
        self.evaluation_request()  # checks the options once
        analyses = self.analyses
        if analyses is None:
            analyses = FAMILY_ANALYSES.get(self.family_name or "", ())
        object.__setattr__(self, "analyses", parse_analyses(analyses, "the grid"))
        object.__setattr__(self, "_cells", self._resolve_cells())
        self._check_analyses()

    def _check_analyses(self) -> None:
        names = [cell.name for cell in self._cells]
        for index, entry in enumerate(self.analyses, 1):
            if not any(entry.applies_to(name) for name in names):
                raise ConfigError(
                    f"The cells {', '.join(entry.cells or ())} of analysis {index} ({entry.kind}) of the "
                    f"grid match no grid cell; the cells are {_shown(names)}."
                )
        for name in names:
            kinds = [e.kind for e in self.analyses if isinstance(e, CellExplanation) and e.applies_to(name)]
            twice = next((kind for kind in kinds if kinds.count(kind) > 1), None)
            if twice is not None:
                raise ConfigError(
                    f"Two {twice} analyses of the grid apply to its cell {name}; they would write the same "
                    f"{twice}.json, so limit their cells: to tell them apart."
                )

    @staticmethod
    def _checked_axes(axes: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        items = axes.items() if isinstance(axes, Mapping) else axes
        out = []
        for entry in items:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
                raise ConfigError(f"A grid axis must be a config key and a list of values, not {entry!r}.")
            key, values = entry
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"The grid axis {key} must be a non-empty list of values, not {values!r}.")
            plain = tuple(plain_value(v) for v in values)
            if len({json.dumps(v, sort_keys=True) for v in plain}) != len(plain):
                raise ConfigError(f"The grid axis {key} lists a value twice: {list(plain)!r}.")
            out.append((str(key).replace("-", "_"), plain))
        if len({key for key, _ in out}) != len(out):
            raise ConfigError("The grid names one axis twice; give each config key one list of values.")
        return tuple(out)

    def _resolve_cells(self) -> tuple[GridCell, ...]:
        resolved = []
        if self.axes or not self.explicit:
            keys = [key for key, _ in self.axes]
            for combination in itertools.product(*(values for _, values in self.axes)):
                named = tuple(zip(keys, combination, strict=True))
                resolved.append(_build_cell(self.base, self.overrides, named, named, None, "the grid"))
        for entry in self.explicit:
            resolved.append(
                _build_cell(
                    entry.base or self.base, self.overrides, entry.overrides, (), entry.name, "the grid"
                )
            )
        by_name: dict[str, GridCell] = {}
        by_hash: dict[str, GridCell] = {}
        for cell in resolved:
            if cell.name in by_name:
                raise ConfigError(
                    f"Two grid cells are both named {cell.name}; give one of them its own name (name: ...)."
                )
            if cell.config_hash in by_hash:
                raise ConfigError(
                    f"The grid cells {by_hash[cell.config_hash].name} and {cell.name} train the same "
                    "configuration; remove one of them."
                )
            by_name[cell.name] = by_hash[cell.config_hash] = cell
        return tuple(resolved)

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "the grid spec") -> GridSpec:
        """A spec from its mapping (the YAML form of the module docstring; :meth:`to_mapping` inverts it).

        Raises:
            ConfigError: an unknown top-level key (the sentence lists the valid ones), or see the class.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{where.capitalize()} must be a mapping with keys {', '.join(SPEC_KEYS)}.")
        unknown = [str(k) for k in mapping if k not in SPEC_KEYS]
        if unknown:
            raise ConfigError(
                f"Unknown key {unknown[0]!r} in {where}; valid keys are: {', '.join(SPEC_KEYS)}."
            )
        cells = mapping.get("cells") or ()
        if not isinstance(cells, (list, tuple)):
            raise ConfigError(f"The cells of {where} must be a list of mappings, not {cells!r}.")
        suites = mapping.get("suites")
        analyses = mapping.get("analyses")
        if analyses is not None and not isinstance(analyses, (list, tuple)):
            raise ConfigError(
                f"The analyses of {where} must be a list of entries, each a mapping with a kind."
            )
        return cls(
            base=mapping.get("base"),
            overrides=_pairs(mapping.get("set"), f"The set: of {where}"),
            axes=mapping.get("axes") or (),
            explicit=tuple(CellSpec.from_mapping(entry, where) for entry in cells),
            suites=tuple(suites) if isinstance(suites, list) else suites,
            evaluation=_pairs(mapping.get("evaluation"), f"The evaluation options of {where}"),
            analyses=None if analyses is None else parse_analyses(analyses, where),
            family_name=mapping.get("family"),
        )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> GridSpec:
        """A spec from a YAML file; a relative YAML ``base`` is read relative to the file's folder.

        Raises:
            ConfigError: the file is missing or not valid YAML, or see :meth:`from_mapping`.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"The grid spec file {p} does not exist.")
        try:
            data = yaml_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"The grid spec file {p} is not valid YAML ({first}).") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"The grid spec file {p} must hold a mapping with keys {', '.join(SPEC_KEYS)}.")
        data = dict(data)
        presets = preset_configs()

        def local(base: Any) -> Any:
            if isinstance(base, str) and base not in presets and not Path(base).expanduser().is_absolute():
                beside = p.parent / base
                return str(beside) if beside.is_file() else base
            return base

        data["base"] = local(data.get("base"))
        if isinstance(data.get("cells"), list):
            data["cells"] = [
                {**entry, "base": local(entry["base"])}
                if isinstance(entry, Mapping) and "base" in entry
                else entry
                for entry in data["cells"]
            ]
        return cls.from_mapping(data, where=f"the grid spec file {p}")

    @classmethod
    def family(
        cls,
        name: str,
        *,
        overrides: Mapping[str, Any] | Sequence[Any] = (),
        suites: tuple[str, ...] | str | None = None,
        evaluation: Mapping[str, Any] | Sequence[Any] = (),
        seeds: str | Sequence[int] | None = None,
        analyses: Sequence[Any] | None = None,
    ) -> GridSpec:
        """The paper's grid ``name`` (``t1``, ``t3``, ``t4``, ``fig3``): one explicit cell per preset of
        that family, named by the preset, with the family's suites (:data:`FAMILY_SUITES`) and analyses
        (:data:`FAMILY_ANALYSES`) unless ``suites`` / ``analyses`` are given, and its evaluation options
        (:data:`FAMILY_EVALUATION`) under ``evaluation``; ``overrides`` apply to every cell
        (``data_root``, a smoke scale). ``seeds`` (``"0,1,2"`` or ints; :func:`parse_seeds`): each preset
        once per seed, named ``<preset>-seed=<seed>``, the seed varying fastest; None = each preset once
        with its own seed.

        Raises:
            ConfigError: an unknown family (the sentence lists the valid ones), or a bad seed list.
        """
        if name not in FAMILY_SUITES:
            raise ConfigError(_unknown_family(name))
        stems = [stem for stem in preset_configs() if stem.startswith(f"{name}-")]
        if seeds is None:
            cells = tuple(CellSpec(base=stem) for stem in stems)
        else:
            chosen = parse_seeds(seeds)
            cells = tuple(CellSpec(base=stem, overrides={"seed": seed}) for stem in stems for seed in chosen)
        return cls(
            overrides=_pairs(overrides, "The grid's overrides"),
            explicit=cells,
            suites=suites,
            evaluation=tuple(
                {
                    **FAMILY_EVALUATION.get(name, {}),
                    **dict(_pairs(evaluation, "The grid's evaluation options")),
                }.items()
            ),
            analyses=None if analyses is None else tuple(analyses),
            family_name=name,
        )

    # ----------------------------------------------------------------------------------- queries
    def to_mapping(self) -> dict[str, Any]:
        """The spec as a JSON/YAML-ready mapping (:meth:`from_mapping` reads it back)."""
        return {
            "base": self.base,
            "set": dict(self.overrides),
            "axes": {key: list(values) for key, values in self.axes},
            "cells": [cell.to_mapping() for cell in self.explicit],
            "suites": list(self.suites),
            "evaluation": dict(self.evaluation),
            "analyses": [entry.to_mapping() for entry in self.analyses],
            "family": self.family_name,
        }

    def cells(self, only: str | None = None) -> tuple[GridCell, ...]:
        """The cells, in order (the product first, then the explicit ones), whose names match the shell
        pattern ``only`` (:func:`fnmatch.fnmatchcase`; None = all).

        Raises:
            ConfigError: ``only`` matches no cell (the sentence names a few cells).
        """
        if only is None:
            return self._cells
        chosen = tuple(cell for cell in self._cells if fnmatch.fnmatchcase(cell.name, only))
        if not chosen:
            names = [cell.name for cell in self._cells]
            raise ConfigError(f"No grid cell matches {only!r}; the cells are {_shown(names)}.")
        return chosen

    def cell(self, name: str) -> GridCell:
        """The cell called ``name``."""
        for cell in self._cells:
            if cell.name == name:
                return cell
        raise ConfigError(f"The grid has no cell {name!r}.")

    def analyses_for(self, name: str) -> tuple[GridAnalysis, ...]:
        """The analyses the cell called ``name`` runs after its evaluation, in order."""
        return tuple(entry for entry in self.analyses if entry.applies_to(name))

    def evaluation_request(self) -> EvaluationRequest:
        """The :class:`~freqtail.evaluate.EvaluationRequest` of every cell: the grid's suites, its
        evaluation options and ``resume=True`` (numbers already stored are skipped)."""
        options = dict(self.evaluation)
        for reserved in ("suites", "resume"):
            if reserved in options:
                raise ConfigError(
                    f"The grid's evaluation options may not set {reserved}; it is the grid's own "
                    f"({'suites:' if reserved == 'suites' else 'always true'})."
                )
        return EvaluationRequest.of(suites=self.suites, resume=True, **options)

    def digest(self) -> str:
        """sha256 (hex) of what the grid computes: each cell's name and config hash, the suites, the
        evaluation options and the analyses (so a spec written another way that computes the same is
        the same grid; a grid without analyses keeps the digest it had before grids had them)."""
        identity: dict[str, Any] = {
            "cells": [[cell.name, cell.config_hash] for cell in self._cells],
            "suites": list(self.suites),
            "evaluation": dict(self.evaluation),
        }
        if self.analyses:
            identity["analyses"] = [entry.to_mapping() for entry in self.analyses]
        text = json.dumps(identity, sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _shown(names: Sequence[str]) -> str:
    """A few cell names for a sentence: ``a, b, c, d, e and 3 more``."""
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def parse_seeds(seeds: str | Sequence[int]) -> tuple[int, ...]:
    """The seeds of ``--seeds``: ``"0,1,2"`` (or a sequence of ints) as distinct ints in the order
    given; each is checked as the config's ``seed`` when its cells are built.

    Raises:
        ConfigError: an empty list, a part that is not an integer, or a seed given twice.
    """
    parts = [part.strip() for part in seeds.split(",")] if isinstance(seeds, str) else list(seeds)
    if not parts or parts == [""]:
        raise ConfigError("--seeds wants a comma-separated list of seeds such as 0,1,2, not an empty one.")
    chosen: list[int] = []
    for part in parts:
        text = str(part)
        if isinstance(part, bool) or not (isinstance(part, int) or re.fullmatch(r"[0-9]+", text)):
            raise ConfigError(f"--seeds wants whole numbers 0 or more such as 0,1,2, not {text!r}.")
        seed = int(part)
        if seed in chosen:
            raise ConfigError(f"--seeds names the seed {seed} twice; give each seed once.")
        chosen.append(seed)
    return tuple(chosen)


def _unknown_family(name: str) -> str:
    return f"Unknown grid family {name!r}; the families are {', '.join(FAMILY_SUITES)}."


__all__ = [
    "DEFAULT_SUITES",
    "FAMILY_ANALYSES",
    "FAMILY_EVALUATION",
    "FAMILY_SUITES",
    "FIG3_EPS",
    "CellSpec",
    "GridCell",
    "GridSpec",
    "config_hash",
    "parse_seeds",
]
