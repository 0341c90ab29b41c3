"""Corruption robustness: accuracy per corruption and severity on a ``-C`` set, and its aggregates.

Aggregates (paper Table 4): the four category means — Noise, Blur, Weather, Digital, each the mean
accuracy over the category's corruptions x severities — and the overall **mean over every
corruption x severity cell** (19 x 5 = 95 cells on a full set). The overall mean is not the mean of
the four category means: Noise has 4 corruptions and the other categories 5, so the two differ.
Every cell has the same images, so a cell mean equals the pooled accuracy.

Orders, for a model trained on BaSS data (``bass="dataset"``):

* ``bass-then-corrupt`` (threat model ``domain``, the paper's CIFAR10-B-C): corruptions generated
  from the BaSS-converted test set, the model without the BaSS front;
* ``corrupt-then-bass`` (threat model ``end-to-end``, what a deployed model sees): the ordinary -C
  set, BaSS applied to each corrupted image by the front inside the model (straight-through uint8
  rounding, so the forward value is the uint8 BaSS image);
* ``none`` (threat model ``standard``): the ordinary -C set, the model as trained.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from freqtail.data import build_dataset, canonical_name, corrupted_sets
from freqtail.data.cache_files import report_rebuilt
from freqtail.data.corrupted_sets import corrupted_set_info, load_corrupted_set, write_corrupted_set
from freqtail.data.corruptions import CATEGORIES, CORRUPTIONS
from freqtail.data.subsets import SubsetChoice, check_subset_size, choose_subset
from freqtail.data.variants import bass_implementation_version
from freqtail.distributed import DistContext, all_reduce_counts
from freqtail.errors import ConfigError, DamagedFileError, DatasetNotFoundError, InputError
from freqtail.evaluate.sharding import gather_outcomes, global_batches, rank_batches
from freqtail.io import load_npy
from freqtail.progress import progress_bar, silent

ORDER_NONE = "none"
CORRUPT_THEN_BASS = "corrupt-then-bass"
BASS_THEN_CORRUPT = "bass-then-corrupt"
#: The corruption order each threat model uses.
ORDER_OF_THREAT_MODEL = {"standard": ORDER_NONE, "domain": BASS_THEN_CORRUPT, "end-to-end": CORRUPT_THEN_BASS}
MEAN_RULE = (
    "category means and the overall mean are means of per-(corruption, severity) accuracies; "
    "the overall mean is over all corruption x severity cells (not the mean of the category means)"
)
#: Folder names of the published sets under --data-root.
PUBLISHED_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}

Cell = tuple[int, int]  # (correct, total)


def _cell_accuracy(value: float | Cell | Mapping[str, Any]) -> float:
    if isinstance(value, Mapping):
        value = float(value["accuracy"])
    if isinstance(value, tuple):
        correct, total = value
        if total <= 0:
            raise InputError("A corruption cell holds no images.")
        return correct / total
    accuracy = float(value)
    if not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
        raise InputError(f"A corruption accuracy must be a fraction in [0, 1], not {value!r}.")
    return accuracy


def aggregate_corruptions(table: Mapping[str, Mapping[Any, Any]]) -> dict[str, Any]:
    """Category means and the overall mean of a per-corruption, per-severity accuracy table.

    Args:
        table: ``{corruption: {severity: accuracy}}``; an accuracy is a fraction in [0, 1], a
            ``(correct, total)`` pair, or a mapping with an ``"accuracy"`` key. Corruption names are
            those of :data:`freqtail.data.corruptions.CORRUPTIONS`.

    Returns:
        ``{"categories": {"noise": m | None, "blur": ..., "weather": ..., "digital": ...},
        "mean": m, "cells": number of cells, "per_corruption_mean": {name: m},
        "missing": [corruptions of the 19 not in the table], "complete": bool, "rule": MEAN_RULE}``;
        a category without any corruption in the table has mean None.

    Raises:
        InputError: an unknown corruption name, an empty table or row, or an accuracy outside [0, 1].
    """
    if not table:
        raise InputError("The corruption table is empty.")
    unknown = [name for name in table if name not in CORRUPTIONS]
    if unknown:
        raise InputError(f"Unknown corruption {unknown[0]!r}; known ones are {', '.join(CORRUPTIONS)}.")
    accuracies: dict[str, list[float]] = {}
    for name in CORRUPTIONS:
        if name not in table:
            continue
        row = table[name]
        if not row:
            raise InputError(f"The corruption table has no severity for {name}.")
        accuracies[name] = [_cell_accuracy(value) for value in row.values()]
    categories: dict[str, float | None] = {}
    for category, names in CATEGORIES.items():
        cells = [a for name in names if name in accuracies for a in accuracies[name]]
        categories[category] = float(np.mean(cells)) if cells else None
    every = [a for values in accuracies.values() for a in values]
    severities = {len(values) for values in accuracies.values()}
    return {
        "categories": categories,
        "mean": float(np.mean(every)),
        "cells": len(every),
        "per_corruption_mean": {name: float(np.mean(values)) for name, values in accuracies.items()},
        "missing": [name for name in CORRUPTIONS if name not in accuracies],
        "complete": len(accuracies) == len(CORRUPTIONS) and severities == {5},
        "rule": MEAN_RULE,
    }


@dataclass
class CorruptionSource:
    """A ``-C`` folder chosen for one corruption order, and where it came from.

    Attributes:
        order: :data:`ORDER_NONE`, :data:`CORRUPT_THEN_BASS` or :data:`BASS_THEN_CORRUPT`.
        c_dir: the folder.
        origin: ``"--c-root"``, ``"--bc-root"``, ``"data-root"`` or ``"generated"``.
        corruptions: the corruptions evaluated (present in the folder and asked for).
        severities: the severities evaluated.
        info: what the folder says about itself (``meta.json`` source, seed) or ``"published"``.
    """

    order: str
    c_dir: Path
    origin: str
    corruptions: list[str]
    severities: list[int]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "c_dir": str(self.c_dir),
            "origin": self.origin,
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
            **self.info,
        }


def _how_to_get(order: str, dataset: str) -> str:
    if order == BASS_THEN_CORRUPT:
        return (
            f"give a BaSS-then-corrupt set with --bc-root DIR (write one with `freqtail corrupt --dataset "
            f"{dataset} --bass dataset --out DIR`) or add --generate-c to generate it for the evaluated "
            "images"
        )
    return (
        f"give it with --c-root DIR (CIFAR-10-C / CIFAR-100-C, or `freqtail corrupt --dataset {dataset} "
        "--out DIR`) or add --generate-c to generate it for the evaluated images"
    )


def _check_folder(
    c_dir: Path, order: str, dataset: str, num_classes: int, image_size: tuple[int, int]
) -> dict[str, Any]:
    """Refuse a folder that cannot be this dataset's -C set for this order; return its description."""
    info = corrupted_set_info(c_dir)
    meta = info["meta"]
    if not info["corruptions"]:
        raise DatasetNotFoundError(
            f"The -C folder {c_dir} holds none of the 19 corruption files; {_how_to_get(order, dataset)}."
        )
    described: dict[str, Any] = {"published": meta is None}
    if meta is not None:
        source = meta.get("source") or {}
        described.update({"seed": meta.get("seed"), "source": source})
        named = source.get("dataset")
        if named is not None:
            try:
                named = canonical_name(named)
            except ConfigError:
                pass
            if named != dataset:
                raise ConfigError(f"The -C folder {c_dir} was written from {named}, not from {dataset}.")
        bass = source.get("bass")
        if order == BASS_THEN_CORRUPT and bass != "dataset":
            raise ConfigError(
                f"The folder {c_dir} was corrupted from raw images, not BaSS images; the BaSS-then-corrupt "
                "order needs a set written with `freqtail corrupt --bass dataset` (give it as --bc-root)."
            )
        if order != BASS_THEN_CORRUPT and bass not in (None, "none"):
            raise ConfigError(
                f"The folder {c_dir} was corrupted from BaSS images (bass={bass}); give it as --bc-root, "
                "and give the raw-image -C set as --c-root."
            )
        shape = meta.get("image_shape")
        if shape and tuple(shape[:2]) != tuple(image_size):
            raise ConfigError(
                f"The -C folder {c_dir} holds {shape[0]}x{shape[1]} images, but {dataset} has "
                f"{image_size[0]}x{image_size[1]}."
            )
    first = info["corruptions"][0]
    images = load_npy(c_dir / f"{first}.npy", f"{first} corruption image", mmap=True)
    if images.ndim != 4 or tuple(images.shape[1:3]) != tuple(image_size):
        raise ConfigError(
            f"The -C folder {c_dir} holds images of shape {tuple(images.shape[1:])}, but {dataset} has "
            f"{image_size[0]}x{image_size[1]} images."
        )
    if (c_dir / corrupted_sets.LABELS_FILE).is_file():
        labels = corrupted_sets.load_labels(c_dir)  # checked against its digest in a set freqtail wrote
        if labels.size and int(np.max(labels)) >= num_classes:
            raise ConfigError(
                f"The -C folder {c_dir} has labels up to {int(np.max(labels))}, but {dataset} has "
                f"{num_classes} classes."
            )
    return {**described, "available": info["corruptions"], "available_severities": info["severities"]}


def resolve_corruption_source(
    order: str,
    *,
    dataset: str,
    num_classes: int,
    image_size: tuple[int, int],
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    c_root: str | os.PathLike | None = None,
    bc_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    generate_dir: str | os.PathLike | None = None,
) -> CorruptionSource | None:
    """Find (and check) the -C folder an order needs; None when it must be generated into ``generate_dir``.

    Lookup: :data:`BASS_THEN_CORRUPT` uses ``bc_root``; the other orders use ``c_root``, else
    ``data_root/CIFAR-10-C`` (``CIFAR-100-C``) when it exists. With neither, and ``generate_dir``
    given, None is returned (the caller generates the set); without ``generate_dir`` the missing
    folder is one sentence.

    Raises:
        DatasetNotFoundError: a missing folder or corruption (one sentence with how to get it).
        ConfigError: a folder of another dataset, image size, class count or order; bad severities.
    """
    given = bc_root if order == BASS_THEN_CORRUPT else c_root
    origin = "--bc-root" if order == BASS_THEN_CORRUPT else "--c-root"
    if (
        given is None
        and order != BASS_THEN_CORRUPT
        and data_root is not None
        and dataset in PUBLISHED_FOLDERS
    ):
        candidate = Path(data_root) / PUBLISHED_FOLDERS[dataset]
        if candidate.is_dir():
            given, origin = candidate, "data-root"
    if given is None:
        if generate_dir is not None:
            return None
        what = "BaSS-then-corrupt (CIFAR10-B-C style)" if order == BASS_THEN_CORRUPT else "corrupted (-C)"
        raise DatasetNotFoundError(
            f"No {what} test set was given for {dataset}; {_how_to_get(order, dataset)}."
        )
    c_dir = Path(given)
    if not c_dir.is_dir():
        raise DatasetNotFoundError(f"No -C folder at {c_dir}; {_how_to_get(order, dataset)}.")
    described = _check_folder(c_dir, order, dataset, num_classes, image_size)
    available = described.pop("available")
    available_severities = described.pop("available_severities")
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    if corruptions is None:
        names = [name for name in names if name in available]
    missing = [name for name in names if name not in available]
    if missing:
        raise DatasetNotFoundError(
            f"The -C folder {c_dir} has no {missing[0]}.npy (present: {', '.join(available)}); "
            "choose corruptions it holds with --corruptions."
        )
    levels = list(available_severities) if severities is None else list(severities)
    absent = [s for s in levels if s not in available_severities]
    if absent:
        raise ConfigError(
            f"The -C folder {c_dir} holds severities {', '.join(map(str, available_severities))}, "
            f"not {absent[0]}."
        )
    return CorruptionSource(order, c_dir, origin, names, levels, described)


def generated_folder(
    generate_dir: str | os.PathLike,
    dataset: str,
    order: str,
    indices: np.ndarray,
    severities: Sequence[int],
    seed: int,
    bass_strength: float,
) -> Path:
    """Folder for a generated -C set of the evaluated images, keyed by what it was made from.

    The key includes the -C format version and the BaSS implementation version, so a set made by an
    older corruption or BaSS implementation is generated anew instead of being reused.
    """
    digest = hashlib.sha256()
    made_by = (corrupted_sets.FORMAT_VERSION, bass_implementation_version())  # read now: the current format
    digest.update(repr((dataset, order, list(severities), int(seed), float(bass_strength), made_by)).encode())
    digest.update(np.asarray(indices, dtype=np.int64).tobytes())
    return Path(generate_dir) / f"{dataset}-{order}-{digest.hexdigest()[:12]}"


def generate_corruption_source(
    order: str,
    *,
    dataset: str,
    data_root: str | os.PathLike | None,
    indices: np.ndarray,
    generate_dir: str | os.PathLike,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    seed: int = 0,
    bass_strength: float = 1.0,
    progress: bool = False,
) -> CorruptionSource:
    """Write (or resume) a -C set of the evaluated test images for one order and describe it.

    The source is the test images at ``indices`` — raw for :data:`ORDER_NONE` and
    :data:`CORRUPT_THEN_BASS`, BaSS-converted (``build_dataset(..., bass="dataset")``) for
    :data:`BASS_THEN_CORRUPT` — corrupted with :func:`freqtail.data.corrupted_sets.write_corrupted_set`
    (resumable: finished corruptions are kept). Array datasets only (embedded, CIFAR).

    The set is a cache: a finished corruption whose file differs from its recorded digest is written
    again by :func:`~freqtail.data.corrupted_sets.write_corrupted_set`, and a damaged ``meta.json``
    makes the whole folder be generated anew, each with one line on the ``freqtail.cache`` logger.
    """
    levels = list(severities) if severities is not None else [1, 2, 3, 4, 5]
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    bass = "dataset" if order == BASS_THEN_CORRUPT else None
    test = build_dataset(dataset, "test", data_root, bass=bass, strength=bass_strength)
    if not hasattr(test, "images"):
        raise ConfigError(
            f"Generating a -C set on the fly works for array datasets (embedded, CIFAR); for {dataset} "
            "write one with `freqtail corrupt` and give it with --c-root / --bc-root."
        )
    folder = generated_folder(generate_dir, dataset, order, indices, levels, seed, bass_strength)
    source_meta = {
        "dataset": dataset,
        "split": "test",
        "bass": bass,
        "bass_strength": bass_strength if bass else None,
        "indices_of_test_set": "see evaluation record (seeded subset)",
        "classes": list(test.classes),
    }
    images, labels = np.ascontiguousarray(test.images[indices]), np.asarray(test.labels)[indices]

    def write() -> None:
        write_corrupted_set(
            images,
            labels,
            folder,
            corruptions=names,
            severities=levels,
            seed=seed,
            progress=progress,
            meta=source_meta,
        )

    try:
        write()
    except DamagedFileError as err:  # meta.json itself: nothing in the folder can be trusted
        if err.path != folder / corrupted_sets.META_FILE:
            raise
        shutil.rmtree(folder)
        write()
        report_rebuilt(err, f"the generated corrupted set {folder}")
    return CorruptionSource(
        order, folder, "generated", names, levels, {"published": False, "seed": seed, "source": source_meta}
    )


def _float_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1] on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def corruption_outcomes(
    model: torch.nn.Module,
    source: CorruptionSource,
    *,
    n: int | None = None,
    subset_seed: int = 0,
    batch_size: int = 256,
    context=None,
    progress: bool = False,
    desc: str = "corruptions",
) -> tuple[dict[str, dict[int, Cell]], SubsetChoice, dict[str, dict[int, np.ndarray]]]:
    """Count correct predictions per corruption and severity (summed over ranks), and which images.

    Args:
        model: classifier in eval mode (with the BaSS front for :data:`CORRUPT_THEN_BASS`).
        source: the -C folder and what to evaluate in it.
        n: evaluate n images per cell, chosen by :func:`freqtail.data.subsets.stratified_subset` from the
            labels of the first cell (the same positions in every cell).
        subset_seed: seed of the subset.
        batch_size: images per forward pass (global batches, round robin over ranks).
        context: :class:`freqtail.distributed.DistContext` or None (one process).
        progress: show a progress bar on rank 0.
        desc: the progress bar's label.

    Returns:
        ``({corruption: {severity: (correct, total)}}, the positions counted in every cell,
        {corruption: {severity: bool (n,)}})``: the last says which of the counted positions (in
        their order) were classified correctly, gathered from every rank in global-batch order
        (:func:`freqtail.evaluate.sharding.gather_outcomes`).
    """
    context = context or DistContext()
    device = context.device
    cells = [(name, severity) for name in source.corruptions for severity in source.severities]
    if not cells:
        raise InputError(
            f"No corruption and severity of {source.c_dir} was chosen, so there is nothing to count."
        )
    # a generated set is damaged after this run checked it: the next run writes it again
    advice = (
        "run the evaluation again, which writes the generated set anew"
        if source.origin == "generated"
        else None
    )
    counts = np.zeros((len(cells), 2), dtype=np.int64)
    outcomes: list[list[tuple[int, np.ndarray]]] = [[] for _ in cells]
    cell_choice: SubsetChoice | None = None
    bar = (
        progress_bar(total=len(cells), desc=desc, unit="set", enabled=progress)
        if context.is_main
        else silent(total=len(cells))
    )
    with torch.no_grad(), bar:
        for position, (name, severity) in enumerate(cells):
            block = load_corrupted_set(source.c_dir, name, severity, advice=advice)
            if len(block) == 0:
                raise InputError(f"The corrupted set {source.c_dir}/{name}.npy holds no images.")
            if cell_choice is None:
                check_subset_size(n, len(block), f"the corrupted set {source.c_dir}")
                cell_choice = choose_subset(block, n, subset_seed, labels=block.labels)
            elif len(block) != cell_choice.total:
                raise InputError(
                    f"The corrupted set {source.c_dir} holds {len(block)} images of {name} at severity "
                    f"{severity} but {cell_choice.total} in its first file; every file must hold the same "
                    "images."
                )
            indices = cell_choice.indices
            for number, batch in rank_batches(global_batches(indices, batch_size), context):
                images = _float_batch(block.images[batch], device)
                labels = torch.from_numpy(block.labels[batch]).to(device)
                right = model(images).argmax(dim=1) == labels
                counts[position, 0] += int(right.sum())
                counts[position, 1] += len(batch)
                outcomes[position].append((number, right.cpu().numpy()))
            bar.update(1)
    counts = all_reduce_counts(counts.reshape(-1), context).reshape(-1, 2)
    table: dict[str, dict[int, Cell]] = {}
    masks: dict[str, dict[int, np.ndarray]] = {}
    for (name, severity), (correct, total), found in zip(cells, counts, outcomes, strict=True):
        table.setdefault(name, {})[severity] = (int(correct), int(total))
        masks.setdefault(name, {})[severity] = gather_outcomes(found, cell_choice.n, batch_size, context)
    return table, cell_choice, masks


def corruption_table_record(table: Mapping[str, Mapping[int, Cell]]) -> dict[str, Any]:
    """The JSON fields of a corruption record: ``per_corruption``, ``categories``, ``mean``, totals."""
    per_corruption = {
        name: {
            str(severity): {"correct": correct, "total": total, "accuracy": correct / total}
            for severity, (correct, total) in row.items()
        }
        for name, row in table.items()
    }
    aggregate = aggregate_corruptions(table)
    correct = sum(c for row in table.values() for c, _ in row.values())
    total = sum(t for row in table.values() for _, t in row.values())
    return {
        "per_corruption": per_corruption,
        "categories": aggregate["categories"],
        "mean": aggregate["mean"],
        "accuracy": aggregate["mean"],
        "correct": correct,
        "total": total,
        "cells": aggregate["cells"],
        "missing_corruptions": aggregate["missing"],
        "complete": aggregate["complete"],
        "mean_rule": aggregate["rule"],
    }
