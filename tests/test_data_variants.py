"""BaSS variants: the cached "dataset" protocol, the on-the-fly "augment" protocol, converted copies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import freqtail.bass
from freqtail.bass import convert_uint8_images
from freqtail.data import build_dataset
from freqtail.data.bass_copies import write_bass_dataset
from freqtail.data.cifar import load_cifar, write_cifar_batches
from freqtail.data.embedded import write_embedded_folder


@pytest.fixture()
def count_conversions(monkeypatch):
    """Wrap freqtail.bass.convert_uint8_images; the returned list grows by the image count of each call."""
    calls: list[int] = []
    real = freqtail.bass.convert_uint8_images

    def counting(images, *args, **kwargs):
        calls.append(len(images))
        return real(images, *args, **kwargs)

    monkeypatch.setattr(freqtail.bass, "convert_uint8_images", counting)
    return calls


def _uint8(item: torch.Tensor) -> np.ndarray:
    return (item * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _all(data) -> np.ndarray:
    return np.stack([_uint8(data[i][0]) for i in range(len(data))])


def test_dataset_mode_converts_both_splits_once_and_reuses_the_cache(small_embedded, count_conversions):
    root, arrays = small_embedded
    train = build_dataset("embedded", "train", root, bass="dataset")
    assert sorted(count_conversions) == [16, 32]  # train and test converted together, once
    expected_train, _ = convert_uint8_images(arrays["train_images"])
    assert np.array_equal(_all(train), expected_train)
    test = build_dataset("embedded", "test", root, bass="dataset")
    again = build_dataset("embedded", "train", root, bass="dataset")
    assert len(count_conversions) == 2  # reused, not reconverted
    assert np.array_equal(_all(test), convert_uint8_images(arrays["test_images"])[0])
    assert np.array_equal(_all(again), expected_train)
    assert [label for _, label in (train[i] for i in range(3))] == list(arrays["train_labels"][:3])


def test_dataset_cache_is_invalidated_by_settings_and_source(small_embedded, count_conversions, tmp_path):
    root, arrays = small_embedded
    build_dataset("embedded", "train", root, bass="dataset")
    half = build_dataset("embedded", "train", root, bass="dataset", strength=0.5)
    assert len(count_conversions) == 4  # new strength: new conversion
    assert np.array_equal(_all(half), convert_uint8_images(arrays["train_images"], strength=0.5)[0])
    changed = dict(arrays)
    changed["test_images"] = arrays["test_images"].copy()
    changed["test_images"][0, 0, 0, 0] ^= 1  # one bit of one test pixel
    other = write_embedded_folder(tmp_path / "changed", changed)
    build_dataset("embedded", "train", other, bass="dataset")
    assert len(count_conversions) == 6  # changed source: new conversion
    build_dataset("embedded", "train", root, bass="dataset")
    assert len(count_conversions) == 6  # the original entry is still there


def test_augment_mode_gamma_zero_is_original_and_gamma_one_always_converts(small_embedded):
    root, arrays = small_embedded
    original = _all(build_dataset("embedded", "train", root))
    torch.manual_seed(0)
    assert np.array_equal(_all(build_dataset("embedded", "train", root, bass="augment", gamma=0.0)), original)
    converted = _all(build_dataset("embedded", "train", root, bass="augment", gamma=1.0))
    assert np.array_equal(converted, convert_uint8_images(arrays["train_images"])[0])
    half = _all(build_dataset("embedded", "train", root, bass="augment", gamma=0.5))
    is_converted = [
        np.array_equal(h, c) and not np.array_equal(h, o)
        for h, c, o in zip(half, converted, original, strict=True)
    ]
    assert 4 < sum(is_converted) < 28  # a mixture, per sample
    test = _all(build_dataset("embedded", "test", root, bass="augment", gamma=1.0))
    assert np.array_equal(test, arrays["test_images"])  # the test split stays original


def _tiny_tree(root, constant_image: bool = False):
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("n01\nn02\n")
    images = {}
    for k, wnid in enumerate(["n01", "n02"]):
        (folder / "train" / wnid / "images").mkdir(parents=True)
        for j in range(2):
            array = np.random.default_rng(10 * k + j).integers(0, 256, (64, 64, 3), dtype=np.uint8)
            if constant_image and (k, j) == (1, 1):
                array[:] = 128
            Image.fromarray(array).save(folder / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", format="PNG")
            images[f"{wnid}_{j}"] = array
    val = np.random.default_rng(99).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(val).save(folder / "val" / "images" / "val_0.JPEG", format="PNG")
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t1\t1\n")
    images["val_0"] = val
    return images


def test_folder_dataset_mode_caches_each_converted_file(tmp_path, count_conversions):
    images = _tiny_tree(tmp_path)
    data = build_dataset("tiny-imagenet", "train", tmp_path, bass="dataset")
    first = _all(data)
    assert len(count_conversions) == 4
    expected = convert_uint8_images(np.stack([images[k] for k in ["n01_0", "n01_1", "n02_0", "n02_1"]]))[0]
    assert np.array_equal(first, expected)
    assert np.array_equal(_all(build_dataset("tiny-imagenet", "train", tmp_path, bass="dataset")), first)
    assert len(count_conversions) == 4  # read back from the PNG cache
    source = tmp_path / "tiny-imagenet-200" / "train" / "n01" / "images" / "n01_0.JPEG"
    Image.fromarray(images["n01_1"]).save(source, format="PNG")  # the source file changes
    _all(build_dataset("tiny-imagenet", "train", tmp_path, bass="dataset"))
    assert len(count_conversions) == 5


def test_write_embedded_variant_in_its_own_format(small_embedded, tmp_path):
    root, arrays = small_embedded
    result = write_bass_dataset("embedded", root, tmp_path / "out", strength=1.0, progress=False)
    assert result["splits"] == {"train": 32, "test": 16} and result["images"] == 48
    assert result["degenerate"] == 0
    converted = build_dataset("embedded", "train", tmp_path / "out")
    assert np.array_equal(converted.images, convert_uint8_images(arrays["train_images"])[0])
    assert np.array_equal(converted.labels, arrays["train_labels"])


def test_write_tiny_imagenet_variant_counts_degenerate_images(tmp_path):
    images = _tiny_tree(tmp_path / "src", constant_image=True)
    result = write_bass_dataset("tiny-imagenet", tmp_path / "src", tmp_path / "out", progress=False)
    assert result["splits"] == {"train": 4, "test": 1} and result["degenerate"] == 1
    out = build_dataset("tiny-imagenet", "test", tmp_path / "out")
    assert out.samples[0][0].endswith("val_0.png")
    assert np.array_equal(_uint8(out[0][0]), convert_uint8_images(images["val_0"][None])[0][0])
    train = build_dataset("tiny-imagenet", "train", tmp_path / "out")
    assert np.array_equal(_uint8(train[3][0]), images["n02_1"])  # the flat image is copied unchanged


def test_write_imagenet_variant_keeps_the_tree(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n1", "n2"):
            (tmp_path / "src" / split / wnid).mkdir(parents=True)
            array = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(array).save(tmp_path / "src" / split / wnid / "a.JPEG", format="PNG")
    (tmp_path / "src" / "train" / "n3").mkdir()  # an empty class folder keeps its place
    result = write_bass_dataset("imagenet", tmp_path / "src", tmp_path / "out", progress=False)
    assert result["splits"] == {"train": 2, "test": 2}
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == ["n1", "n2", "n3"]
    source = Image.open(tmp_path / "src" / "val" / "n2" / "a.JPEG")
    # converted at the working resolution: PIL bilinear shorter side 256 (40 x 50 -> 256 x 320)
    resized = np.asarray(source.resize((320, 256), Image.BILINEAR))
    written = np.asarray(Image.open(tmp_path / "out" / "val" / "n2" / "a.png"))
    assert np.array_equal(written, convert_uint8_images(resized[None])[0][0])
    # read back, the copy gives the items of bass="dataset" on the source
    copy = build_dataset("imagenet", "test", tmp_path / "out")
    cached = build_dataset("imagenet", "test", tmp_path / "src", bass="dataset")
    assert all(torch.equal(copy[i][0], cached[i][0]) for i in range(2))


def test_cli_bass_dataset_mode_writes_cifar_batches(tmp_path, natural_crops, capsys):
    from freqtail.cli import main

    crops = natural_crops(32, 1, seed=2)
    labels = np.arange(16) % 10
    write_cifar_batches(
        "cifar10",
        tmp_path / "src",
        {"train": (crops[:10], labels[:10]), "test": (crops[10:], labels[10:])},
        [f"c{k}" for k in range(10)],
    )
    code = main(
        [
            "bass",
            "--dataset",
            "cifar10",
            "--data-root",
            str(tmp_path / "src"),
            "--out",
            str(tmp_path / "out"),
            "--strength",
            "0.7",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert (
        report["splits"] == {"train": 10, "test": 6}
        and report["degenerate"] == 0
        and report["strength"] == 0.7
    )
    images, got_labels, classes = load_cifar("cifar10", "train", tmp_path / "out")
    assert np.array_equal(images, convert_uint8_images(crops[:10], strength=0.7)[0])
    assert np.array_equal(got_labels, labels[:10]) and classes == [f"c{k}" for k in range(10)]


def test_cli_missing_dataset_is_one_sentence(tmp_path, capsys):
    from freqtail.cli import main

    code = main(["bass", "--dataset", "cifar100", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cifar-100-python" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_file_cache_key_includes_the_resize_and_a_hit_does_not_decode(tmp_path, count_conversions):
    from freqtail.data.variants import FileVariantCache

    source = tmp_path / "a.png"
    array = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(array).save(source)
    small, large = FileVariantCache("x", 1.0, "resize-a"), FileVariantCache("x", 1.0, "resize-b")
    assert small.folder != large.folder and FileVariantCache("x", 1.0, "resize-a").folder == small.folder
    first = small(str(source), lambda: array)
    assert np.array_equal(first, convert_uint8_images(array[None])[0][0]) and count_conversions == [1]

    def must_not_decode():
        raise AssertionError("a cache hit decoded the source")

    assert np.array_equal(small(str(source), must_not_decode), first)
    large(str(source), lambda: array[:10])
    assert count_conversions == [1, 1]  # another resize: its own entry


def test_write_restricted_imagenet_variant_at_128(tmp_path, natural_crops):
    from test_data_folders import restricted_tree

    crops = natural_crops((150, 110), 1, seed=6)
    for split in ("train", "val"):
        restricted_tree(tmp_path / "src", split, {151: [crops[0]], 300: [crops[1]], 999: [crops[2]]})
    result = write_bass_dataset("restricted-imagenet", tmp_path / "src", tmp_path / "out", progress=False)
    assert result["splits"] == {"train": 2, "test": 2}  # class 999 is not a Restricted-ImageNet class
    written = Image.open(tmp_path / "out" / "val" / "n00000151" / "0.png")
    assert written.size == (128, 128)
    source = Image.open(tmp_path / "src" / "val" / "n00000151" / "0.JPEG")
    resized = np.asarray(source.resize((128, 128), Image.BILINEAR))
    assert np.array_equal(np.asarray(written), convert_uint8_images(resized[None])[0][0])
    copy = build_dataset("restricted-imagenet", "test", tmp_path / "out")
    cached = build_dataset("restricted-imagenet", "test", tmp_path / "src", bass="dataset")
    assert len(copy) == 2 and all(torch.equal(copy[i][0], cached[i][0]) for i in range(2))
