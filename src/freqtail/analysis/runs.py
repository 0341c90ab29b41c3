"""What the ``sensitivity``, ``landscape`` and ``heatmap`` commands share: a trained run's model, its
test data, the output folder and the common options.

A run folder (``runs/NAME/``, written by ``freqtail train``) is loaded with the trainer's
``freqtail.train.load_model_from_run(path) -> (model, info)``. The data default to the test split of
the run's own dataset (and its ``data_root``); ``--dataset`` / ``--data-root`` choose other data.

Runs trained on a BaSS-converted dataset (``bass: dataset``) are explained, by default, as the paper
evaluates them (the ``domain`` threat model): the bare model on the BaSS-converted test images. With
``--end-to-end`` the model keeps its BaSS front and sees raw test images (gradients flow through the
differentiable BaSS), which is how a deployed model receives its inputs.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from freqtail.commands._common import non_negative_int, positive_int
from freqtail.errors import ConfigError, InputError


def add_run_arguments(parser: argparse.ArgumentParser, default_n: int, default_batch: int) -> None:
    """The options every explanation command takes: RUN, data, size, device, output."""
    parser.add_argument("run", metavar="RUN", help="a run folder written by 'freqtail train' (runs/NAME)")
    parser.add_argument(
        "--dataset", metavar="NAME", help="dataset to analyse (default: the run's own dataset, test split)"
    )
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset")
    parser.add_argument(
        "--n",
        type=positive_int,
        default=default_n,
        help=f"number of test images (default {default_n}): a seeded subset stratified across classes, the "
        "same images 'freqtail evaluate --n N' uses for the same N and --subset-seed",
    )
    parser.add_argument(
        "--subset-seed",
        type=non_negative_int,
        default=0,
        help="seed of the --n subset (default 0, as freqtail evaluate's)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=default_batch,
        help=f"images per pass (default {default_batch})",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument(
        "--out", metavar="DIR", help="write results and figures here instead of into the run folder"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="for runs trained on BaSS-converted data: keep the model's BaSS front and use raw test images "
        "(default: the paper's domain protocol, bare model on BaSS-converted test images)",
    )


def run_setting(info: Any, key: str) -> Any:
    """``key`` from the loader's info, its ``data`` or its ``config`` (each a mapping or an object)."""
    for source in (info, _get(info, "data"), _get(info, "config")):
        value = _get(source, key)
        if value is not None:
            return value
    return None


def _get(source: Any, key: str) -> Any:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"Unknown device {name!r}; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name} was asked for, but no CUDA GPU is available; use --device cpu.")
    return device


def load_run(path: str, device, end_to_end: bool = False) -> tuple[Any, Any]:
    """The trained model of a run folder (on ``device``, eval mode) and the loader's info.

    ``end_to_end`` keeps the model's BaSS front (if its spec records one); otherwise the bare model.

    Raises:
        InputError: the folder does not exist, or ``end_to_end`` for a model without a BaSS front.
        ConfigError: this installation has no run loader.
        CheckpointError (from the loader): no usable checkpoint in the folder.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"The run folder {folder} does not exist; train one with 'freqtail train'.")
    try:
        from freqtail.train import load_model_from_run
    except ImportError:
        raise ConfigError(
            "This freqtail installation cannot load trained runs (freqtail.train.load_model_from_run is "
            "missing)."
        ) from None
    model, info = load_model_from_run(folder, device=device, with_front=end_to_end)
    if end_to_end and getattr(model, "front", None) is None:
        raise InputError(
            f"The model of {folder} has no BaSS front, so it has no end-to-end variant; omit --end-to-end."
        )
    model = model.to(device)
    model.eval()
    return model, info


def analysis_data(args: argparse.Namespace, info: Any) -> tuple[Any, str]:
    """The analysed dataset (test split) and a sentence naming it."""
    from freqtail.data import build_dataset, canonical_name

    run_dataset = run_setting(info, "dataset")
    name = args.dataset or run_dataset
    if name is None:
        raise InputError("The run does not say which dataset it was trained on; give --dataset NAME.")
    name = canonical_name(name)
    same = run_dataset is not None and canonical_name(run_dataset) == name
    root = args.data_root or (run_setting(info, "data_root") if same else None)
    end_to_end = bool(getattr(args, "end_to_end", False))
    bass = "dataset" if same and not end_to_end and run_setting(info, "bass") == "dataset" else None
    strength = run_setting(info, "bass_strength") if bass else None
    options = {"bass": bass} if bass else {}
    if strength is not None:
        options["strength"] = float(strength)
    dataset = build_dataset(name, "test", root, **options)
    label = f"{name} test split"
    if bass:
        label += " (BaSS-converted: the paper's domain protocol)"
    elif end_to_end:
        label += " (raw images through the model's BaSS front: end-to-end)"
    return dataset, label


def output_folder(args: argparse.Namespace) -> Path:
    """Where results go: ``--out`` or the run folder."""
    folder = Path(args.out) if args.out else Path(args.run)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"The output path {folder} is a file, not a folder.")
    return folder
