"""Tests of -C folders (freqtail.data.corrupted_sets) and the `freqtail corrupt` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqtail.cli import main
from freqtail.data import corrupted_parts as P
from freqtail.data.arrays import ArrayDataset
from freqtail.data.catalog import DATASETS, DatasetInfo
from freqtail.data.corrupted_sets import (
    available_corruptions,
    corrupted_set_info,
    load_corrupted_set,
    write_corrupted_set,
)
from freqtail.data.corruptions import corrupt
from freqtail.errors import ConfigError, DamagedFileError, DatasetNotFoundError, InputError


@pytest.fixture(scope="module")
def source(natural_crops):
    images = natural_crops(32, 1, seed=2)[:6]
    labels = np.array([3, 1, 4, 1, 5, 2])
    return images, labels


def test_round_trip_in_the_cifar10c_layout(source, tmp_path):
    images, labels = source
    out = tmp_path / "set-C"
    result = write_corrupted_set(
        images,
        labels,
        out,
        corruptions=["fog", "gaussian_noise"],
        severities=(4, 2),
        seed=5,
        progress=False,
        meta={"dataset": "toy", "classes": list("abcdef")},
    )
    assert result["written"] == ["fog", "gaussian_noise"] and result["skipped"] == []
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "fog.npy",
        "gaussian_noise.npy",
        "labels.npy",
        "meta.json",
    ]
    # hidden: only the writer's lock (the part files are gone once assembled)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".freqtail-corrupt.lock"]
    stored_labels = np.load(out / "labels.npy")
    np.testing.assert_array_equal(stored_labels, np.concatenate([labels, labels]))
    for name in ("fog", "gaussian_noise"):
        stored = np.load(out / f"{name}.npy")
        assert stored.shape == (12, 32, 32, 3) and stored.dtype == np.uint8
        # Blocks follow the listed severities: 4 first, then 2.
        np.testing.assert_array_equal(stored[:6], corrupt(images, name, 4, seed=5))
        np.testing.assert_array_equal(stored[6:], corrupt(images, name, 2, seed=5))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["severities"] == [4, 2] and meta["seed"] == 5 and meta["num_images"] == 6
    assert meta["corruptions"] == ["gaussian_noise", "fog"]  # paper order
    assert meta["source"]["dataset"] == "toy" and "freqtail_version" in meta

    dataset = load_corrupted_set(out, "gaussian_noise", 2)
    assert isinstance(dataset, ArrayDataset) and len(dataset) == 6
    np.testing.assert_array_equal(dataset.images, corrupt(images, "gaussian_noise", 2, seed=5))
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.classes == list("abcdef")
    image, label = dataset[2]
    assert tuple(image.shape) == (3, 32, 32) and label == 4
    assert available_corruptions(out) == ["gaussian_noise", "fog"]
    assert corrupted_set_info(out)["severities"] == [4, 2]
    with pytest.raises(InputError, match="holds severities 4, 2, not 3"):
        load_corrupted_set(out, "fog", 3)


def test_reader_on_a_published_style_folder_without_meta(tmp_path):
    """CIFAR-10-C as distributed: <name>.npy with severities 1..5 in order, uint8 labels, no meta.json."""
    n = 4
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (5, n, 32, 32, 3), dtype=np.uint8)
    labels = np.array([9, 0, 3, 7], dtype=np.uint8)
    np.save(tmp_path / "snow.npy", blocks.reshape(5 * n, 32, 32, 3))
    np.save(tmp_path / "labels.npy", np.tile(labels, 5))
    for severity in range(1, 6):
        dataset = load_corrupted_set(tmp_path, "snow", severity)
        np.testing.assert_array_equal(dataset.images, blocks[severity - 1])
        np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.classes == [str(i) for i in range(10)]
    named = load_corrupted_set(tmp_path, "snow", 1, classes=[f"c{i}" for i in range(10)])
    assert named.classes[9] == "c9"
    info = corrupted_set_info(tmp_path)
    assert info == {"corruptions": ["snow"], "severities": [1, 2, 3, 4, 5], "meta": None}


def test_missing_and_damaged_sets_get_one_sentence(tmp_path, source):
    missing = tmp_path / "nowhere"
    for call in (lambda: load_corrupted_set(missing, "fog", 1), lambda: available_corruptions(missing)):
        with pytest.raises(DatasetNotFoundError) as err:
            call()
        message = str(err.value)
        assert str(missing) in message and "zenodo" in message and "freqtail corrupt" in message
        assert message.endswith(".") and "\n" not in message
    images, labels = source
    write_corrupted_set(images, labels, tmp_path / "c", corruptions=["fog"], progress=False)
    with pytest.raises(DatasetNotFoundError, match=r"no snow\.npy \(present: fog\)"):
        load_corrupted_set(tmp_path / "c", "snow", 1)
    # Truncate the file: the header promises more data than there is.
    path = tmp_path / "c" / "fog.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetNotFoundError, match="no longer a complete .npy array"):
        load_corrupted_set(tmp_path / "c", "fog", 1)
    # Labels that do not match the images, in a published-style folder (no meta.json, no digests).
    (tmp_path / "c" / "meta.json").unlink()
    np.save(tmp_path / "c" / "fog.npy", np.zeros((30, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "c" / "labels.npy", np.zeros(29, dtype=np.int64))
    with pytest.raises(DatasetNotFoundError, match="inconsistent"):
        load_corrupted_set(tmp_path / "c", "fog", 1)
    (tmp_path / "c" / "meta.json").write_text("{not json")
    with pytest.raises(DatasetNotFoundError, match="damaged"):
        load_corrupted_set(tmp_path / "c", "fog", 1)


def test_resume_skips_finished_work_and_refuses_other_settings(source, tmp_path, monkeypatch):
    images, labels = source
    out = tmp_path / "c"
    write_corrupted_set(images, labels, out, corruptions=["contrast"], severities=(1, 5), progress=False)
    before = (out / "contrast.npy").stat().st_mtime_ns
    calls = []
    real = P.corrupt

    def counting(part, name, severity, **kwargs):
        calls.append(name)
        return real(part, name, severity, **kwargs)

    monkeypatch.setattr(P, "corrupt", counting)
    result = write_corrupted_set(
        images, labels, out, corruptions=["contrast", "snow"], severities=(1, 5), progress=False
    )
    assert result["skipped"] == ["contrast"] and result["written"] == ["snow"]
    assert set(calls) == {"snow"}
    assert (out / "contrast.npy").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="seed 0, not 1"):
        write_corrupted_set(
            images, labels, out, corruptions=["snow"], severities=(1, 5), seed=1, progress=False
        )
    with pytest.raises(ConfigError, match="severities"):
        write_corrupted_set(images, labels, out, corruptions=["snow"], progress=False)
    with pytest.raises(ConfigError, match="source digest"):
        write_corrupted_set(
            images[::-1], labels, out, corruptions=["snow"], severities=(1, 5), progress=False
        )


def test_interrupted_run_leaves_no_partial_file_and_resumes(source, tmp_path, monkeypatch):
    images, labels = source
    out = tmp_path / "c"
    real = P.corrupt

    def failing(part, name, severity, **kwargs):
        if name == "snow":
            raise KeyboardInterrupt
        return real(part, name, severity, **kwargs)

    monkeypatch.setattr(P, "corrupt", failing)
    with pytest.raises(KeyboardInterrupt):
        write_corrupted_set(images, labels, out, corruptions=["fog", "snow"], progress=False)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "fog.npy",
        "labels.npy",
        "meta.json",
    ]
    monkeypatch.setattr(P, "corrupt", real)
    result = write_corrupted_set(images, labels, out, corruptions=["fog", "snow"], progress=False)
    assert result["skipped"] == ["fog"] and result["written"] == ["snow"]


def test_a_part_damaged_before_the_resume_is_refused_then_computed_again(source, tmp_path, monkeypatch):
    """A part waits on disk between a killed run and its resume; its bytes must still be the computed ones."""
    images, labels = source
    out, reference = tmp_path / "c", tmp_path / "reference"
    write_corrupted_set(images, labels, reference, corruptions=["fog"], severities=(1, 2), progress=False)
    real = P.corrupt

    def stop_at_severity_2(part, name, severity, **kwargs):
        if severity == 2:
            raise KeyboardInterrupt
        return real(part, name, severity, **kwargs)

    monkeypatch.setattr(P, "corrupt", stop_at_severity_2)
    with pytest.raises(KeyboardInterrupt):
        write_corrupted_set(images, labels, out, corruptions=["fog"], severities=(1, 2), progress=False)
    monkeypatch.setattr(P, "corrupt", real)
    (part,) = (out / P.PARTS_DIR / "fog").glob("*.npy")
    data = bytearray(part.read_bytes())
    data[-37] ^= 0x01  # one pixel: still a complete .npy of the right shape
    part.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError) as err:
        write_corrupted_set(images, labels, out, corruptions=["fog"], severities=(1, 2), progress=False)
    message = str(err.value)
    assert str(part) in message and "run the same command again" in message and "\n" not in message
    assert not (out / "fog.npy").exists() and not part.exists()
    result = write_corrupted_set(images, labels, out, corruptions=["fog"], severities=(1, 2), progress=False)
    assert result["units_computed"] == 1  # the removed part; severity 2's part was written the time before
    assert (out / "fog.npy").read_bytes() == (reference / "fog.npy").read_bytes()
    assert (
        json.loads((out / "meta.json").read_text())["arrays"]
        == json.loads((reference / "meta.json").read_text())["arrays"]
    )


def test_chunked_writing_and_memory_mapped_source_give_the_same_files(source, tmp_path, monkeypatch):
    images, labels = source
    write_corrupted_set(images, labels, tmp_path / "a", corruptions=["spatter"], progress=False)
    np.save(tmp_path / "src.npy", images)
    mapped = np.load(tmp_path / "src.npy", mmap_mode="r")
    monkeypatch.setattr(P, "UNIT_VALUES", 2 * 32 * 32 * 3)  # two images per unit
    write_corrupted_set(mapped, labels, tmp_path / "b", corruptions=["spatter"], progress=False)
    np.testing.assert_array_equal(
        np.load(tmp_path / "a" / "spatter.npy"), np.load(tmp_path / "b" / "spatter.npy")
    )


def test_writer_rejects_bad_arguments(source, tmp_path):
    images, labels = source
    with pytest.raises(InputError, match="one label per image"):
        write_corrupted_set(images, labels[:3], tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="choose one of"):
        write_corrupted_set(images, labels, tmp_path / "x", corruptions=["hail"], progress=False)
    with pytest.raises(InputError, match="must not repeat"):
        write_corrupted_set(images, labels, tmp_path / "x", severities=(1, 1), progress=False)
    with pytest.raises(InputError, match="JSON"):
        write_corrupted_set(images, labels, tmp_path / "x", meta={"f": object()}, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    np.save(foreign / "fog.npy", np.zeros(3))
    with pytest.raises(ConfigError, match="without a freqtail meta.json"):
        write_corrupted_set(images, labels, foreign, corruptions=["fog"], progress=False)


# ------------------------------------------------------------------------------------------
# The command line (with the dataset registry replaced by small arrays)


class _FakeDataset:
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.classes = [f"class{i}" for i in range(6)]
        self.image_size = images.shape[1:3]


@pytest.fixture
def fake_registry(source, monkeypatch):
    import freqtail.data

    images, labels = source
    seen = {}

    def build_dataset(name, split, root=None, *, bass=None, **kwargs):
        seen["build"] = (name, split, root, bass)
        data = images if bass is None else 255 - images  # a recognisable "conversion"
        return _FakeDataset(data, labels)

    def iter_uint8_batches(name, split="train", root=None, batch_size=512, bass=None):
        seen["iter"] = (name, split, root, bass)
        data = images if bass is None else 255 - images
        for start in range(0, len(data), 4):
            yield data[start : start + 4]

    monkeypatch.setattr(freqtail.data, "build_dataset", build_dataset)
    monkeypatch.setattr(freqtail.data, "iter_uint8_batches", iter_uint8_batches)
    # registered, so that the command's dataset-name check (before torch is imported) knows it
    size = tuple(images.shape[1:3])
    toy = DatasetInfo("toy", 6, size, "none", (0.5,) * 3, (0.25,) * 3, "array", "this test")
    monkeypatch.setitem(DATASETS, "toy", toy)
    return seen


def test_cli_writes_a_loadable_set(fake_registry, source, tmp_path, capsys):
    images, labels = source
    out = tmp_path / "toy-C"
    code = main(
        ["corrupt", "--dataset", "toy", "--out", str(out), "--severities", "1,3", "--corruptions",
         "noise,fog", "--seed", "2", "--no-progress", "--json"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["written"] == ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "fog"]
    assert fake_registry["build"] == ("toy", "test", None, None)
    np.testing.assert_array_equal(np.load(out / "clean.npy"), images)
    dataset = load_corrupted_set(out, "fog", 3)
    np.testing.assert_array_equal(dataset.images, corrupt(images, "fog", 3, seed=2))
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.classes[0] == "class0"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"]["dataset"] == "toy" and meta["source"]["bass"] is None
    # Running again resumes: nothing to write.
    assert main(["corrupt", "--dataset", "toy", "--out", str(out), "--severities", "1,3", "--corruptions",
                 "noise,fog", "--seed", "2", "--no-progress", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["written"] == []


def test_cli_bass_dataset_corrupts_the_converted_images(fake_registry, source, tmp_path, capsys):
    images, _ = source
    out = tmp_path / "toy-B-C"
    code = main(["corrupt", "--dataset", "toy", "--out", str(out), "--bass", "dataset", "--severities", "2",
                 "--corruptions", "contrast", "--limit", "5", "--no-progress"])  # fmt: skip
    assert code == 0
    assert fake_registry["iter"][3] == "dataset"
    np.testing.assert_array_equal(np.load(out / "clean.npy"), 255 - images[:5])
    dataset = load_corrupted_set(out, "contrast", 2)
    np.testing.assert_array_equal(dataset.images, corrupt(255 - images[:5], "contrast", 2))
    assert json.loads((out / "meta.json").read_text())["source"]["bass"] == "dataset"
    assert "Wrote 1 corruption" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--severities", "0-3"], "distinct integers from 1 to 5"),
        (["--severities", "x"], "must look like 1-5"),
        (["--corruptions", "fog,hail"], "Unknown corruption 'hail'"),
        (["--seed", "-1"], "argument --seed: expected an integer from 0 to 9223372036854775807, got '-1'"),
        (["--limit", "0"], "--limit must be a positive integer"),
    ],
)
def test_cli_bad_options_give_one_sentence(fake_registry, tmp_path, capsys, args, expected):
    try:
        code = main(["corrupt", "--dataset", "toy", "--out", str(tmp_path / "o"), *args])
    except SystemExit as stop:  # refused by the option's type: argparse's usage line, then the sentence
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err.splitlines()[-1] and "Traceback" not in err


def test_cli_refuses_to_overwrite_a_different_set(fake_registry, tmp_path, capsys):
    out = tmp_path / "o"
    base = ["corrupt", "--dataset", "toy", "--out", str(out), "--corruptions", "fog", "--no-progress"]
    assert main([*base, "--severities", "1"]) == 0
    clean_before = (out / "clean.npy").read_bytes()
    assert main([*base, "--severities", "1", "--limit", "3"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert (out / "clean.npy").read_bytes() == clean_before  # the refused run left the set alone


@pytest.mark.slow
def test_cli_on_the_embedded_dataset(tmp_path, capsys):
    out = tmp_path / "embedded-C"
    code = main(["corrupt", "--dataset", "embedded", "--out", str(out), "--limit", "16", "--corruptions",
                 "glass_blur", "--no-progress"])  # fmt: skip
    assert code == 0
    dataset = load_corrupted_set(out, "glass_blur", 5)
    assert len(dataset) == 16 and dataset.images.shape[1:] == (32, 32, 3)
    assert dataset.num_classes >= 10 and not dataset.classes[0].isdigit()
