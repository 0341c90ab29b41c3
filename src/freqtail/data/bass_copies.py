"""Converted copies of whole datasets in their source format (``freqtail bass --dataset``).

:func:`write_bass_dataset` writes a BaSS-converted copy of a dataset so that ``--data-root OUT``
then loads the converted set with the ordinary loader. Folder datasets are written at their working
resolution (decode, the preset's resize, then BaSS), as :func:`freqtail.data.build_dataset` converts
them, so reading a copy back gives exactly the items of ``bass="dataset"``.

A copy is written holding the output folder's lock (:data:`WRITE_LOCK`; a second writer of the same
folder is refused, naming the holder), and every file atomically. A run killed anywhere (``kill -9``,
a power cut) leaves at most the temporary files of the writes in flight; the next run, holding the
lock, first sweeps those of every file it will write, then writes the copy again from the start
(each file is replaced atomically, and the record of digests is written last).
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from freqtail.bass.core import check_strength
from freqtail.data.augment import working_resize
from freqtail.data.cache_files import DIGEST_FILE, array_digest, write_digest_file, write_verified_png
from freqtail.data.catalog import canonical_name, dataset_info
from freqtail.data.cifar import CIFAR_LAYOUTS, cifar_folder, load_cifar
from freqtail.data.embedded import SPLITS, ensure_embedded, read_embedded_folder, write_embedded_folder
from freqtail.data.folders import (
    TINY_IMAGENET_FOLDER,
    imagenet_samples,
    imagenet_split_folder,
    read_rgb,
    restricted_imagenet_samples,
    tiny_imagenet_folder,
    tiny_imagenet_samples,
)
from freqtail.data.safe_pickle import safe_load_pickle
from freqtail.data.variants import bass_implementation_version, convert_images
from freqtail.errors import ConfigError
from freqtail.io import atomic_path, atomic_write_bytes, atomic_write_text, sweep_leftover_temporaries
from freqtail.locks import try_lock

#: The lock a writer of a converted copy holds, in the output folder.
WRITE_LOCK = ".freqtail-bass.lock"


def write_bass_dataset(
    name: str,
    root: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    strength: float = 1.0,
    progress: bool = True,
) -> dict:
    """Write a BaSS-converted copy of dataset ``name`` to ``out_dir`` in the same format as its source.

    * embedded: the embedded npy layout (``out_dir`` then works as ``root`` for ``"embedded"``);
    * cifar10 / cifar100: the official python batches under ``out_dir/cifar-10-batches-py`` /
      ``cifar-100-python`` (every key of the source batches kept, only ``data`` replaced);
    * tiny-imagenet / imagenet / restricted-imagenet: the same folder tree, every image first resized
      to the **working resolution** of the dataset's default augmentation preset (the image BaSS sees
      in training: Tiny-ImageNet 64 x 64, ImageNet shorter side 256, Restricted-ImageNet 128 x 128;
      :func:`freqtail.data.augment.working_resize`), then converted and saved as lossless PNG (JPEG
      would erase the high frequencies BaSS adds), with annotation files rewritten to the new file
      names. Loading the copy applies the same resize, which is then the identity, so the copy gives
      the same items as ``build_dataset(name, ..., bass="dataset")``. A copy serves the dataset it
      was written for: an ``imagenet`` copy read as ``restricted-imagenet`` would be BaSS-then-resize.

    Returns:
        ``{"dataset", "out_dir", "strength", "images", "degenerate", "splits": {split: count},
        "seconds"}``; ``degenerate`` counts images with a channel that hit BaSS's degenerate rule (that
        channel copied unchanged, the others converted).
    """
    name = canonical_name(name)
    strength = check_strength(strength, error=ConfigError)
    out = Path(out_dir).expanduser()
    start = time.perf_counter()
    folder = str(out).replace("{", "{{").replace("}", "}}")  # a literal in the refusal's format string
    refusal = f"The folder {folder} is being written by {{holder}}; wait for it or choose another --out."
    lock = try_lock(out / WRITE_LOCK, purpose="writing a BaSS-converted dataset copy", refusal=refusal)
    try:
        if name == "embedded":
            splits, degenerate = _write_embedded(root, out, strength, progress)
        elif name in ("cifar10", "cifar100"):
            splits, degenerate = _write_cifar(name, root, out, strength, progress)
        elif name == "tiny-imagenet":
            splits, degenerate = _write_tiny_imagenet(root, out, strength, progress)
        else:
            splits, degenerate = _write_imagenet(name, root, out, strength, progress)
    finally:
        lock.release()
    return {
        "dataset": name,
        "out_dir": str(out),
        "strength": strength,
        "images": int(sum(splits.values())),
        "degenerate": int(degenerate),
        "splits": splits,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _write_embedded(root, out: Path, strength: float, progress: bool) -> tuple[dict, int]:
    folder = Path(root) if root is not None else ensure_embedded()
    owned = [out / f"{split}_{part}.npy" for split in SPLITS for part in ("images", "labels")]
    sweep_leftover_temporaries([*owned, out / "meta.json"])
    arrays: dict[str, np.ndarray] = {}
    splits, degenerate = {}, 0
    for split in SPLITS:
        images, labels, _ = read_embedded_folder(folder, split)
        converted, n = convert_images(images, strength, progress)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = converted, labels
        splits[split], degenerate = len(images), degenerate + n
    write_embedded_folder(
        out,
        arrays,
        {
            "bass": {
                "strength": strength,
                "degenerate": degenerate,
                "bass_version": bass_implementation_version(),
            }
        },
    )
    return splits, degenerate


def _write_cifar(name: str, root, out: Path, strength: float, progress: bool) -> tuple[dict, int]:
    layout = CIFAR_LAYOUTS[name]
    load_cifar(name, "train", root)  # validates every file with a clear error before writing anything
    load_cifar(name, "test", root)
    source = cifar_folder(name, root)
    target = out / layout.folder
    owned = [*layout.train_files, *layout.test_files, layout.meta_file, DIGEST_FILE]
    sweep_leftover_temporaries(target / file_name for file_name in owned)
    target.mkdir(parents=True, exist_ok=True)
    splits, degenerate = {"train": 0, "test": 0}, 0
    digests = {}
    for split, files in (("train", layout.train_files), ("test", layout.test_files)):
        for file_name in files:
            batch = safe_load_pickle(source / file_name, f"{name} batch file")
            keys = {k.decode("latin1") if isinstance(k, bytes) else k: k for k in batch}
            images = batch[keys["data"]].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            converted, n = convert_images(np.ascontiguousarray(images), strength, progress)
            batch[keys["data"]] = np.ascontiguousarray(
                converted.transpose(0, 3, 1, 2).reshape(len(converted), -1)
            )
            atomic_write_bytes(target / file_name, pickle.dumps(batch, protocol=2))
            # what load_cifar reads back: the (N, 32, 32, 3) images and the int64 labels
            digests[f"{file_name}:images"] = array_digest(converted)
            labels = np.asarray(batch[keys[layout.label_key]], dtype=np.int64)
            digests[f"{file_name}:labels"] = array_digest(labels)
            splits[split] += len(converted)
            degenerate += n
    with atomic_path(target / layout.meta_file) as tmp:
        shutil.copyfile(source / layout.meta_file, tmp)
    write_digest_file(target, digests)
    return splits, degenerate


def _folder_resize(name: str):
    info = dataset_info(name)
    return working_resize(info.preset, info.image_size)


def _convert_files(pairs: list[tuple[str, Path]], strength: float, progress: bool, desc: str, resize) -> int:
    """Resize image files to the working resolution, convert them and write ``target.png``.

    Returns the number of degenerate images.
    """
    degenerate = 0
    for source, target in tqdm(pairs, desc=desc, unit="img", disable=not progress, dynamic_ncols=True):
        converted, n = convert_images(resize(read_rgb(source))[None], strength, progress=False)
        degenerate += n
        write_verified_png(target, converted[0])  # read back checked by folders.read_rgb
    return degenerate


def _png_name(path: str) -> str:
    return Path(path).stem + ".png"


def _write_tiny_imagenet(root, out: Path, strength: float, progress: bool) -> tuple[dict, int]:
    source = tiny_imagenet_folder(root)
    train, _, wnids = tiny_imagenet_samples(root, "train")
    val, _, _ = tiny_imagenet_samples(root, "test")
    target = out / TINY_IMAGENET_FOLDER
    pairs = [(p, target / "train" / wnids[label] / "images" / _png_name(p)) for p, label in train]
    val_pairs = [(p, target / "val" / "images" / _png_name(p)) for p, _ in val]
    annotations = target / "val" / "val_annotations.txt"
    text_files = [target / "wnids.txt", target / "words.txt", annotations]
    sweep_leftover_temporaries([*text_files, *(png for _, png in pairs + val_pairs)])
    for meta_file in ("wnids.txt", "words.txt"):
        if (source / meta_file).is_file():
            with atomic_path(target / meta_file) as tmp:
                shutil.copyfile(source / meta_file, tmp)
    resize = _folder_resize("tiny-imagenet")
    degenerate = _convert_files(pairs, strength, progress, "BaSS train", resize)
    degenerate += _convert_files(val_pairs, strength, progress, "BaSS val", resize)
    lines = [f"{_png_name(p)}\t{wnids[label]}" for p, label in val]
    atomic_write_text(annotations, "\n".join(lines) + "\n")
    return {"train": len(train), "test": len(val)}, degenerate


def _write_imagenet(name: str, root, out: Path, strength: float, progress: bool) -> tuple[dict, int]:
    splits, degenerate = {}, 0
    resize = _folder_resize(name)
    for split, part in (("train", "train"), ("test", "val")):
        folder = imagenet_split_folder(root, split, name)
        if name == "restricted-imagenet":
            samples, _ = restricted_imagenet_samples(root, split)
        else:
            samples, _, _ = imagenet_samples(root, split)
        # every class folder is recreated (empty if unused) so sorted-wnid label indices stay valid
        for entry in os.scandir(folder):
            if entry.is_dir():
                (out / part / entry.name).mkdir(parents=True, exist_ok=True)
        pairs = [(p, out / part / Path(p).relative_to(folder).parent / _png_name(p)) for p, _ in samples]
        sweep_leftover_temporaries(png for _, png in pairs)
        degenerate += _convert_files(pairs, strength, progress, f"BaSS {part}", resize)
        splits[split] = len(samples)
    root_path = Path(root).expanduser()
    names_files = ("LOC_synset_mapping.txt", "words.txt", "synset_words.txt")
    sweep_leftover_temporaries(out / names_file for names_file in names_files)
    for names_file in names_files:
        if (root_path / names_file).is_file():
            with atomic_path(out / names_file) as tmp:
                shutil.copyfile(root_path / names_file, tmp)
    return splits, degenerate
