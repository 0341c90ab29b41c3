"""The embedded default dataset: size, determinism, train/test disjointness, natural statistics, cache."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from freqtail.data import embedded
from freqtail.data.cache_files import DIGESTS_KEY
from freqtail.errors import DatasetNotFoundError
from freqtail.io import atomic_save_npy

#: The module's tests share one worker (tests/conftest.py): the full set below is synthesised once.
pytestmark = pytest.mark.xdist_group("embedded-full")


@pytest.fixture(scope="module")
def full():
    return embedded.build_embedded_arrays()


def test_size_classes_and_layout(full):
    train, test = full["train_images"], full["test_images"]
    assert train.dtype == np.uint8 and test.dtype == np.uint8
    assert train.shape[1:] == (32, 32, 3) and test.shape[1:] == (32, 32, 3)
    assert len(train) >= 5000 and len(test) >= 1000
    names = embedded.class_names()
    assert len(names) >= 10 and len(set(names)) == len(names)
    assert all(name.replace(" ", "").isalpha() for name in names)  # human-readable words, no ids
    for split in ("train", "test"):
        counts = np.bincount(full[f"{split}_labels"], minlength=len(names))
        assert counts.min() == counts.max() > 0  # balanced, every class present


def _pairwise_separation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chebyshev gap in pixels between square boxes (rows: top, left, side); <= 0 means overlap."""
    top_a, left_a, side_a = (a[:, i, None] for i in range(3))
    top_b, left_b, side_b = (b[None, :, i] for i in range(3))
    gap_y = np.maximum(top_b - (top_a + side_a), top_a - (top_b + side_b))
    gap_x = np.maximum(left_b - (left_a + side_a), left_a - (left_b + side_b))
    return np.maximum(gap_x, gap_y)


def test_train_and_test_share_no_source_pixel(full):
    cols = {c: i for i, c in enumerate(embedded.BOX_COLUMNS)}
    geometry = [cols["top"], cols["left"], cols["side"]]
    for label, (photo_name, _) in enumerate(embedded.EMBEDDED_CLASSES):
        train = full["train_boxes"][full["train_boxes"][:, cols["label"]] == label][:, geometry]
        test = full["test_boxes"][full["test_boxes"][:, cols["label"]] == label][:, geometry]
        # at least TILE_GAP pixels between any train crop and any test crop of the same photograph
        assert _pairwise_separation(train, test).min() >= embedded.TILE_GAP, photo_name
        h, w = embedded.load_photo(photo_name).shape[:2]
        for boxes in (train, test):
            assert boxes[:, 0].min() >= 0 and (boxes[:, 0] + boxes[:, 2]).max() <= h
            assert boxes[:, 1].min() >= 0 and (boxes[:, 1] + boxes[:, 2]).max() <= w
            assert boxes[:, 2].min() >= embedded.IMAGE_SIZE  # only downsampling
    train_hashes = {hashlib.sha1(image.tobytes()).digest() for image in full["train_images"]}
    assert not any(hashlib.sha1(image.tobytes()).digest() in train_hashes for image in full["test_images"])


def test_boxes_describe_where_each_image_came_from(full):
    """Re-cropping the recorded box matches the stored image up to the (per-image affine) jitter."""
    cols = {c: i for i, c in enumerate(embedded.BOX_COLUMNS)}
    rng = np.random.default_rng(1)
    correlations = []
    for index in rng.choice(len(full["test_images"]), 64, replace=False):
        box = full["test_boxes"][index]
        photo = embedded.load_photo(embedded.EMBEDDED_CLASSES[box[cols["label"]]][0])
        top, left, side = box[cols["top"]], box[cols["left"]], box[cols["side"]]
        crop = np.asarray(
            Image.fromarray(photo[top : top + side, left : left + side]).resize((32, 32)), float
        )
        if box[cols["flipped"]]:
            crop = crop[:, ::-1]
        stored = full["test_images"][index].astype(float)
        correlations.append(np.corrcoef(crop.mean(axis=2).ravel(), stored.mean(axis=2).ravel())[0, 1])
    assert np.median(correlations) > 0.95


def test_deterministic_build_is_byte_identical(tmp_path, monkeypatch):
    digests = []
    for folder in ("a", "b"):
        monkeypatch.setenv("FREQTAIL_CACHE", str(tmp_path / folder))
        built = embedded.ensure_embedded(train_per_class=12, test_per_class=4)
        assert built.is_relative_to(tmp_path / folder)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(built.iterdir())})
    assert digests[0] == digests[1]
    assert {"meta.json", "train_images.npy", "test_images.npy", "train_labels.npy"} <= set(digests[0])


@pytest.mark.slow
def test_full_cached_build_matches_in_memory_build(full):
    folder = embedded.ensure_embedded()
    for split in ("train", "test"):
        images, labels, classes = embedded.read_embedded_folder(folder, split)
        assert np.array_equal(images, full[f"{split}_images"])
        assert np.array_equal(labels, full[f"{split}_labels"])
        assert classes == embedded.class_names()


def test_spectrum_has_a_long_tail(full):
    from freqtail.spectrum import summarize

    summary = summarize(full["test_images"])
    assert summary.alpha_rings > 1.0  # power falls faster than 1/k over the full rings
    assert summary.boundary_fraction_nyquist < 0.5  # 80% of the power below half the Nyquist radius
    # an independent numpy computation of the band proportions (DC excluded) agrees on the boundary
    x = full["test_images"].astype(np.float64).transpose(0, 3, 1, 2)
    power = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))) ** 2
    yy, xx = np.indices((32, 32))
    band = np.floor(np.hypot(yy - 16, xx - 16)).astype(int)
    per_band = np.stack([power[..., band == k].sum(-1) for k in range(band.max() + 1)], -1)
    per_band[..., 0] = 0
    pi = (per_band / per_band.sum(-1, keepdims=True)).mean(axis=(0, 1))
    boundary = int(np.searchsorted(np.cumsum(pi), 0.8, side="right"))
    assert boundary == summary.boundary_band


def test_registry_mean_and_std_match_a_fresh_build(full):
    from freqtail.data import dataset_info

    info = dataset_info("embedded")
    x = full["train_images"] / 255.0
    assert np.allclose(info.mean, x.mean(axis=(0, 1, 2)), atol=2e-3)
    assert np.allclose(info.std, x.std(axis=(0, 1, 2)), atol=2e-3)
    assert info.num_classes == len(embedded.class_names())


def test_cache_is_reused_and_a_damaged_cache_is_rebuilt(monkeypatch):
    folder = embedded.ensure_embedded(train_per_class=3, test_per_class=2)
    stamp = (folder / "train_images.npy").stat().st_mtime_ns
    build = embedded.build_embedded_arrays
    monkeypatch.setattr(
        embedded, "build_embedded_arrays", lambda *a, **k: pytest.fail("rebuilt a good cache")
    )
    assert embedded.ensure_embedded(train_per_class=3, test_per_class=2) == folder
    assert (folder / "train_images.npy").stat().st_mtime_ns == stamp
    data = (folder / "test_images.npy").read_bytes()
    (folder / "test_images.npy").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(embedded, "build_embedded_arrays", build)
    embedded.ensure_embedded(train_per_class=3, test_per_class=2)
    assert embedded.read_embedded_folder(folder, "test")[0].shape == (
        2 * len(embedded.EMBEDDED_CLASSES),
        32,
        32,
        3,
    )


def test_missing_embedded_folder_is_one_sentence(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        embedded.read_embedded_folder(tmp_path / "nothing", "train")
    message = str(err.value)
    assert str(tmp_path / "nothing") in message and "\n" not in message and message.endswith(".")


def _small_folder(tmp_path, labels=None):
    """An embedded-layout folder of 4 train and 4 test images with labels 0..3."""
    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.arange(4, dtype=np.int64) if labels is None else labels
    arrays = {
        f"{split}_{kind}": a
        for split in embedded.SPLITS
        for kind, a in (("images", images), ("labels", labels))
    }
    return embedded.write_embedded_folder(tmp_path / "layout", arrays)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (  # a hand-made folder (no digests): the labels' type is checked
            lambda f: (
                atomic_save_npy(f / "test_labels.npy", np.array([0.0, 1.5, 2.0, 3.0])),
                _drop_digests(f),
            ),
            "test_labels.npy holds float64 values, not integer labels",
        ),
        (  # a folder freqtail wrote: its digest catches the same change first
            lambda f: atomic_save_npy(f / "test_labels.npy", np.array([0.0, 1.5, 2.0, 3.0])),
            "test_labels.npy is damaged (it holds float64 (4,), not int64 (4,) as written)",
        ),
        (
            lambda f: _edit_meta(f, counts={"train": 4, "test": 5}),
            "meta.json counts 5 test images, the arrays hold 4",
        ),
        (lambda f: _edit_meta(f, classes="abcdefghijklmnop"), "meta.json's classes is not a list of names"),
        (lambda f: _edit_meta(f, classes=["same"] * 16), "meta.json names a class twice"),
    ],
    ids=["float-labels", "float-labels-digest", "counts", "classes-text", "classes-repeated"],
)
def test_embedded_layout_folder_that_disagrees_with_itself_is_one_sentence(tmp_path, damage, words):
    folder = _small_folder(tmp_path)
    assert embedded.read_embedded_folder(folder, "test")[1].tolist() == [0, 1, 2, 3]
    damage(folder)
    with pytest.raises(DatasetNotFoundError, match=re.escape(words)) as err:
        embedded.read_embedded_folder(folder, "test")
    assert str(folder) in str(err.value) and "\n" not in str(err.value)


def _drop_digests(folder) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop(DIGESTS_KEY, None)
    (folder / "meta.json").write_text(json.dumps(meta))


def _edit_meta(folder, **changes) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, **changes}))
