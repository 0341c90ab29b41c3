"""Caches are verified, never trusted: every cached array carries its digest and is checked when read.

A damaged file (half its bytes zeroed, truncated, one byte flipped) is rebuilt where freqtail has the
source (the embedded cache, the BaSS variant caches) to exactly the undamaged arrays, with one line
saying so, and refused in one sentence naming the file where it has not (converted copies).
"""
# ruff: noqa: F811  (pytest fixtures imported from test_evaluate_support are parameters here)

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

import freqtail.bass
from freqtail.bass import convert_uint8_images
from freqtail.cli import main
from freqtail.data import build_dataset, cache_files, corrupted_sets, embedded
from freqtail.data.bass_copies import write_bass_dataset
from freqtail.data.cifar import load_cifar, write_cifar_batches
from freqtail.data.folders import read_rgb
from freqtail.data.variants import FileVariantCache
from freqtail.errors import DamagedFileError, DatasetNotFoundError
from freqtail.io import cache_dir
from test_evaluate_support import eval_cache, load_run, make_run, shared_cache  # noqa: F401

DAMAGES = ("zero half", "truncate", "flip one byte")


def damage(path, how: str) -> None:
    """Damage the file ``path`` in place: zero its second half, cut its last 100 bytes, or flip one
    bit of a byte near its end (inside the array data of any .npy file over 200 bytes)."""
    data = bytearray(path.read_bytes())
    if how == "zero half":
        data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    elif how == "truncate":
        del data[-100:]
    else:
        data[-37] ^= 0x01
    path.write_bytes(bytes(data))


def _one_sentence_naming(message: str, path) -> bool:
    return str(path) in message and "\n" not in message and message.endswith(".")


def _rebuilt_lines(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "freqtail.cache" and r.levelno == logging.WARNING
    ]


def test_digest_is_the_sha256_of_the_c_order_bytes_in_any_chunking(tmp_path, monkeypatch):
    array = np.asfortranarray(np.arange(5 * 7 * 3, dtype=np.int64).reshape(5, 7, 3) ** 2)
    expected = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    whole = cache_files.array_digest(array)
    assert whole == cache_files.ArrayDigest(expected, "<i8", (5, 7, 3))
    monkeypatch.setattr(cache_files, "CHUNK_BYTES", 100)  # one row (7 x 3 x 8 = 168 bytes) per step
    saved = cache_files.save_array(tmp_path / "a.npy", array)
    assert saved == whole == cache_files.array_digest(np.load(tmp_path / "a.npy", mmap_mode="r"))
    assert cache_files.ArrayDigest.from_json(json.loads(json.dumps(saved.to_json()))) == saved
    assert cache_files.array_digest(array[:, :, :2]) != whole  # another shape
    assert cache_files.array_digest(array.astype(np.int32)).sha256 != expected  # same values, other bytes


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("how", [*DAMAGES, "other dtype", "missing"])
def test_a_damaged_array_is_refused_in_one_sentence_naming_the_file(tmp_path, how, mmap):
    path = tmp_path / "images.npy"
    array = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    expected = cache_files.save_array(path, array)
    assert np.array_equal(cache_files.load_array(path, expected, mmap=mmap), array)
    if how == "other dtype":
        np.save(path, array.astype(np.int16))
    elif how == "missing":
        path.unlink()
    else:
        damage(path, how)
    with pytest.raises(DamagedFileError) as err:
        cache_files.load_array(path, expected, advice="delete it", mmap=mmap)
    message = str(err.value)
    assert _one_sentence_naming(message, path) and message.endswith("; delete it.") and err.value.path == path


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_embedded_cache_is_rebuilt_to_the_same_arrays_with_one_line(how, caplog):
    folder = embedded.ensure_embedded(train_per_class=3, test_per_class=2)
    before = {split: embedded.read_embedded_folder(folder, split)[:2] for split in embedded.SPLITS}
    damage(folder / "test_images.npy", how)
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        assert embedded.ensure_embedded(train_per_class=3, test_per_class=2) == folder
    (line,) = _rebuilt_lines(caplog)
    assert (
        _one_sentence_naming(line, folder / "test_images.npy")
        and "rebuilt the embedded dataset cache" in line
    )
    for split, (images, labels) in before.items():
        again = embedded.read_embedded_folder(folder, split)
        assert np.array_equal(again[0], images) and np.array_equal(again[1], labels)
    caplog.clear()
    embedded.ensure_embedded(train_per_class=3, test_per_class=2)
    assert _rebuilt_lines(caplog) == []  # the rebuilt entry verifies


def test_an_embedded_cache_without_digests_is_rebuilt_and_then_has_them(caplog):
    folder = embedded.ensure_embedded(train_per_class=2, test_per_class=1)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    recorded = meta.pop(cache_files.DIGESTS_KEY)
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")  # as an older freqtail wrote it
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        embedded.ensure_embedded(train_per_class=2, test_per_class=1)
    assert len(_rebuilt_lines(caplog)) == 1 and "older freqtail" in _rebuilt_lines(caplog)[0]
    assert json.loads((folder / "meta.json").read_text(encoding="utf-8"))[cache_files.DIGESTS_KEY] == recorded


def test_a_damaged_bass_variant_entry_is_converted_again(small_embedded, monkeypatch, caplog):
    root, arrays = small_embedded
    conversions: list[int] = []
    real = freqtail.bass.convert_uint8_images
    monkeypatch.setattr(
        freqtail.bass, "convert_uint8_images", lambda x, **k: conversions.append(len(x)) or real(x, **k)
    )
    build_dataset("embedded", "test", root, bass="dataset")
    (entry,) = (cache_dir() / "variants").iterdir()
    damage(entry / "test_images.npy", "flip one byte")
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        test = build_dataset("embedded", "test", root, bass="dataset")
    (line,) = _rebuilt_lines(caplog)
    assert (
        _one_sentence_naming(line, entry / "test_images.npy")
        and f"rebuilt the BaSS cache entry {entry}" in line
    )
    assert sorted(conversions) == [16, 16, 32, 32]  # both splits converted once more, no more
    assert np.array_equal(test.images, convert_uint8_images(arrays["test_images"])[0])


def test_a_cached_png_whose_pixels_changed_is_converted_again(tmp_path, natural_crops, caplog):
    source = tmp_path / "photo.png"
    image = natural_crops(24, 1, seed=3)[0]
    Image.fromarray(image).save(source)
    loads: list[int] = []
    cache = FileVariantCache("folder-set")
    expected = convert_uint8_images(image[None])[0][0]
    assert np.array_equal(cache(str(source), lambda: loads.append(1) or image), expected)
    cached = cache.path_for(str(source))
    with Image.open(cached) as png:
        info = PngImagePlugin.PngInfo()
        info.add_text(cache_files.PNG_DIGEST_KEY, png.info[cache_files.PNG_DIGEST_KEY])
        pixels = np.array(png)
    pixels[5, 5, 0] ^= 0x10  # one pixel changed, the old digest kept: a valid PNG that lies
    Image.fromarray(pixels).save(cached, pnginfo=info)
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        assert np.array_equal(cache(str(source), lambda: loads.append(1) or image), expected)
    assert len(loads) == 2 and _one_sentence_naming(_rebuilt_lines(caplog)[0], cached)
    assert np.array_equal(cache(str(source), lambda: pytest.fail("converted a good cache file")), expected)
    # the same check guards the PNGs of a converted folder copy, read by the folder loader
    Image.fromarray(pixels).save(cached, pnginfo=info)
    with pytest.raises(DamagedFileError, match="pixels differ"):
        read_rgb(cached)
    assert np.array_equal(read_rgb(source), image)  # a PNG without a digest is an ordinary image


def test_a_damaged_converted_embedded_copy_is_refused_by_the_command_line(small_embedded, tmp_path, capsys):
    root, _ = small_embedded
    out = tmp_path / "out"
    assert main(["bass", "--dataset", "embedded", "--data-root", str(root), "--out", str(out)]) == 0
    damage(out / "test_images.npy", "zero half")
    capsys.readouterr()
    assert main(["spectrum", "--dataset", "embedded", "--data-root", str(out), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert _one_sentence_naming(err, out / "test_images.npy") and "freqtail bass --dataset embedded" in err
    assert build_dataset("embedded", "train", out).images.shape == (
        32,
        32,
        32,
        3,
    )  # the train split is intact


def test_a_damaged_converted_cifar_copy_is_refused_naming_the_batch(tmp_path, natural_crops):
    crops = natural_crops(32, 1, seed=2)
    labels = np.arange(16) % 10
    splits = {"train": (crops[:10], labels[:10]), "test": (crops[10:], labels[10:])}
    write_cifar_batches("cifar10", tmp_path / "src", splits, [f"c{k}" for k in range(10)])
    write_bass_dataset("cifar10", tmp_path / "src", tmp_path / "out", progress=False)
    batch = tmp_path / "out" / "cifar-10-batches-py" / "test_batch"
    raw = bytearray(batch.read_bytes())
    converted = convert_uint8_images(crops[10:])[0]
    start = raw.find(np.ascontiguousarray(converted.transpose(0, 3, 1, 2)).tobytes()[:256])
    assert start > 0
    raw[start + 1000] ^= 0x01  # one pixel value of the pickled data: still a valid pickle
    batch.write_bytes(bytes(raw))
    assert np.array_equal(
        load_cifar("cifar10", "train", tmp_path / "out")[0], convert_uint8_images(crops[:10])[0]
    )
    with pytest.raises(DamagedFileError) as err:
        load_cifar("cifar10", "test", tmp_path / "out")
    assert _one_sentence_naming(str(err.value), batch) and "freqtail bass --dataset cifar10" in str(err.value)


def test_evaluate_reports_the_same_clean_accuracy_after_the_embedded_cache_is_damaged(tmp_path, caplog):
    """The issue's symptom: with half the cached test images zeroed, `evaluate --suite clean` printed
    another accuracy with exit 0 and no word."""
    run = make_run(tmp_path / "run", None, steps=60)
    assert main(["evaluate", str(run), "--suite", "clean", "--no-progress"]) == 0
    (record,) = json.loads((run / "results.json").read_text(encoding="utf-8"))["results"]
    test_images = embedded.embedded_cache_folder() / "test_images.npy"
    damage(test_images, "zero half")
    # the damage matters: trusted, the damaged images give the model another accuracy
    model, _ = load_run(run)
    x = torch.from_numpy(np.load(test_images)).permute(0, 3, 1, 2).float() / 255
    labels = torch.from_numpy(np.load(test_images.with_name("test_labels.npy")))
    with torch.no_grad():
        trusted = int((model(x).argmax(1) == labels).sum())
    assert trusted != record["correct"]
    again = shutil.copytree(run, tmp_path / "again", ignore=shutil.ignore_patterns("results.*"))
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        assert main(["evaluate", str(again), "--suite", "clean", "--no-progress"]) == 0
    (rerun,) = json.loads((again / "results.json").read_text(encoding="utf-8"))["results"]
    assert (rerun["correct"], rerun["total"]) == (record["correct"], record["total"])
    (note,) = _rebuilt_lines(caplog)
    assert str(test_images) in note


def _corrupt_argv(root, out) -> list[str]:
    """`freqtail corrupt` of the 16 test images of ``root`` (an embedded-layout folder): fog, 2 severities."""
    return [
        "corrupt", "--dataset", "embedded", "--data-root", str(root), "--out", str(out),
        "--corruptions", "fog", "--severities", "1,3", "--limit", "16", "--no-progress",
    ]  # fmt: skip


def test_a_damaged_corrupted_set_is_refused_naming_the_file_and_the_command_that_writes_it_again(
    small_embedded, tmp_path, caplog
):
    root, _ = small_embedded
    out = tmp_path / "set-C"
    assert main(_corrupt_argv(root, out)) == 0
    good = {name: (out / name).read_bytes() for name in ("fog.npy", "labels.npy")}
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    recorded = cache_files.recorded_digests(meta)
    # every array is recorded, each corruption file whole and per severity block, as its bytes hash
    assert set(recorded) == {"fog.npy", "fog.npy:severity-1", "fog.npy:severity-3", "labels.npy", "clean.npy"}
    stored = np.load(out / "fog.npy")
    assert recorded["fog.npy:severity-3"] == cache_files.array_digest(stored[16:])
    assert recorded["clean.npy"] == cache_files.array_digest(np.load(out / "clean.npy"))
    options = f"--data-root {root} --out {out} --corruptions fog --severities 1,3 --limit 16"
    command = f"`freqtail corrupt --dataset embedded {options}`"
    for name, how in [("fog.npy", how) for how in DAMAGES] + [("labels.npy", "flip one byte")]:
        damage(out / name, how)
        with pytest.raises(DamagedFileError) as err:
            corrupted_sets.load_corrupted_set(out, "fog", 3)
        message = str(err.value)
        assert _one_sentence_naming(message, out / name) and command in message, message
        if how == "flip one byte" and name == "fog.npy":  # the damage is in the last block only
            block = corrupted_sets.load_corrupted_set(out, "fog", 1)
            assert np.array_equal(block.images, stored[:16])
        (out / name).write_bytes(good[name])
    # the command it names writes the damaged corruption again, and says so in one line
    damage(out / "fog.npy", "zero half")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        assert main(_corrupt_argv(root, out)) == 0
    (line,) = _rebuilt_lines(caplog)
    assert _one_sentence_naming(line, out / "fog.npy") and line.endswith("rebuilt it.")
    assert (out / "fog.npy").read_bytes() == good["fog.npy"]
    assert np.array_equal(corrupted_sets.load_corrupted_set(out, "fog", 3).images, stored[16:])
    # a record of this format that cannot be read is damage; the previous format recorded none: both
    # refused, with the way to write the set again
    (out / "meta.json").write_text(
        json.dumps({**meta, cache_files.DIGESTS_KEY: {"fog.npy": 1}}), encoding="utf-8"
    )
    with pytest.raises(DamagedFileError, match="missing or malformed") as err:
        corrupted_sets.load_corrupted_set(out, "fog", 1)
    assert _one_sentence_naming(str(err.value), out / "meta.json") and command in str(err.value)
    meta.pop(cache_files.DIGESTS_KEY)
    (out / "meta.json").write_text(json.dumps({**meta, "format_version": 3}), encoding="utf-8")
    with pytest.raises(DatasetNotFoundError, match=r"older freqtail \(corrupted-set format 3\)") as err:
        corrupted_sets.load_corrupted_set(out, "fog", 1)
    assert "delete the folder and run " + command in str(err.value)


def test_evaluate_reports_the_same_fog_accuracy_after_the_generated_corrupted_set_is_damaged(
    shared_cache, tmp_path, caplog, capsys
):
    """The issue's symptom: a zeroed generated -C file changed the fog accuracy, exit 0, no word."""
    run = make_run(tmp_path / "run", None, steps=60)
    argv = [
        "--suite",
        "corruptions",
        "--corruptions",
        "fog",
        "--severities",
        "3",
        "--n",
        "16",
        "--no-progress",
    ]

    def fog_counts(folder, *more: str) -> tuple[int, int]:
        for old in folder.glob("results.*"):
            old.unlink()
        assert main(["evaluate", str(folder), *argv, *more]) == 0
        (record,) = json.loads((folder / "results.json").read_text(encoding="utf-8"))["results"]
        return record["correct"], record["total"]

    counts = fog_counts(run, "--generate-c")
    (generated,) = (run / "eval-cache" / "corrupted").iterdir()
    damage(generated / "fog.npy", "zero half")
    # the damage matters: trusted, the damaged images give the model another accuracy
    model, _ = load_run(run)
    x = torch.from_numpy(np.load(generated / "fog.npy")).permute(0, 3, 1, 2).float() / 255
    labels = torch.from_numpy(np.load(generated / "labels.npy"))
    with torch.no_grad():
        assert int((model(x).argmax(1) == labels).sum()) != counts[0]
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        assert fog_counts(run, "--generate-c") == counts
    (line,) = _rebuilt_lines(caplog)
    assert _one_sentence_naming(line, generated / "fog.npy") and line.endswith("rebuilt it.")
    # a damaged meta.json: nothing in the generated folder can be trusted, all of it is generated anew
    (generated / "meta.json").write_text("{not json", encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="freqtail.cache"):
        assert fog_counts(run, "--generate-c") == counts
    (line,) = _rebuilt_lines(caplog)
    assert (
        _one_sentence_naming(line, generated / "meta.json")
        and f"rebuilt the generated corrupted set {generated}" in line
    )
    # a set the user wrote (`freqtail corrupt`) is not freqtail's to rewrite: refused in one sentence
    user_set = tmp_path / "user-C"
    assert main(_corrupt_argv(embedded.ensure_embedded(), user_set)) == 0
    damage(user_set / "fog.npy", "flip one byte")
    capsys.readouterr()
    assert main(["evaluate", str(run), *argv, "--c-root", str(user_set)]) == 2
    err = capsys.readouterr().err.strip()
    assert _one_sentence_naming(err, user_set / "fog.npy") and "freqtail corrupt --dataset embedded" in err
