"""The embedded default dataset: 32x32 RGB crops of the photographs bundled with scikit-image.

It is what the demo and the tests use when no data is given. It is built offline, deterministically,
in about a second, and cached under ``cache_dir()/embedded/<EMBEDDED_VERSION>/``.

Design (documented in docs/guides/data.md):

* 16 classes, one per bundled photograph (:data:`EMBEDDED_CLASSES`); several are confusable on
  purpose (the grey textures brick / grass / gravel; three microscopy images; two astronomy images).
* Each photograph is cut into a 4 x 4 grid of tiles. One tile per grid row and column (a shifted
  diagonal, :func:`is_test_tile`) belongs to the test split, the other 12 to the train split. Every
  tile is shrunk by ``TILE_GAP // 2`` pixels on each side, so tiles of different splits are at least
  ``TILE_GAP`` pixels apart and no source pixel is shared between train and test.
* A sample is a square crop inside one tile, side log-uniform in [32, 160] px (capped by the tile),
  uniformly placed, downsampled to 32 x 32 with PIL's antialiased Lanczos filter (natural-image
  spectrum, no aliasing), horizontally flipped with probability 1/2, then given a mild photometric
  jitter (brightness, contrast, saturation, a per-channel white-balance gain). Nearly flat crops
  (mean per-channel standard deviation < 4 grey levels after downsampling, e.g. the black border
of the retina photograph) are redrawn.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from freqtail.data.cache_files import DIGESTS_KEY, load_array, recorded_digests, report_rebuilt, save_array
from freqtail.errors import DatasetNotFoundError, InputError
from freqtail.io import atomic_write_json, cache_dir, load_npy
from freqtail.sample_photos import load_photo

#: Bump whenever the construction below changes; it names the cache folder.
EMBEDDED_VERSION = "v1"

#: (source photograph, human-readable class name); the label is the index in this tuple.
EMBEDDED_CLASSES: tuple[tuple[str, str], ...] = (
    ("astronaut", "astronaut"),
    ("camera", "cameraman"),
    ("chelsea", "cat"),
    ("coffee", "coffee cup"),
    ("rocket", "rocket"),
    ("brick", "brick wall"),
    ("grass", "grass"),
    ("gravel", "gravel"),
    ("coins", "coins"),
    ("moon", "moon surface"),
    ("hubble_deep_field", "galaxies"),
    ("retina", "retina"),
    ("immunohistochemistry", "stained tissue"),
    ("cell", "cell micrograph"),
    ("clock", "clock"),
    ("motorcycle", "motorcycle"),
)

IMAGE_SIZE = 32
GRID = 4
TILE_GAP = 8
MIN_CROP, MAX_CROP = 32, 160
MIN_CHANNEL_STD = 2.0
DEFAULT_TRAIN_PER_CLASS = 400
DEFAULT_TEST_PER_CLASS = 100
DEFAULT_SEED = 0
SPLITS = ("train", "test")

#: Columns of the per-image construction record (``<split>_boxes.npy``, int32).
BOX_COLUMNS = ("label", "tile_row", "tile_col", "top", "left", "side", "flipped")


def is_test_tile(row: int, col: int) -> bool:
    """True for the tiles of the test split: one per row and per column of the 4 x 4 grid."""
    return (col - row) % GRID == 1


@dataclass(frozen=True)
class Tile:
    """The usable pixel rectangle [top, bottom) x [left, right) of one grid tile of a photograph."""

    row: int
    col: int
    top: int
    bottom: int
    left: int
    right: int


def photo_tiles(height: int, width: int, split: str) -> list[Tile]:
    """Tiles of an ``height`` x ``width`` photograph belonging to ``split``, shrunk by the gap."""
    rows = np.linspace(0, height, GRID + 1).round().astype(int)
    cols = np.linspace(0, width, GRID + 1).round().astype(int)
    half = TILE_GAP // 2
    tiles = []
    for r in range(GRID):
        for c in range(GRID):
            if is_test_tile(r, c) != (split == "test"):
                continue
            tiles.append(Tile(r, c, rows[r] + half, rows[r + 1] - half, cols[c] + half, cols[c + 1] - half))
    return tiles


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild photometric jitter of a float (H, W, 3) image in 0..255 (pixel-wise: no spatial change)."""
    grey = image @ np.array([0.299, 0.587, 0.114])
    image = grey[..., None] + rng.uniform(0.6, 1.4) * (image - grey[..., None])  # saturation
    image = image.mean() + rng.uniform(0.7, 1.3) * (image - image.mean())  # contrast
    image = image * rng.uniform(0.75, 1.25)  # brightness
    image = image * rng.uniform(0.92, 1.08, size=3)  # white balance
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _sample_split(label: int, photo: np.ndarray, split: str, count: int, seed: int):
    rng = np.random.default_rng([seed, label, SPLITS.index(split)])
    tiles = photo_tiles(photo.shape[0], photo.shape[1], split)
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    boxes = np.empty((count, len(BOX_COLUMNS)), np.int32)
    made = 0
    while made < count:
        tile = tiles[int(rng.integers(len(tiles)))]
        limit = min(MAX_CROP, tile.bottom - tile.top, tile.right - tile.left)
        side = int(round(MIN_CROP * (limit / MIN_CROP) ** rng.uniform()))
        top = int(rng.integers(tile.top, tile.bottom - side + 1))
        left = int(rng.integers(tile.left, tile.right - side + 1))
        flipped = bool(rng.integers(2))
        crop = photo[top : top + side, left : left + side]
        small = Image.fromarray(crop).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        small = np.asarray(small, dtype=np.float64)
        if flipped:
            small = small[:, ::-1]
        image = _jitter(small, rng)
        if image.std(axis=(0, 1)).min() < MIN_CHANNEL_STD:
            continue
        images[made] = image
        boxes[made] = (label, tile.row, tile.col, top, left, side, flipped)
        made += 1
    return images, boxes


def build_embedded_arrays(
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    test_per_class: int = DEFAULT_TEST_PER_CLASS,
    seed: int = DEFAULT_SEED,
) -> dict[str, np.ndarray]:
    """Build the embedded dataset in memory (deterministic for given arguments).

    Returns:
        ``{"<split>_images": uint8 (N, 32, 32, 3), "<split>_labels": int64 (N,),
        "<split>_boxes": int32 (N, 7)}`` for split in ("train", "test"); class-major order. The
        boxes record where each image came from (columns :data:`BOX_COLUMNS`, pixels of the source
        photograph before downsampling).
    """
    if train_per_class < 1 or test_per_class < 1:
        raise InputError("The embedded dataset needs at least one train and one test image per class.")
    out: dict[str, np.ndarray] = {}
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        parts = [
            _sample_split(label, load_photo(photo), split, count, seed)
            for label, (photo, _) in enumerate(EMBEDDED_CLASSES)
        ]
        out[f"{split}_images"] = np.concatenate([p[0] for p in parts])
        out[f"{split}_boxes"] = np.concatenate([p[1] for p in parts])
        out[f"{split}_labels"] = out[f"{split}_boxes"][:, 0].astype(np.int64)
    return out


def class_names() -> list[str]:
    """Human-readable class names of the embedded dataset, index = label."""
    return [name for _, name in EMBEDDED_CLASSES]


def embedded_cache_folder(
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS, test_per_class: int = DEFAULT_TEST_PER_CLASS
) -> Path:
    """Cache folder of the embedded dataset; non-default sizes get their own sub-folder."""
    name = EMBEDDED_VERSION
    if (train_per_class, test_per_class) != (DEFAULT_TRAIN_PER_CLASS, DEFAULT_TEST_PER_CLASS):
        name = f"{EMBEDDED_VERSION}-{train_per_class}x{test_per_class}"
    return cache_dir() / "embedded" / name


def write_embedded_folder(
    folder: str | os.PathLike, arrays: dict[str, np.ndarray], extra_meta: dict | None = None
) -> Path:
    """Write embedded-layout arrays to ``folder`` atomically; ``meta.json`` is written last.

    Layout: ``<split>_images.npy`` uint8 (N, 32, 32, 3), ``<split>_labels.npy`` int64 (N,),
    optional ``<split>_boxes.npy``, and ``meta.json`` (version, classes, counts, and the digest of
    every array, checked when it is read: :mod:`freqtail.data.cache_files`). A folder without
    ``meta.json`` is incomplete.
    """
    folder = Path(folder)
    digests = {f"{key}.npy": save_array(folder / f"{key}.npy", a).to_json() for key, a in arrays.items()}
    meta = {
        "format": "freqtail-embedded",
        "version": EMBEDDED_VERSION,
        "classes": class_names(),
        "counts": {split: int(len(arrays[f"{split}_labels"])) for split in SPLITS},
        "box_columns": list(BOX_COLUMNS),
        "grid": GRID,
        "tile_gap": TILE_GAP,
        **(extra_meta or {}),
        DIGESTS_KEY: digests,
    }
    atomic_write_json(folder / "meta.json", meta)
    return folder


def ensure_embedded(
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS, test_per_class: int = DEFAULT_TEST_PER_CLASS
) -> Path:
    """Return the cache folder of the embedded dataset, building it first if it is absent or damaged.

    Every cached array is checked against the digest recorded when it was written; a damaged entry
    (or one written before digests were recorded) is rebuilt, and a WARNING line on the
    ``freqtail.cache`` logger says so.
    """
    folder = embedded_cache_folder(train_per_class, test_per_class)
    if not (folder / "meta.json").is_file():
        return write_embedded_folder(folder, build_embedded_arrays(train_per_class, test_per_class))
    try:
        _verify_cache_entry(folder)
        return folder
    except DatasetNotFoundError as err:  # DamagedFileError included
        damage = err
    folder = write_embedded_folder(folder, build_embedded_arrays(train_per_class, test_per_class))
    report_rebuilt(damage, f"the embedded dataset cache {folder}")
    return folder


def _verify_cache_entry(folder: Path) -> None:
    """Check every array of the cache entry ``folder`` against its recorded digest.

    Raises:
        DatasetNotFoundError: ``meta.json`` damaged or without digests; DamagedFileError: an array.
    """
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        meta = None
    digests = recorded_digests(meta)
    needed = {f"{split}_{part}.npy" for split in SPLITS for part in ("images", "labels")}
    if digests is None or not needed <= set(digests):
        raise DatasetNotFoundError(
            f"The meta.json in {folder} has no complete record of the arrays' digests "
            "(damaged, or written by an older freqtail)."
        )
    for file_name, expected in digests.items():
        load_array(folder / file_name, expected)


def read_embedded_folder(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split of an embedded-layout folder: ``(uint8 (N, H, W, 3), int64 (N,), classes)``.

    Arrays whose digests ``meta.json`` records (every folder :func:`write_embedded_folder` wrote)
    are checked against them; a folder without that record is read unchecked.

    Raises:
        DatasetNotFoundError: the folder, its ``meta.json`` or an array is missing or damaged;
            :class:`~freqtail.errors.DamagedFileError` (a subclass) where an array differs from
            its recorded digest.
    """
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise DatasetNotFoundError(
            f"No embedded-format dataset was found in {folder} (meta.json is missing); "
            "write one with `freqtail bass --dataset embedded --out DIR` "
            "or omit --data-root to use the built-in set."
        )
    damaged = f"The embedded-format dataset in {folder} is damaged"
    again = "delete the folder and build or write it again"
    advice = "write the folder again (a BaSS copy with `freqtail bass --dataset embedded --out DIR`)"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        classes = meta["classes"]
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise ValueError("meta.json's classes is not a list of names")
        digests = recorded_digests(meta)
        if digests is None:  # written by hand or by a freqtail older than the digests: unchecked
            images = load_npy(folder / f"{split}_images.npy", what=f"embedded {split} image")
            labels = load_npy(folder / f"{split}_labels.npy", what=f"embedded {split} label")
        else:
            images = load_array(folder / f"{split}_images.npy", digests[f"{split}_images.npy"], advice)
            labels = load_array(folder / f"{split}_labels.npy", digests[f"{split}_labels.npy"], advice)
    except (InputError, ValueError, KeyError, TypeError) as err:
        raise DatasetNotFoundError(f"{damaged} ({str(err).rstrip('.')}); {again}.") from None
    if len(set(classes)) != len(classes):
        raise DatasetNotFoundError(f"{damaged} (meta.json names a class twice); {again}.")
    if labels.dtype.kind not in "iu":  # float labels would be truncated to classes without a word
        raise DatasetNotFoundError(
            f"{damaged} ({split}_labels.npy holds {labels.dtype} values, not integer labels); {again}."
        )
    counted = meta.get("counts", {}).get(split) if isinstance(meta.get("counts"), dict) else None
    if counted is not None and counted != len(labels):
        raise DatasetNotFoundError(
            f"{damaged} (meta.json counts {counted!r} {split} images, the arrays hold "
            f"{len(labels)}); {again}."
        )
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or labels.ndim != 1
        or len(images) != len(labels)
        or (len(labels) and (labels.min() < 0 or labels.max() >= len(classes)))
    ):
        raise DatasetNotFoundError(
            f"The embedded-format dataset in {folder} is damaged (the {split} arrays have shapes "
            f"{images.shape} and {labels.shape}); delete the folder and build or write it again."
        )
    return images, labels.astype(np.int64, copy=False), classes
