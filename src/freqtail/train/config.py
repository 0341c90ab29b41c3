"""Training configuration: one flat set of keys, YAML files, command-line overrides, validation.

A configuration is a :class:`TrainConfig` (a frozen dataclass). It is built from, in order:

1. the defaults below (a small CPU run: ``small-cnn`` with ``erm`` on the embedded dataset);
2. a YAML file (``configs/*.yaml``): a mapping of keys to values;
3. overrides ``key=value`` (``--set lr=0.05``), whose value is read as YAML (``--set bass=null``,
   ``--set milestones=[100,105]``, ``--set eps=8/255``).

Files and overrides are read by :func:`yaml_load`, PyYAML's safe loader with two corrections:
numbers in exponent form without a dot (``1e-3``, ``5e-4``, ``1e9``, ``-1e-4``) are floats, as in
YAML 1.2 and Python (YAML 1.1 reads them as strings), and ``key:value`` without a space inside a
flow mapping (``{width:16}``) is the pair ``key: value`` (YAML reads it as one key with no value).
Integer keys accept whole floats (``epochs: 1e9`` is 1000000000).

Every key must exist: an unknown key raises :class:`ConfigError` naming the close matches, never
a silent default. Budgets (``eps``, ``step_size``) are written on the [0, 1] image scale, as numbers
or fractions ("8/255"); they are kept as written so that the saved ``config.yaml`` stays readable.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from freqtail.attacks.eps import parse_eps
from freqtail.checks import check_int, check_number, check_seed
from freqtail.data.catalog import canonical_name, dataset_info
from freqtail.errors import ConfigError, InputError

# freqtail.models and freqtail.train.pipeline import torch; they are imported where a config is
# validated, after every check that needs neither, so that the command line's option help (key_help),
# --list-keys and the refusal of a bad value start without torch.

#: Training objectives; "augmix-bass" is "augmix" with ``bass_branch`` on (paper §4.4).
OBJECTIVES = ("erm", "pgd-at", "trades", "mart", "augmix", "augmix-bass")
ADVERSARIAL_OBJECTIVES = ("pgd-at", "trades", "mart")
SCHEDULES = ("piecewise", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")
ATTACK_BN_MODES = ("eval", "train")
BEST_METRICS = ("auto", "test_acc", "test_robust_acc")
#: Which images choose the "best" checkpoint: the test images (the authors' protocol) or held-out
#: training images (``val_subset`` of them).
SELECTIONS = ("test", "val")
#: Augmentation presets (freqtail.data.augment.PRESETS; repeated so this module does not import torch).
AUGMENTATIONS = ("crop-flip", "resized-crop-flip", "flip-jitter-lighting", "none")
PAD_MODES = ("zeros", "reflect")
#: Data pipelines (freqtail.train.pipeline): auto, on the training device, or the DataLoader.
DATA_PIPELINES = ("auto", "device", "loader")
#: Where a run's per-epoch numbers go besides metrics.jsonl: nowhere else, or TensorBoard event files
#: (freqtail.train.tensorboard_log; the optional extra freqtail[tensorboard]).
LOG_MODES = ("none", "tensorboard")
#: TRADES / MART beta when the config leaves ``beta`` null (Zhang et al. 2019; Wang et al. 2020).
DEFAULT_BETA = {"trades": 6.0, "mart": 5.0}
#: Keys that may differ when a run is resumed: they change how a run executes, not what it computes
#: (``channels_last`` and ``compile`` up to float rounding: a run resumed with other values continues
#: within the tolerances of :mod:`freqtail.models.execution`, bit for bit only with the same values;
#: ``log`` only adds event files of the numbers metrics.jsonl holds).
RUNTIME_KEYS = ("num_workers", "progress", "device", "channels_last", "compile", "log")


def _key(help_text: str, default: Any, kind: str, choices: tuple | None = None) -> Any:
    metadata = {"help": help_text, "kind": kind, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (docs/guides/training.md, "Configuration", lists the keys)."""

    # --- data
    dataset: str = _key("dataset name (freqtail.data.dataset_names())", "embedded", "str")
    data_root: str | None = _key("folder holding the dataset (null: embedded / default)", None, "str?")
    bass: str | None = _key(
        "BaSS on the data: null, 'dataset' (train and test converted) or 'augment' (train, prob. gamma)",
        None,
        "choice?",
        ("dataset", "augment"),
    )
    gamma: float = _key("BaSS probability for bass='augment', in [0, 1]", 1.0, "float")
    bass_strength: float = _key("BaSS weight exponent in [0, 1] (1 = published)", 1.0, "float")
    augment: bool = _key("the augmentation preset's random part on the train split", True, "bool")
    augmentation: str | None = _key(
        "augmentation preset: crop-flip, resized-crop-flip, flip-jitter-lighting or none "
        "(null: the dataset's default; Restricted-ImageNet: flip-jitter-lighting at 128x128)",
        None,
        "choice?",
        AUGMENTATIONS,
    )
    pad_mode: str = _key(
        "padding of crop-flip's random crop: zeros (torchvision padding_mode 'constant', fill 0) "
        "or reflect (padding_mode 'reflect', edge not repeated)",
        "zeros",
        "choice",
        PAD_MODES,
    )
    data_pipeline: str = _key(
        "auto, device (uint8 images on the training device, batched crop, flip and BaSS mixture) or "
        "loader (per-item DataLoader); auto = device for in-memory datasets with the crop-flip or none "
        "preset and erm/pgd-at/trades/mart, loader otherwise (the two draw different random crops)",
        "auto",
        "choice",
        DATA_PIPELINES,
    )
    train_subset: int | None = _key("train on a fixed random subset of this many images", None, "int?")
    test_subset: int | None = _key("evaluate on a fixed random subset of this many test images", None, "int?")
    # --- model
    model: str = _key("architecture (freqtail.models.model_names())", "small-cnn", "str")
    model_options: dict = _key("architecture options, e.g. {width: 16}", {}, "dict")
    normalize: Any = _key(
        "input normalisation inside the model: 'dataset', a preset (cifar10, ...), {mean, std} or null",
        "dataset",
        "normalize",
    )
    pretrained: bool = _key(
        "timm:NAME / torchvision:NAME: start from the library's pretrained weights (downloaded through "
        "its cache when training starts; checkpoints hold the weights, never this request)",
        False,
        "bool",
    )
    # --- objective
    objective: str = _key("erm, pgd-at, trades, mart, augmix or augmix-bass", "erm", "choice", OBJECTIVES)
    eps: Any = _key("L-inf budget of the training attack, [0, 1] scale ('8/255')", "8/255", "eps")
    step_size: Any = _key("step of the training attack, [0, 1] scale ('2/255')", "2/255", "eps")
    attack_steps: int = _key("steps of the training attack", 10, "int0")
    random_start: bool = _key(
        "random start of the training attack (uniform for pgd-at, 0.001*N(0,1) for trades/mart)", True, "bool"
    )
    attack_bn: str = _key(
        "model mode while crafting training examples: 'eval' (TRADES/MART code) or 'train'",
        "eval",
        "choice",
        ATTACK_BN_MODES,
    )
    beta: float | None = _key("TRADES / MART beta (null: 6 for trades, 5 for mart)", None, "float?")
    augmix_width: int = _key("AugMix chains per mixed image", 3, "int")
    augmix_depth: int = _key("operations per AugMix chain (0: random 1-3)", 0, "int0")
    augmix_severity: int = _key("AugMix operation severity, 1-10", 3, "int")
    augmix_alpha: float = _key("AugMix Dirichlet / Beta parameter", 1.0, "float")
    jsd_lambda: float = _key("weight of AugMix's Jensen-Shannon consistency loss", 12.0, "float")
    bass_branch: bool = _key("augmix: BaSS before AugMix on the first augmented branch (§4.4)", False, "bool")
    # --- optimisation
    epochs: int = _key("training epochs (ignored when steps is set)", 10, "int")
    steps: int | None = _key("total optimiser steps instead of epochs", None, "int?")
    batch_size: int = _key("GLOBAL batch size (per-rank batch = batch_size / world size)", 128, "int")
    lr: float = _key("peak learning rate", 0.1, "float")
    momentum: float = _key("SGD momentum", 0.9, "float")
    nesterov: bool = _key("Nesterov momentum", False, "bool")
    weight_decay: float = _key("SGD weight decay", 5e-4, "float")
    schedule: str = _key(
        "learning-rate schedule: piecewise, cosine or constant", "cosine", "choice", SCHEDULES
    )
    milestones: list = _key("piecewise: epochs at which the rate is multiplied by lr_decay", [], "int_list")
    lr_decay: float = _key("piecewise: factor applied at each milestone", 0.1, "float")
    lr_min: float = _key("cosine: final learning rate", 0.0, "float")
    warmup_epochs: float = _key("linear warm-up from 0 over this many epochs", 0.0, "float")
    drop_last: bool = _key("drop the last incomplete training batch of each epoch", True, "bool")
    # --- evaluation during training
    eval_every: int = _key("evaluate every this many epochs (the last epoch always)", 1, "int")
    eval_batch_size: int = _key("batch size (per rank) for evaluation", 256, "int")
    robust_eval_examples: int = _key(
        "adversarial objectives: PGD robust accuracy on this many fixed test images (0: off)", 512, "int0"
    )
    robust_eval_steps: int = _key("steps of that PGD (eps and step_size as in training)", 10, "int")
    best_metric: str = _key(
        "metric that picks 'best': auto = test_robust_acc if measured, else test_acc "
        "(with selection: val, its val_ counterpart on the held-out images)",
        "auto",
        "choice",
        BEST_METRICS,
    )
    selection: str = _key(
        "images that choose 'best': test (the authors' protocol) or val (val_subset held-out train images)",
        "test",
        "choice",
        SELECTIONS,
    )
    val_subset: int | None = _key(
        "selection: val: this many train images (seeded, class-stratified) held out from training",
        None,
        "int?",
    )
    # --- execution
    seed: int = _key("seed of every random choice (data order, augmentation, attacks, init)", 0, "seed")
    device: str = _key("'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'", "auto", "str")
    amp: str = _key(
        "mixed precision on CUDA: none, bf16 or fp16 (with GradScaler)", "none", "choice", AMP_MODES
    )
    sync_bn: bool = _key("SyncBatchNorm across ranks (CUDA, torchrun only)", False, "bool")
    channels_last: bool = _key(
        "channels-last (NHWC) memory format for the model and its inputs: faster convolutions on GPUs "
        "with tensor cores and, with oneDNN, on many CPUs; same numbers up to float rounding",
        False,
        "bool",
    )
    compile: bool = _key(
        "torch.compile the model for training, the training attack and evaluation (the first steps "
        "compile; CPUs need a C++ compiler); same numbers up to float rounding",
        False,
        "bool",
    )
    num_workers: int = _key("DataLoader worker processes per rank", 0, "int0")
    progress: bool = _key("show a progress bar", True, "bool")
    log: str = _key(
        "per-epoch numbers also as TensorBoard event files in RUN/tensorboard/: none or tensorboard "
        "(pip install 'freqtail[tensorboard]'); not part of what a run computes",
        "none",
        "choice",
        LOG_MODES,
    )

    # ------------------------------------------------------------------ helpers
    @property
    def objective_name(self) -> str:
        """The objective with ``augmix-bass`` resolved to ``augmix``."""
        return "augmix" if self.objective == "augmix-bass" else self.objective

    @property
    def uses_bass_branch(self) -> bool:
        return self.objective == "augmix-bass" or (self.objective == "augmix" and self.bass_branch)

    @property
    def adversarial(self) -> bool:
        return self.objective in ADVERSARIAL_OBJECTIVES

    # The budgets keep their written form ("8/255") for config.yaml; their value is parsed once per
    # config (cached_property writes to the instance dict, which a frozen dataclass allows).
    @functools.cached_property
    def eps_value(self) -> float:
        """``eps`` on the [0, 1] scale."""
        return _parse_budget(self.eps, "eps")

    @functools.cached_property
    def step_size_value(self) -> float:
        """``step_size`` on the [0, 1] scale."""
        return _parse_budget(self.step_size, "step_size")

    @property
    def beta_value(self) -> float:
        if self.beta is not None:
            return float(self.beta)
        return DEFAULT_BETA.get(self.objective_name, 6.0)

    def to_dict(self) -> dict[str, Any]:
        """All keys, JSON/YAML-ready, in declaration order."""
        return {f.name: plain_value(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied (unknown keys are refused)."""
        return config_from_dict({**self.to_dict(), **changes})

    def comparable(self) -> dict[str, Any]:
        """The keys that define what a run computes (runtime keys left out), budgets as floats."""
        out = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_KEYS}
        out["eps"], out["step_size"] = self.eps_value, self.step_size_value
        return out


def plain_value(value: Any) -> Any:
    """A config value in its JSON / YAML form: tuples as lists, mapping keys as strings (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def config_keys() -> list[str]:
    """Every valid key, in declaration order."""
    return [f.name for f in fields(TrainConfig)]


def key_help() -> dict[str, tuple[Any, str]]:
    """``{key: (default, help)}`` for documentation and ``--help``."""
    out = {}
    for f in fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = (default, f.metadata["help"])
    return out


def _unknown_key_error(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, config_keys(), n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "run 'freqtail train --list-keys'."
    )
    return ConfigError(f"Unknown config key {key!r} in {where}; {hint}")


def _parse_budget(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"Config key {what!r} must be a number or a fraction such as 8/255, not {value!r}.")
    try:
        return parse_eps(value, what)
    except InputError as err:
        raise ConfigError(str(err)) from None


def _check_value(name: str, value: Any, kind: str, choices: tuple | None) -> Any:
    """Validate one key's type; returns the value in canonical form."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"Config key {name!r} must be {expected}, not {value!r}.")

    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None:
        if optional or base == "normalize":
            return None
        raise fail("set (null is not allowed)")
    subject = f"Config key {name!r}"
    if base in ("int", "int0"):
        # The type first, so 1.5 is told it is not an integer; 1e9 and 100.0 are whole numbers.
        value = check_int(value, subject, whole_floats=True, error=ConfigError)
        return check_int(value, subject, minimum=0 if base == "int0" else 1, error=ConfigError)
    if base == "seed":
        return check_seed(
            check_int(value, subject, whole_floats=True, error=ConfigError), subject, error=ConfigError
        )
    if base == "float":
        return check_number(value, subject, error=ConfigError)
    if base == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if base == "str":
        if not isinstance(value, str) or not value:
            raise fail("a non-empty string")
        return value
    if base == "choice":
        if isinstance(value, str):
            lowered = value.strip().lower().replace("_", "-")
            for choice in choices:
                if lowered == choice.replace("_", "-"):
                    return choice
            if lowered == "none" and optional:
                return None
        valid = ", ".join(choices) + (" or null" if optional else "")
        raise ConfigError(f"Config key {name!r} must be one of {valid}, not {value!r}.")
    if base == "int_list":
        if isinstance(value, (list, tuple)):
            value = [
                int(v) if isinstance(v, float) and math.isfinite(v) and v.is_integer() else v for v in value
            ]
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value
        ):
            raise fail("a list of non-negative integers such as [100, 105]")
        return sorted(int(v) for v in value)
    if base == "dict":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise fail("a mapping such as {width: 16}")
        return {k: plain_value(v) for k, v in value.items()}
    if base == "eps":
        _parse_budget(value, name)
        return value
    if base == "normalize":
        if isinstance(value, str) or (isinstance(value, Mapping) and set(value) == {"mean", "std"}):
            return plain_value(value)
        raise fail("'dataset', a preset name such as cifar10, a mapping {mean: [...], std: [...]}, or null")
    raise AssertionError(f"unknown kind {kind}")  # pragma: no cover


def _check_ranges(c: TrainConfig) -> None:
    def unit(name: str) -> None:
        if not 0.0 <= getattr(c, name) <= 1.0:
            raise ConfigError(f"Config key {name!r} must lie in [0, 1], not {getattr(c, name)!r}.")

    unit("gamma")
    unit("bass_strength")
    unit("momentum")
    if c.lr <= 0:
        raise ConfigError(f"Config key 'lr' must be positive, not {c.lr!r}.")
    for name in ("weight_decay", "lr_min", "warmup_epochs", "jsd_lambda"):
        if getattr(c, name) < 0:
            raise ConfigError(f"Config key {name!r} must be >= 0, not {getattr(c, name)!r}.")
    if c.lr_decay <= 0:
        raise ConfigError(f"Config key 'lr_decay' must be positive, not {c.lr_decay!r}.")
    if c.augmix_alpha <= 0:
        raise ConfigError(f"Config key 'augmix_alpha' must be positive, not {c.augmix_alpha!r}.")
    if not 1 <= c.augmix_severity <= 10:
        raise ConfigError(
            f"Config key 'augmix_severity' must be an integer in 1..10, not {c.augmix_severity!r}."
        )
    if c.beta is not None and c.beta < 0:
        raise ConfigError(f"Config key 'beta' must be >= 0, not {c.beta!r}.")
    if c.nesterov and c.momentum == 0:
        raise ConfigError("Nesterov momentum needs momentum > 0; set momentum or nesterov: false.")
    if c.adversarial and c.attack_steps == 0:
        raise ConfigError(
            f"The {c.objective} objective needs attack_steps >= 1: with 0 it would train on the attack's "
            "random start only while labelled adversarial training."
        )
    if c.step_size_value == 0 and c.adversarial and c.attack_steps > 0:
        raise ConfigError("The training attack's step_size is 0; give a positive step such as 2/255.")
    if c.bass_branch and c.objective_name != "augmix":
        raise ConfigError(f"bass_branch applies to the augmix objective only, not to {c.objective!r}.")
    if c.uses_bass_branch and c.bass is not None:
        raise ConfigError(
            f"The AugMix BaSS branch takes BaSS from the converted training images; use it with bass: null, "
            f"not bass: {c.bass}."
        )
    if c.selection == "val" and c.val_subset is None:
        raise ConfigError("selection: val needs val_subset: N, the number of training images to hold out.")
    if c.selection == "test" and c.val_subset is not None:
        raise ConfigError(
            "val_subset holds out images for selection: val; set selection: val or val_subset: null."
        )
    if c.bass is None and c.gamma != 1.0:
        raise ConfigError(
            "gamma is the probability of bass='augment'; set bass: augment or leave gamma at 1."
        )
    if c.sync_bn and not (c.device.startswith("cuda") or c.device == "auto"):
        raise ConfigError("sync_bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU).")
    if c.dataset:
        canonical_name(c.dataset)  # raises ConfigError listing the valid names
        _check_pad_mode(c)
        from freqtail.train.pipeline import resolve_data_pipeline

        resolve_data_pipeline(c)  # refuses data_pipeline: device where it does not apply
    _check_pretrained(c)


def _check_pretrained(c: TrainConfig) -> None:
    """The model and its options exist; ``pretrained`` only as its own key, only for library models."""
    from freqtail.models import check_model_arguments

    if "pretrained" in c.model_options:
        raise ConfigError(
            "Ask for pretrained weights with the config key pretrained (--set pretrained=true), not in "
            "model_options, so that checkpoints never ask for a download; remove it from model_options."
        )
    entry = check_model_arguments(c.model, 2, 32, 3, c.model_options)
    if c.pretrained and "pretrained" not in entry.options:
        raise ConfigError(
            f"pretrained: true needs a timm:NAME or torchvision:NAME model; {entry.name} is freqtail's own "
            "architecture and has no pretrained weights."
        )


def _check_pad_mode(c: TrainConfig) -> None:
    """Refuse a pad_mode that the chosen augmentation preset would ignore (it has no padded crop)."""
    if c.pad_mode == "zeros":
        return
    preset = c.augmentation or dataset_info(c.dataset).preset
    if preset != "crop-flip":
        raise ConfigError(
            f"pad_mode {c.pad_mode} applies to the crop-flip preset, but {c.dataset} uses {preset} "
            "(no padded crop); leave pad_mode: zeros or set augmentation: crop-flip."
        )


#: Input channels of every model freqtail trains: its datasets decode to RGB.
TRAIN_IN_CHANNELS = 3


def _check_normalize(c: TrainConfig) -> None:
    """Refuse normalisation statistics the model cannot use (a preset name that does not exist, a
    non-positive std, the wrong number of values) when the config is read, not at the first batch."""
    if c.normalize in (None, "dataset"):
        return
    from freqtail.models.wrappers import check_normalize  # torch: only for an explicit normalisation

    try:
        check_normalize(c.normalize, TRAIN_IN_CHANNELS)
    except ConfigError as err:
        raise ConfigError(f"Config key 'normalize': {err}") from None


def config_from_dict(values: Mapping[str, Any], where: str = "the configuration") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a mapping (missing keys take their defaults).

    Raises:
        ConfigError: an unknown key (with close matches), a wrong type or an invalid value.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{where.capitalize()} must be a mapping of keys to values, not {type(values).__name__}."
        )
    known = {f.name: f for f in fields(TrainConfig)}
    checked = {}
    for key, value in values.items():
        if key not in known:
            raise _unknown_key_error(str(key), where)
        meta = known[key].metadata
        checked[key] = _check_value(key, value, meta["kind"], meta["choices"])
    config = TrainConfig(**checked)
    if config.objective == "augmix-bass" and "bass_branch" not in values:
        config = dataclasses.replace(config, bass_branch=True)
    _check_ranges(config)
    _check_normalize(config)
    return config


# YAML 1.1's float pattern (PyYAML's) requires a dot; this one, YAML 1.2's, also takes 1e-3 and 1e9.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_FLOAT_TAG = "tag:yaml.org,2002:float"
# ``name:value`` glued in a flow mapping; the value may not start with "/" (``{http://x}`` stays a key).
_GLUED_PAIR = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*):([^/\s].*)$")
_LOADER = None


def _config_loader() -> type:
    """PyYAML's SafeLoader with YAML 1.2 floats and ``{key:value}`` pairs (built once, lazily)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER

    class ConfigLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode) and node.flow_style:
                node.value = [self._split_glued(key, value) for key, value in node.value]
            return super().construct_mapping(node, deep=deep)

        def _split_glued(self, key, value):
            glued = (
                isinstance(key, ScalarNode)
                and key.style is None
                and key.tag == "tag:yaml.org,2002:str"
                and isinstance(value, ScalarNode)
                and value.tag == "tag:yaml.org,2002:null"
                and value.value == ""
            )
            match = _GLUED_PAIR.match(key.value) if glued else None
            if match is None:
                return key, value
            name, text = match.groups()
            tag = self.resolve(ScalarNode, text, (True, False))
            return (
                ScalarNode("tag:yaml.org,2002:str", name, key.start_mark, key.end_mark),
                ScalarNode(tag, text, key.start_mark, key.end_mark),
            )

    resolvers = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        resolvers[first] = [(tag, _FLOAT if tag == _FLOAT_TAG else regexp) for tag, regexp in entries]
    for first in "-+0123456789.":
        entries = resolvers.setdefault(first, [])
        if not any(tag == _FLOAT_TAG for tag, _ in entries):
            entries.insert(0, (_FLOAT_TAG, _FLOAT))
    ConfigLoader.yaml_implicit_resolvers = resolvers
    _LOADER = ConfigLoader
    return _LOADER


def yaml_load(text: str) -> Any:
    """Read YAML ``text`` as a config value: safe loading, YAML 1.2 numbers, ``{key:value}`` pairs.

    ``1e-3``, ``5e-4``, ``1e9``, ``1.5E+2`` and ``-1e-4`` are floats; ``8/255`` stays the string a
    budget is written as; ``{width:16}`` and ``{width: 16}`` are both ``{"width": 16}``.

    Raises:
        yaml.YAMLError: ``text`` is not valid YAML, or nests deeper than :data:`MAX_YAML_DEPTH`
            levels (which would otherwise exhaust Python's recursion limit here or later).
    """
    try:
        data = yaml.load(text, Loader=_config_loader())  # a SafeLoader subclass: no code runs
    except RecursionError:
        raise _TooDeepError(f"it nests lists or mappings deeper than {MAX_YAML_DEPTH} levels") from None
    if _nesting_depth(data) > MAX_YAML_DEPTH:
        raise _TooDeepError(f"it nests lists or mappings deeper than {MAX_YAML_DEPTH} levels")
    return data


#: The deepest nesting of lists and mappings a config value may have; real configs use 2 or 3.
MAX_YAML_DEPTH = 32


class _TooDeepError(yaml.YAMLError):
    """YAML nested beyond :data:`MAX_YAML_DEPTH` (read by callers as any other invalid YAML)."""


def _nesting_depth(data: Any) -> int:
    """How many lists/mappings deep ``data`` goes, counted without recursion and at most
    ``MAX_YAML_DEPTH + 1`` (YAML aliases can make a value contain itself)."""
    deepest_seen: dict[int, int] = {}
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (list, dict)) or deepest_seen.get(id(value), 0) >= depth:
            continue
        deepest_seen[id(value)] = depth
        deepest = max(deepest, depth)
        if depth > MAX_YAML_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``; the value is read as YAML ("0.05", "1e-3", "null", "[1, 2]",
    "8/255", "{width:16}") by :func:`yaml_load`."""
    if "=" not in text:
        raise ConfigError(f"An override must look like key=value (e.g. lr=0.05), not {text!r}.")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping stored in a YAML config file (not yet validated), read by :func:`yaml_load`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"The config file {p} does not exist.")
    try:
        data = yaml_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"The config file {p} is not valid YAML ({first}).") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"The config file {p} must hold a mapping of keys to values.")
    return dict(data)


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> TrainConfig:
    """Defaults <- YAML file ``path`` <- ``overrides`` (``["lr=0.05", ...]`` or a mapping), validated.

    Example:
        >>> config = load_config("configs/t1-cifar10-resnet18-pgd-at.yaml", ["epochs=2"])
    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(read_config_file(path))
        for key in values:
            if key not in config_keys():
                raise _unknown_key_error(str(key), f"the config file {path}")
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for key, value in items:
        if key not in config_keys():
            raise _unknown_key_error(key, "the command-line overrides")
        values[key] = value
    return config_from_dict(values, where=f"the config file {path}" if path else "the configuration")


def mapping_to_yaml(values: Mapping[str, Any]) -> str:
    """One ``key: value`` line per key, lists and mappings in flow style (``[100, 105]``, ``{width: 16}``)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, (list, tuple, dict)):
            lines.append(f"{key}: {json.dumps(plain_value(value))}")
        else:
            lines.append(yaml.safe_dump({key: value}, default_flow_style=False, width=1000).strip())
    return "\n".join(lines) + "\n"


def config_to_yaml(config: TrainConfig) -> str:
    """The config as YAML text, one key per line, in declaration order."""
    return mapping_to_yaml(config.to_dict())


#: The data pipeline of run folders written before ``data_pipeline`` existed: they trained with the
#: DataLoader, so that is what their stored configs mean.
LEGACY_DATA_PIPELINE = "loader"


def stored_config(values: Mapping[str, Any], where: str = "the stored configuration") -> TrainConfig:
    """The :class:`TrainConfig` a run folder or checkpoint recorded (``config.yaml``, ``checkpoint.json``).

    A config written before a key existed means what freqtail did then: without ``data_pipeline`` it
    is :data:`LEGACY_DATA_PIPELINE`.
    """
    return config_from_dict({"data_pipeline": LEGACY_DATA_PIPELINE, **dict(values)}, where=where)


def adopt_stored_data_pipeline(config: TrainConfig, stored: TrainConfig | None) -> TrainConfig:
    """``data_pipeline: auto`` continues a run with the pipeline it was trained with (so a resumed run
    draws the same images); an explicit choice is kept (and compared like any other key)."""
    if stored is None or config.data_pipeline != "auto":
        return config
    return config.replace(data_pipeline=stored.data_pipeline)


def config_differences(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Keys (runtime keys excluded) whose values differ between two configs."""
    left, right = a.comparable(), b.comparable()
    return [key for key in left if left[key] != right.get(key)]
