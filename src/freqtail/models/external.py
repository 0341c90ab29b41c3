"""Models researchers already use: any timm or torchvision architecture, and RobustBench's model zoo.

* ``timm:NAME`` / ``torchvision:NAME`` are model names like any other (``create_model``,
  ``freqtail train --model timm:convnext_tiny``, model specs): the library builds the architecture
  with ``num_classes`` outputs and fresh weights; ``pretrained=True`` (``--set pretrained=true``)
  asks the library for its pretrained weights, the only case that downloads (through the library's
  own cache). The extras ``freqtail[timm]`` installs timm; torchvision is always installed.
* :func:`from_robustbench` loads a RobustBench model (Croce et al., the leaderboard the paper's
  Table 3 compares with) from weights already on disk in RobustBench's layout
  ``MODEL_DIR/<dataset>/<threat model>/<name>.pt``, never downloading: architectures come from the
  ``robustbench`` package (extra ``freqtail[robustbench]``), weights are read with
  ``torch.load(weights_only=True)``. RobustBench models map [0, 1] images to logits with any
  normalisation inside, as every freqtail attack and analysis expects.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyautoattack
import torch
from torch import nn
from torchvision import models

from freqtail.errors import CheckpointError, ConfigError
from freqtail.models.entry import ModelEntry
from freqtail.models.wrappers import FreqtailModel

#: Library prefixes of external model names.
LIBRARIES = ("timm", "torchvision")
#: RobustBench's datasets and threat models as it spells them (``BenchmarkDataset``, ``ThreatModel``).
ROBUSTBENCH_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet"}
ROBUSTBENCH_THREAT_MODELS = ("Linf", "L2", "corruptions")
#: Where RobustBench keeps weights by default (its ``load_model(model_dir="./models")``).
DEFAULT_MODEL_DIR = "models"


# ----------------------------------------------------------------------------------------- timm, torchvision
def external_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``timm:NAME`` or ``torchvision:NAME``.

    Raises:
        ConfigError: an unknown library or model, or the library is not installed (one sentence
            naming what to install).
    """
    library, _, model = name.partition(":")
    library = library.strip().lower()
    model = model.strip()
    if library not in LIBRARIES or not model:
        raise ConfigError(
            f"Unknown model {name!r}; external models are written timm:NAME or torchvision:NAME."
        )
    available = _timm_models() if library == "timm" else _torchvision_models()
    if model not in available:
        close = difflib.get_close_matches(model, available, n=3)
        hint = f"; did you mean {', '.join(f'{library}:{c}' for c in close)}?" if close else "."
        raise ConfigError(f"{library} has no model {model!r}{hint}")
    factory = _timm_factory(model) if library == "timm" else _torchvision_factory(model)
    return ModelEntry(
        f"{library}:{model}",
        factory,
        (),
        f"{library}'s {model}",
        "timm (Wightman)" if library == "timm" else "torchvision",
    )


def _import_timm():
    """The timm module, or one sentence saying how to install it (its import warnings keep Python's
    defaults here; only the command line hides them)."""
    try:
        import timm  # optional extra freqtail[timm]: imported only when a timm model is named
    except ImportError:
        raise ConfigError("timm models need the timm package: pip install 'freqtail[timm]'.") from None
    return timm


def _timm_models() -> list[str]:
    return list(_import_timm().list_models())


def _torchvision_models() -> list[str]:
    return list(models.list_models())


def _timm_factory(model: str):
    def factory(num_classes: int, *, image_size: int, in_channels: int, pretrained: bool = False):
        timm = _import_timm()
        try:
            return timm.create_model(
                model, pretrained=bool(pretrained), num_classes=num_classes, in_chans=in_channels
            )
        except (RuntimeError, OSError) as err:  # no weights for it, or no network for the download
            raise ConfigError(f"timm could not build {model} (pretrained={pretrained}): {err}") from None

    return factory


def _torchvision_factory(model: str):
    def factory(num_classes: int, *, image_size: int, in_channels: int, pretrained: bool = False):
        if in_channels != 3:
            raise ConfigError(f"torchvision's {model} takes 3-channel images, not {in_channels}.")
        if not pretrained:
            return models.get_model(model, weights=None, num_classes=num_classes)
        try:
            network = models.get_model(model, weights="DEFAULT")
        except (RuntimeError, OSError, ValueError) as err:
            raise ConfigError(f"torchvision could not load pretrained {model}: {err}") from None
        return _replace_head(network, num_classes, model)

    return factory


def _replace_head(network, num_classes: int, model: str):
    """A pretrained torchvision network with a fresh last layer of ``num_classes`` outputs."""
    for owner, attribute in ((network, "fc"), (network, "head"), (getattr(network, "heads", None), "head")):
        layer = getattr(owner, attribute, None) if owner is not None else None
        if isinstance(layer, nn.Linear):
            if layer.out_features != num_classes:
                setattr(owner, attribute, nn.Linear(layer.in_features, num_classes))
            return network
    classifier = getattr(network, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        if classifier[-1].out_features != num_classes:
            classifier[-1] = nn.Linear(classifier[-1].in_features, num_classes)
        return network
    if isinstance(classifier, nn.Linear):
        if classifier.out_features != num_classes:
            network.classifier = nn.Linear(classifier.in_features, num_classes)
        return network
    raise ConfigError(
        f"freqtail cannot find the last layer of torchvision's {model} to give it {num_classes} outputs; "
        "use it with 1000 classes or train it from scratch (pretrained=false)."
    )


# ----------------------------------------------------------------------------------------- RobustBench
def import_robustbench():
    """The ``robustbench`` package, or one sentence saying how to install it.

    RobustBench 1.1 imports the AutoAttack package under its GitHub name ``autoattack``
    (``from autoattack import AutoAttack``, ``from autoattack.state import EvaluationState``); PyPI
    ships the same code as ``pyautoattack`` (a freqtail dependency). Unless the importable
    ``autoattack`` is that package (it has ``autoattack.state``), RobustBench is imported with
    ``pyautoattack`` standing in under that name: when none is installed, and when another
    package of that name is, such as the one torchattacks ships (without ``state``). A foreign
    ``autoattack`` is put back afterwards, so its owner keeps working.
    """
    try:
        if _autoattack_is_robustbenchs():
            return importlib.import_module("robustbench")
        with _pyautoattack_as_autoattack():
            return importlib.import_module("robustbench")
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        raise ConfigError(
            f"RobustBench models need the robustbench package (missing: {missing}): "
            "pip install 'freqtail[robustbench]'."
        ) from None


def _autoattack_is_robustbenchs() -> bool:
    """Whether the importable ``autoattack`` package is AutoAttack's own (it has ``autoattack.state``)."""
    try:
        importlib.import_module("autoattack.state")
    except ImportError:
        return False
    return True


def _autoattack_modules() -> dict[str, Any]:
    return {name: module for name, module in sys.modules.items() if name.split(".")[0] == "autoattack"}


@contextmanager
def _pyautoattack_as_autoattack():
    """``import autoattack`` (and its submodules) gives ``pyautoattack`` inside; before is restored after.

    Where no ``autoattack`` was imported before, the alias stays (nothing else claims the name).
    """
    before = _autoattack_modules()
    for name in before:
        del sys.modules[name]
    sys.modules["autoattack"] = pyautoattack
    try:
        yield
    finally:
        if before:
            for name in _autoattack_modules():
                del sys.modules[name]
            sys.modules.update(before)


def robustbench_weights(
    name: str,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike | None = None,
) -> Path:
    """Where RobustBench keeps the weights of ``name``: ``MODEL_DIR/<dataset>/<threat model>/<name>.pt``."""
    folder = Path(model_dir if model_dir is not None else DEFAULT_MODEL_DIR).expanduser()
    return folder / _robustbench_dataset(dataset) / _robustbench_threat(threat_model) / f"{name}.pt"


def robustbench_names(dataset: str = "cifar10", threat_model: str = "Linf") -> list[str]:
    """The model names of RobustBench's zoo for a dataset and threat model."""
    return sorted(_zoo(dataset, threat_model))


def from_robustbench(
    name: str,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str | os.PathLike | None = None,
):
    """A RobustBench model, from weights on disk, as a :class:`freqtail.models.FreqtailModel`.

    Args:
        name: a model of RobustBench's zoo, e.g. ``"Carmon2019Unlabeled"`` or ``"Standard"``.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"`` (the leaderboard).
        model_dir: RobustBench's model folder (default ``./models``); the weights must be at
            ``model_dir/<dataset>/<threat model>/<name>.pt`` (get them once with
            ``robustbench.utils.load_model(name, model_dir=...)`` where the network is reachable).

    Returns:
        the model in eval mode on the CPU: float (N, 3, H, W) in [0, 1] -> logits; its normalisation
        is inside the RobustBench network, so the wrapper adds none.

    Raises:
        ConfigError: robustbench missing, an unknown dataset, threat model or name (close matches named).
        CheckpointError: no weights at the expected path, or weights that do not fit the architecture.
    """
    zoo = _zoo(dataset, threat_model)
    if name not in zoo:
        close = difflib.get_close_matches(name, list(zoo), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"RobustBench has no {_robustbench_threat(threat_model)} model {name!r} for "
            f"{_robustbench_dataset(dataset)}.{hint}"
        )
    entry = zoo[name]
    if isinstance(entry.get("gdrive_id"), list):
        raise ConfigError(
            f"RobustBench's {name} is an ensemble of several checkpoints; freqtail loads single models."
        )
    path = robustbench_weights(name, dataset, threat_model, model_dir)
    network = entry["model"]()
    if not path.is_file():
        raise CheckpointError(
            f"No weights for RobustBench's {name} at {path}; put {name}.pt there (RobustBench's "
            f"layout, --model-dir {path.parents[2]}) or fetch it once with "
            f"robustbench.utils.load_model({name!r}, model_dir={str(path.parents[2])!r}) where the "
            "network is reachable (freqtail never downloads)."
        )
    state = _robustbench_state_dict(path, name)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"The weights in {path} do not fit RobustBench's {name} ({first}).") from None
    model = FreqtailModel(network)
    model.eval()
    return model


def _robustbench_dataset(dataset: str) -> str:
    key = str(dataset).lower().replace("-", "").replace("_", "")
    if key not in ROBUSTBENCH_DATASETS:
        raise ConfigError(
            f"RobustBench has no dataset {dataset!r}; choose one of {', '.join(ROBUSTBENCH_DATASETS)}."
        )
    return ROBUSTBENCH_DATASETS[key]


def _robustbench_threat(threat_model: str) -> str:
    for name in ROBUSTBENCH_THREAT_MODELS:
        if str(threat_model).lower() == name.lower():
            return name
    choices = ", ".join(ROBUSTBENCH_THREAT_MODELS)
    raise ConfigError(f"RobustBench has no threat model {threat_model!r}; choose one of {choices}.")


def _zoo(dataset: str, threat_model: str) -> Mapping[str, Any]:
    import_robustbench()
    # Optional extra freqtail[robustbench]: imported only when a RobustBench model is asked for.
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts[BenchmarkDataset(_robustbench_dataset(dataset))][
        ThreatModel(_robustbench_threat(threat_model))
    ]


def _robustbench_state_dict(path: Path, name: str) -> dict:
    """The state dict in a RobustBench weights file, keys cleaned as RobustBench's loader cleans them."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable or unsafe file is the user's to replace
        raise CheckpointError(f"The RobustBench weights file {path} cannot be read safely ({err}).") from None
    # RobustBench's own quirks (robustbench.utils.load_model): two models keep several snapshots and
    # are loaded from 'last'; most wrap the weights in 'state_dict'; DataParallel and wrapper
    # prefixes 'module.' and 'model.' are dropped.
    keeps_snapshots = "Kireev2021Effectiveness" in name or name == "Andriushchenko2020Understanding"
    if keeps_snapshots and isinstance(checkpoint, Mapping) and "last" in checkpoint:
        checkpoint = checkpoint["last"]
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"The RobustBench weights file {path} does not hold a state dict.")
    return {_strip(key): value for key, value in checkpoint.items()}


def _strip(key: str) -> str:
    """RobustBench removes these substrings wherever they stand in a key (not only as prefixes)."""
    for part in ("module.", "model."):
        key = key.replace(part, "")
    return key
