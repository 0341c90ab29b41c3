"""BaSS variants of datasets (the paper's "CIFAR10-B as a new dataset" protocol, §4.2).

* :func:`cached_bass_arrays` converts the train and test images of an array dataset (embedded,
  CIFAR-10/100) once with :func:`freqtail.bass.convert_uint8_images` and caches the result under
  ``cache_dir()/variants/<name>-<key>/``. The key hashes the source images (both splits), the BaSS
  settings and the BaSS implementation version, so a changed source, strength or implementation
  makes a new entry and an unchanged one is reused.
* :class:`FileVariantCache` does the same per image file for folder datasets (Tiny-ImageNet,
  ImageNet, Restricted-ImageNet): an image is resized to the working resolution of the augmentation
  preset first (BaSS is not resolution-invariant: BaSS-then-resize would remove much of what BaSS
  adds), converted on first read and cached as a lossless PNG keyed by its path, size, modification
  time and the resize.
* :func:`write_bass_dataset` writes a converted copy of a dataset in its source format, so
  ``--data-root OUT`` then loads the converted set with the ordinary loader (folder datasets are
  written at their working resolution).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from freqtail.errors import ConfigError, FreqtailError
from freqtail.io import atomic_path, atomic_write_json, cache_dir

#: Layout version of the variant cache itself (bump if the cached format changes).
VARIANT_FORMAT = "1"


def bass_implementation_version() -> str:
    """A string that changes whenever the BaSS implementation changes.

    ``freqtail.bass.BASS_VERSION`` if the BaSS module declares one, else a hash of the source of the
    modules that compute the conversion (``freqtail/bass/core.py`` and ``convert.py``).
    """
    import freqtail.bass as bass

    declared = getattr(bass, "BASS_VERSION", None)
    if declared:
        return str(declared)
    digest = hashlib.sha256()
    folder = Path(bass.__file__).parent
    for module in ("core.py", "convert.py"):
        path = folder / module
        if path.is_file():
            digest.update(path.read_bytes())
    return "src-" + digest.hexdigest()[:12]


def check_strength(strength: float) -> float:
    if (
        isinstance(strength, bool)
        or not isinstance(strength, (int, float))
        or not 0.0 <= float(strength) <= 1.0
    ):
        raise ConfigError(f"The BaSS strength must be a number in [0, 1], not {strength!r}.")
    return float(strength)


def _settings(strength: float) -> dict:
    return {
        "strength": float(strength),
        "profile": "amplitude",
        "bass_version": bass_implementation_version(),
        "format": VARIANT_FORMAT,
    }


def source_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the named arrays (names, shapes, dtypes and bytes), in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _convert(images: np.ndarray, strength: float, progress: bool) -> tuple[np.ndarray, int]:
    # Looked up at call time, so the converter can be replaced (tests count its calls).
    from freqtail import bass

    return bass.convert_uint8_images(images, strength=strength, progress=progress)


def variant_folder(name: str, key: str) -> Path:
    return cache_dir() / "variants" / f"{name}-{key}"


def cached_bass_arrays(
    name: str, sources: dict[str, np.ndarray], strength: float = 1.0, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict]:
    """Converted copies of ``sources`` (``{split: uint8 (N, H, W, C)}``), from the cache or made now.

    Returns:
        ``({split: converted uint8 images}, meta)`` where ``meta`` holds ``key``, ``folder``,
        ``degenerate`` (per split) and ``reused`` (True when read from the cache).
    """
    from freqtail.data.embedded import SPLITS
    from freqtail.io import atomic_save_npy, load_npy

    strength = check_strength(strength)
    settings = _settings(strength)
    key_source = source_digest(sources) + repr(sorted(settings.items()))
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    folder = variant_folder(name, key)
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        import json

        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            out = {s: load_npy(folder / f"{s}_images.npy", f"{name} BaSS {s} image") for s in sources}
            if all(out[s].shape == sources[s].shape and out[s].dtype == np.uint8 for s in sources):
                return out, {**meta, "folder": str(folder), "reused": True}
        except (ValueError, OSError, KeyError, FreqtailError):
            pass  # a damaged cache entry is converted again
    out, degenerate = {}, {}
    for split in sorted(sources, key=lambda s: SPLITS.index(s) if s in SPLITS else 99):
        out[split], degenerate[split] = _convert(sources[split], strength, progress)
        atomic_save_npy(folder / f"{split}_images.npy", out[split])
    meta = {
        "dataset": name,
        "key": key,
        **settings,
        "degenerate": degenerate,
        "counts": {s: int(len(a)) for s, a in out.items()},
    }
    atomic_write_json(meta_path, meta)
    return out, {**meta, "folder": str(folder), "reused": False}


class FileVariantCache:
    """Per-file BaSS conversion with an on-disk cache (``source_hook`` of folder datasets).

    Converted working-resolution images are stored losslessly as PNG under
    ``cache_dir()/variants/<name>-files-<settings key>/<xx>/<file key>.png``; the settings key hashes
    the BaSS settings and ``resize_key`` (the working resize: a cached image is the BaSS of the
    *resized* image), the file key the source's absolute path, size and modification time, so an
    edited source is converted again. Safe with several DataLoader workers (atomic writes; identical
    content).

    Args:
        name: dataset name (folder name of the cache entry).
        strength: BaSS weight exponent in [0, 1].
        resize_key: :attr:`freqtail.data.augment.WorkingResize.key` of the resize applied before BaSS.
    """

    def __init__(self, name: str, strength: float = 1.0, resize_key: str = "stored") -> None:
        self.strength = check_strength(strength)
        settings = {**_settings(self.strength), "resize": str(resize_key)}
        key = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:16]
        self.folder = cache_dir() / "variants" / f"{name}-files-{key}"

    def path_for(self, source: str) -> Path:
        stat = os.stat(source)
        key = hashlib.sha256(
            f"{os.path.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        ).hexdigest()
        return self.folder / key[:2] / f"{key[2:34]}.png"

    def __call__(self, source: str, load) -> np.ndarray:
        """The BaSS image of file ``source``: uint8 (H, W, 3) from the cache, or ``_convert(load())``.

        ``load()`` returns the decoded file at the working resolution, uint8 (H, W, 3); it is only
        called on a cache miss.
        """
        from PIL import Image

        target = self.path_for(source)
        if target.is_file():
            try:
                with Image.open(target) as cached:
                    return np.array(cached.convert("RGB"), dtype=np.uint8)
            except OSError:
                pass  # damaged cache file: convert again
        converted, _ = _convert(load()[None], self.strength, progress=False)
        with atomic_path(target) as tmp:
            Image.fromarray(converted[0]).save(tmp, format="PNG")
        return converted[0]

    def __getstate__(self):  # picklable for DataLoader workers
        return self.__dict__


# ----------------------------------------------------------------------------------------- writing


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
    from freqtail.data.registry import canonical_name

    name = canonical_name(name)
    strength = check_strength(strength)
    out = Path(out_dir).expanduser()
    start = time.perf_counter()
    if name == "embedded":
        splits, degenerate = _write_embedded(root, out, strength, progress)
    elif name in ("cifar10", "cifar100"):
        splits, degenerate = _write_cifar(name, root, out, strength, progress)
    elif name == "tiny-imagenet":
        splits, degenerate = _write_tiny_imagenet(root, out, strength, progress)
    else:
        splits, degenerate = _write_imagenet(name, root, out, strength, progress)
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
    from freqtail.data.embedded import SPLITS, ensure_embedded, read_embedded_folder, write_embedded_folder

    folder = Path(root) if root is not None else ensure_embedded()
    arrays: dict[str, np.ndarray] = {}
    splits, degenerate = {}, 0
    for split in SPLITS:
        images, labels, _ = read_embedded_folder(folder, split)
        converted, n = _convert(images, strength, progress)
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
    import pickle

    from freqtail.data.cifar import CIFAR_LAYOUTS, load_cifar
    from freqtail.data.safe_pickle import safe_load_pickle
    from freqtail.io import atomic_write_bytes

    layout = CIFAR_LAYOUTS[name]
    load_cifar(name, "train", root)  # validates every file with a clear error before writing anything
    load_cifar(name, "test", root)
    from freqtail.data.cifar import cifar_folder

    source = cifar_folder(name, root)
    target = out / layout.folder
    target.mkdir(parents=True, exist_ok=True)
    splits, degenerate = {"train": 0, "test": 0}, 0
    for split, files in (("train", layout.train_files), ("test", layout.test_files)):
        for file_name in files:
            batch = safe_load_pickle(source / file_name, f"{name} batch file")
            key = next(k for k in batch if (k.decode("latin1") if isinstance(k, bytes) else k) == "data")
            images = batch[key].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            converted, n = _convert(np.ascontiguousarray(images), strength, progress)
            batch[key] = np.ascontiguousarray(converted.transpose(0, 3, 1, 2).reshape(len(converted), -1))
            atomic_write_bytes(target / file_name, pickle.dumps(batch, protocol=2))
            splits[split] += len(converted)
            degenerate += n
    with atomic_path(target / layout.meta_file) as tmp:
        shutil.copyfile(source / layout.meta_file, tmp)
    return splits, degenerate


def _folder_resize(name: str):
    from freqtail.data.augment import working_resize
    from freqtail.data.registry import dataset_info

    info = dataset_info(name)
    return working_resize(info.preset, info.image_size)


def _convert_files(pairs: list[tuple[str, Path]], strength: float, progress: bool, desc: str, resize) -> int:
    """Resize image files to the working resolution, convert them and write ``target.png``.

    Returns the number of degenerate images.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from freqtail.data.folders import read_rgb

    degenerate = 0
    for source, target in tqdm(pairs, desc=desc, unit="img", disable=not progress, dynamic_ncols=True):
        converted, n = _convert(resize(read_rgb(source))[None], strength, progress=False)
        degenerate += n
        with atomic_path(target) as tmp:
            Image.fromarray(converted[0]).save(tmp, format="PNG")
    return degenerate


def _png_name(path: str) -> str:
    return Path(path).stem + ".png"


def _write_tiny_imagenet(root, out: Path, strength: float, progress: bool) -> tuple[dict, int]:
    from freqtail.data.folders import TINY_IMAGENET_FOLDER, tiny_imagenet_folder, tiny_imagenet_samples
    from freqtail.io import atomic_write_text

    source = tiny_imagenet_folder(root)
    train, _, wnids = tiny_imagenet_samples(root, "train")
    val, _, _ = tiny_imagenet_samples(root, "test")
    target = out / TINY_IMAGENET_FOLDER
    for meta_file in ("wnids.txt", "words.txt"):
        if (source / meta_file).is_file():
            with atomic_path(target / meta_file) as tmp:
                shutil.copyfile(source / meta_file, tmp)
    pairs = [(p, target / "train" / wnids[label] / "images" / _png_name(p)) for p, label in train]
    resize = _folder_resize("tiny-imagenet")
    degenerate = _convert_files(pairs, strength, progress, "BaSS train", resize)
    val_pairs = [(p, target / "val" / "images" / _png_name(p)) for p, _ in val]
    degenerate += _convert_files(val_pairs, strength, progress, "BaSS val", resize)
    lines = [f"{_png_name(p)}\t{wnids[label]}" for p, label in val]
    atomic_write_text(target / "val" / "val_annotations.txt", "\n".join(lines) + "\n")
    return {"train": len(train), "test": len(val)}, degenerate


def _write_imagenet(name: str, root, out: Path, strength: float, progress: bool) -> tuple[dict, int]:
    from freqtail.data.folders import imagenet_samples, imagenet_split_folder, restricted_imagenet_samples

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
        degenerate += _convert_files(pairs, strength, progress, f"BaSS {part}", resize)
        splits[split] = len(samples)
    root_path = Path(root).expanduser()
    for names_file in ("LOC_synset_mapping.txt", "words.txt", "synset_words.txt"):
        if (root_path / names_file).is_file():
            with atomic_path(out / names_file) as tmp:
                shutil.copyfile(root_path / names_file, tmp)
    return splits, degenerate
