"""Folder datasets: Tiny-ImageNet, ImageNet (ImageFolder layout) and Restricted-ImageNet.

Layouts under ``root`` (``root`` may also be the named folder itself for Tiny-ImageNet)::

    tiny-imagenet-200/wnids.txt, words.txt, train/<wnid>/images/*.JPEG,
                      val/images/*.JPEG, val/val_annotations.txt
    <root>/train/<wnid>/*.JPEG, <root>/val/<wnid>/*.JPEG          (ImageNet, Restricted-ImageNet)

Labels follow the sorted wnids (torchvision ``ImageFolder`` order). Restricted-ImageNet keeps the 9
super-classes of Tsipras et al. 2019 over the sorted 1000 ImageNet wnids (inclusive index ranges
of the ``robustness`` library). Images are decoded as torchvision's ``default_loader`` does (PIL, RGB),
then resized to the working resolution of the augmentation preset
(:class:`freqtail.data.augment.WorkingResize`) before anything else sees them, BaSS included.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import utils as torchvision_utils
from torchvision.datasets.folder import make_dataset

from freqtail.data.cache_files import PNG_DIGEST_KEY, check_png_digest
from freqtail.errors import DatasetNotFoundError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGENET_HOW_TO = (
    "ImageNet cannot be downloaded automatically: get ILSVRC2012 from https://image-net.org "
    "and arrange it as "
    "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG"
)

#: Restricted-ImageNet super-classes: (name, first, last) inclusive indices into the sorted ImageNet wnids.
RESTRICTED_IMAGENET_RANGES: tuple[tuple[str, int, int], ...] = (
    ("dog", 151, 268),
    ("cat", 281, 285),
    ("frog", 30, 32),
    ("turtle", 33, 37),
    ("bird", 80, 100),
    ("primate", 365, 382),
    ("fish", 389, 397),
    ("crab", 118, 121),
    ("insect", 300, 319),
)
IMAGENET_NUM_CLASSES = 1000

Sample = tuple[str, int]


class FolderImageDataset(Dataset):
    """Image files with integer labels; items ``(float32 (C, H, W) in [0, 1], int)``.

    One item: decode (RGB) -> ``resize`` (working resolution) -> ``source_hook`` -> ``transform``.

    Args:
        samples: ``(path, label)`` pairs.
        classes: class names, index = label.
        transform: callable on a uint8 (C, H, W) tensor (must produce ``image_size``).
        image_size: (H, W) of the items after ``transform``.
        name: dataset name for messages.
        source_hook: optional ``(path, load) -> uint8 (H, W, 3)`` that replaces the working-resolution
            image; ``load()`` decodes and resizes the file (the BaSS "dataset" variant's cache calls
            it only on a cache miss).
        resize: optional ``uint8 (H, W, 3) -> uint8 (H', W', 3)`` deterministic resize to the
            working resolution (:class:`freqtail.data.augment.WorkingResize`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
        image_size: tuple[int, int],
        name: str,
        source_hook: Callable[[str, Callable[[], np.ndarray]], np.ndarray] | None = None,
        resize: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.classes = list(classes)
        self.transform = transform
        self.image_size = tuple(image_size)
        self.name = name
        self.source_hook = source_hook
        self.resize = resize

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def decode(self, index: int) -> np.ndarray:
        """The decoded file resized to the working resolution: uint8 (H, W, 3)."""
        image = read_rgb(self.samples[index][0], self.name)
        return self.resize(image) if self.resize is not None else image

    def load_uint8(self, index: int) -> np.ndarray:
        """The working-resolution image (after ``source_hook``) as uint8 (H, W, 3), before ``transform``."""
        if self.source_hook is None:
            return self.decode(index)
        return self.source_hook(self.samples[index][0], lambda: self.decode(index))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.ascontiguousarray(self.load_uint8(index))).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        if image.dtype == torch.uint8:
            image = image.to(torch.float32).div_(255.0)
        return image, self.targets[index]

    def __repr__(self) -> str:
        return (
            f"FolderImageDataset(name={self.name!r}, n={len(self)}, image_size={self.image_size}, "
            f"classes={self.num_classes})"
        )


def read_rgb(path: str | os.PathLike, dataset: str = "dataset") -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) as torchvision's ``default_loader`` does (PIL, RGB).

    A PNG with the pixel digest of :func:`freqtail.data.cache_files.write_verified_png` (the PNGs of
    a copy written by ``freqtail bass --dataset``) is checked against it.

    Raises:
        DatasetNotFoundError: missing, truncated or not an image, or more pixels than PIL's
            ``Image.MAX_IMAGE_PIXELS`` (where PIL only warns of a possible decompression bomb, and
            beyond twice that, where it refuses); DamagedFileError (a subclass): pixels that differ
            from their recorded digest.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:  # torchvision's default_loader (PIL), keeping the PNG text
                recorded = opened.info.get(PNG_DIGEST_KEY)
                pixels = np.array(opened.convert("RGB"), dtype=np.uint8)  # a writable copy (torch.from_numpy)
    except FileNotFoundError:
        raise DatasetNotFoundError(f"The {dataset} image file {path} does not exist.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetNotFoundError(
            f"The {dataset} image file {path} has more than {Image.MAX_IMAGE_PIXELS} pixels, PIL's limit "
            "against decompression bombs; replace it with an image of a usual size."
        ) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetNotFoundError(
            f"The {dataset} image file {path} is truncated or not a readable image ({err}); replace it."
        ) from None
    check_png_digest(path, pixels, recorded, required=False)  # the PNGs of converted copies carry one
    return pixels


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _first_name(words: str) -> str:
    return words.split(",")[0].strip() or words.strip()


def _unique_names(names: list[str], wnids: list[str]) -> list[str]:
    """Make class names unique by appending the wnid to repeated names (ImageNet has e.g. two 'crane')."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [f"{n} ({w})" if counts[n] > 1 else n for n, w in zip(names, wnids, strict=True)]


def _read_words(path: Path) -> dict[str, str]:
    """``wnid<TAB>names`` lines (Tiny-ImageNet words.txt; ImageNet LOC_synset_mapping.txt uses a space)."""
    mapping = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.replace("\t", " ", 1).split(" ", 1)
            if len(parts) == 2 and parts[0]:
                mapping[parts[0].strip()] = _first_name(parts[1])
    return mapping


def _read_dataset_text(path: Path, dataset: str) -> str:
    """A dataset's UTF-8 listing (wnids, annotations), whose every byte matters for the labels.

    Raises:
        DatasetNotFoundError: the file is not UTF-8 text (one sentence naming the byte's offset).
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DatasetNotFoundError(
            f"The {dataset} file {path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
            f"{err.start}); download it again."
        ) from None


# ----------------------------------------------------------------------------------------- Tiny-ImageNet


def tiny_imagenet_folder(root: str | os.PathLike | None) -> Path:
    if root is None:
        raise DatasetNotFoundError(
            f"The tiny-imagenet dataset needs a data root: pass --data-root DIR (root=DIR) where DIR holds "
            f"{TINY_IMAGENET_FOLDER}/; unzip {TINY_IMAGENET_URL} there "
            "(or run 'freqtail download tiny-imagenet --data-root DIR')."
        )
    root = Path(root).expanduser()
    if root.name == TINY_IMAGENET_FOLDER or (root / "wnids.txt").is_file():
        return root
    return root / TINY_IMAGENET_FOLDER


def tiny_imagenet_samples(
    root: str | os.PathLike | None, split: str, download: bool = False
) -> tuple[list[Sample], list[str], list[str]]:
    """``(samples, class names, wnids)`` of Tiny-ImageNet's train or val ("test") split."""
    folder = tiny_imagenet_folder(root)
    if download and not (folder / "wnids.txt").is_file():
        torchvision_utils.download_and_extract_archive(TINY_IMAGENET_URL, str(folder.parent))
    part = "train" if split == "train" else "val"
    expected = ["wnids.txt", part] + (["val/val_annotations.txt"] if part == "val" else [])
    missing = [e for e in expected if not (folder / e).exists()]
    if missing:
        raise DatasetNotFoundError(
            f"The tiny-imagenet dataset was not found: expected {', '.join(missing)} in {folder}; "
            f"unzip {TINY_IMAGENET_URL} into {folder.parent} "
            "(or run 'freqtail download tiny-imagenet --data-root DIR')."
        )
    wnids = sorted(
        {w.strip() for w in _read_dataset_text(folder / "wnids.txt", "tiny-imagenet").split() if w.strip()}
    )
    if not wnids:
        raise DatasetNotFoundError(
            f"The tiny-imagenet file {folder / 'wnids.txt'} is empty; download it again."
        )
    index = {w: i for i, w in enumerate(wnids)}
    words = _read_words(folder / "words.txt")
    classes = _unique_names([words.get(w, w) for w in wnids], wnids)
    samples: list[Sample] = []
    if part == "train":
        for wnid in wnids:
            image_dir = folder / "train" / wnid / "images"
            if image_dir.is_dir():
                names = sorted(n for n in os.listdir(image_dir) if _is_image(n))
                samples.extend((str(image_dir / n), index[wnid]) for n in names)
    else:
        annotations = folder / "val" / "val_annotations.txt"
        for line_no, line in enumerate(_read_dataset_text(annotations, "tiny-imagenet").splitlines(), 1):
            fields = line.split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1].strip() not in index:
                raise DatasetNotFoundError(
                    f"The tiny-imagenet file {annotations} is damaged at line {line_no} "
                    "(expected 'file<TAB>wnid' with a wnid from wnids.txt); download it again."
                )
            samples.append((str(folder / "val" / "images" / fields[0].strip()), index[fields[1].strip()]))
    if not samples:
        raise DatasetNotFoundError(
            f"The tiny-imagenet {part} split in {folder} holds no images; unzip {TINY_IMAGENET_URL} again."
        )
    return samples, classes, wnids


# ----------------------------------------------------------------------------------------- ImageNet


def imagenet_split_folder(root: str | os.PathLike | None, split: str, name: str = "imagenet") -> Path:
    part = "train" if split == "train" else "val"
    if root is None:
        raise DatasetNotFoundError(
            f"The {name} dataset needs a data root: pass --data-root DIR (root=DIR) where DIR holds "
            f"train/ and val/; {IMAGENET_HOW_TO}."
        )
    folder = Path(root).expanduser() / part
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"The {name} dataset was not found: expected the folder {part}/ with one sub-folder per wnid in "
            f"{Path(root).expanduser()}; {IMAGENET_HOW_TO}."
        )
    return folder


def _class_folders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def _scan(folder: Path, class_to_idx: dict[str, int], name: str) -> list[Sample]:
    samples = make_dataset(str(folder), class_to_idx, extensions=IMAGE_EXTENSIONS, allow_empty=True)
    if not samples:
        raise DatasetNotFoundError(
            f"The {name} folder {folder} holds no image files in its class folders; {IMAGENET_HOW_TO}."
        )
    return samples


def _imagenet_names(root: Path, wnids: list[str]) -> list[str]:
    words: dict[str, str] = {}
    for candidate in ("LOC_synset_mapping.txt", "words.txt", "synset_words.txt"):
        words.update(_read_words(root / candidate))
    return _unique_names([words.get(w, w) for w in wnids], wnids)


def imagenet_samples(root: str | os.PathLike | None, split: str) -> tuple[list[Sample], list[str], list[str]]:
    """``(samples, class names, wnids)`` of an ImageFolder-layout ImageNet split (sorted wnids = labels).

    Class names come from ``LOC_synset_mapping.txt`` / ``words.txt`` / ``synset_words.txt`` in ``root``
    when present, else the wnids.
    """
    folder = imagenet_split_folder(root, split)
    wnids = _class_folders(folder)
    if not wnids:
        raise DatasetNotFoundError(
            f"The imagenet folder {folder} has no class sub-folders; {IMAGENET_HOW_TO}."
        )
    samples = _scan(folder, {w: i for i, w in enumerate(wnids)}, "imagenet")
    return samples, _imagenet_names(Path(root).expanduser(), wnids), wnids


def restricted_imagenet_samples(root: str | os.PathLike | None, split: str) -> tuple[list[Sample], list[str]]:
    """``(samples, super-class names)`` of Restricted-ImageNet (9 classes) from a full ImageNet tree.

    Raises:
        DatasetNotFoundError: missing tree, or not exactly 1000 class folders (the index ranges only
            mean something over the full sorted ImageNet-1k wnid list).
    """
    folder = imagenet_split_folder(root, split, name="restricted-imagenet")
    wnids = _class_folders(folder)
    if len(wnids) != IMAGENET_NUM_CLASSES:
        raise DatasetNotFoundError(
            f"Restricted-ImageNet needs the full ImageNet-1k {folder.name}/ folder with 1000 class folders "
            f"(its class ranges index the sorted wnids), but {folder} has {len(wnids)}; {IMAGENET_HOW_TO}."
        )
    class_to_idx = {
        wnids[i]: label
        for label, (_, first, last) in enumerate(RESTRICTED_IMAGENET_RANGES)
        for i in range(first, last + 1)
    }
    samples = _scan(folder, class_to_idx, "restricted-imagenet")
    return samples, [name for name, _, _ in RESTRICTED_IMAGENET_RANGES]
