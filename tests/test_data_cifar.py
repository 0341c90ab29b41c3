"""CIFAR-10/100 python batches: correct decoding, restricted unpickling, clear errors."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

from freqtail.data.cifar import load_cifar, write_cifar_batches
from freqtail.data.safe_pickle import safe_load_pickle
from freqtail.errors import DatasetNotFoundError


def _pattern(n: int) -> np.ndarray:
    """uint8 (n, 32, 32, 3) with a value that depends on image, row, column and channel."""
    i, y, x, c = np.indices((n, 32, 32, 3))
    return ((i * 37 + y * 5 + x * 3 + c * 101) % 256).astype(np.uint8)


def _official_row(image: np.ndarray) -> np.ndarray:
    """One CIFAR data row written pixel by pixel: 1024 red, then 1024 green, then 1024 blue, row-major."""
    row = np.empty(3072, np.uint8)
    for c in range(3):
        for y in range(32):
            for x in range(32):
                row[c * 1024 + y * 32 + x] = image[y, x, c]
    return row


def _write_py2_style_cifar10(root, per_batch: int = 2, protocol: int = 2):
    """CIFAR-10 as the official archive has it: bytes keys (Python 2 str), labels as a list."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = _pattern(per_batch * 6)
    labels = [(3 * k + 1) % 10 for k in range(len(images))]
    rows = np.stack([_official_row(im) for im in images])
    files = [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]
    for b, file_name in enumerate(files):
        part = slice(b * per_batch, (b + 1) * per_batch)
        batch = {b"batch_label": b"x", b"labels": labels[part], b"data": rows[part], b"filenames": [b"f.png"]}
        (folder / file_name).write_bytes(pickle.dumps(batch, protocol=protocol))
    names = [f"class{k}".encode() for k in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return images, np.array(labels)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_official_layout(tmp_path, protocol):
    images, labels = _write_py2_style_cifar10(tmp_path, protocol=protocol)
    train_x, train_y, classes = load_cifar("cifar10", "train", tmp_path)
    assert classes == [f"class{k}" for k in range(10)]
    assert train_x.dtype == np.uint8 and train_x.shape == (10, 32, 32, 3)
    assert np.array_equal(train_x, images[:10]) and np.array_equal(train_y, labels[:10])
    test_x, test_y, _ = load_cifar("cifar10", "test", tmp_path / "cifar-10-batches-py")  # inner folder works
    assert np.array_equal(test_x, images[10:]) and np.array_equal(test_y, labels[10:])


def test_cifar100_fine_labels_round_trip_through_writer(tmp_path):
    images = _pattern(7)
    fine = np.array([0, 99, 5, 5, 42, 7, 1])
    classes = [f"fine{k}" for k in range(100)]
    write_cifar_batches(
        "cifar100", tmp_path, {"train": (images[:5], fine[:5]), "test": (images[5:], fine[5:])}, classes
    )
    raw = pickle.loads((tmp_path / "cifar-100-python" / "train").read_bytes())  # plain data, any reader works
    assert np.array_equal(raw["data"][1], _official_row(images[1]))
    x, y, names = load_cifar("cifar100", "train", tmp_path)
    assert names == classes and np.array_equal(x, images[:5]) and np.array_equal(y, fine[:5])
    x, y, _ = load_cifar("cifar100", "test", tmp_path)
    assert np.array_equal(x, images[5:]) and np.array_equal(y, fine[5:])


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", ["system", "eval", "nested"])
def test_crafted_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    _write_py2_style_cifar10(tmp_path)
    evil = {"system": _Exploit(f"touch {marker}"), "eval": _Eval()}.get(payload)
    if payload == "nested":  # the exploit hidden inside an otherwise valid batch
        evil = {"data": np.zeros((1, 3072), np.uint8), "labels": [_Exploit(f"touch {marker}")]}
    target = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    target.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DatasetNotFoundError) as err:
        load_cifar("cifar10", "train", tmp_path)
    message = str(err.value)
    assert not marker.exists()
    assert str(target) in message and "refused" in message and "\n" not in message
    assert ("system" in message) if payload != "eval" else ("eval" in message)


def test_truncated_batch_gets_a_clear_error(tmp_path):
    _write_py2_style_cifar10(tmp_path)
    target = tmp_path / "cifar-10-batches-py" / "test_batch"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetNotFoundError, match="truncated or damaged") as err:
        load_cifar("cifar10", "test", tmp_path)
    assert "\n" not in str(err.value)


def test_wrong_content_gets_a_clear_error(tmp_path):
    _write_py2_style_cifar10(tmp_path)
    target = tmp_path / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DatasetNotFoundError, match=r"shape \(N, 3072\)"):
        load_cifar("cifar10", "test", tmp_path)
    target.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}))
    with pytest.raises(DatasetNotFoundError, match="labels range over 0..10"):
        load_cifar("cifar10", "test", tmp_path)


@pytest.mark.parametrize("name, expected", [("cifar10", "data_batch_1"), ("cifar100", "train")])
def test_missing_dataset_is_one_sentence_with_where_and_how(tmp_path, name, expected):
    with pytest.raises(DatasetNotFoundError) as err:
        load_cifar(name, "train", tmp_path)
    message = str(err.value)
    assert expected in message and str(tmp_path) in message and "python.tar.gz" in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0
    with pytest.raises(DatasetNotFoundError, match="--data-root"):
        load_cifar(name, "train", None)


def test_safe_loader_reads_plain_containers(tmp_path):
    path = tmp_path / "plain.pkl"
    obj = {"a": [1, 2.5, "x", b"y"], "b": (np.arange(4, dtype=np.int64), {1, 2}), "c": bytearray(b"z")}
    path.write_bytes(pickle.dumps(obj, protocol=2))
    loaded = safe_load_pickle(path)
    assert loaded["a"] == [1, 2.5, "x", b"y"] and loaded["b"][1] == {1, 2} and loaded["c"] == bytearray(b"z")
    assert np.array_equal(loaded["b"][0], np.arange(4))


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ([0, 1.5], "'labels' must hold integer labels, found 1.5"),  # int64 would truncate it to 1
        ([0, "3"], "'labels' must hold integer labels, found '3'"),  # int64 would parse the text
        ([True, False], "'labels' must hold integer labels, found True"),
        ([0, [1, 2]], "'labels' must list one label per image"),  # ragged
    ],
)
def test_batch_labels_that_are_not_integers_are_one_sentence(tmp_path, labels, words):
    _write_py2_style_cifar10(tmp_path)
    target = tmp_path / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels}))
    with pytest.raises(DatasetNotFoundError, match=re.escape(words)) as err:
        load_cifar("cifar10", "test", tmp_path)
    assert str(target) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "names",
    [[f"class{k}" for k in range(9)], [f"class{k}" for k in range(11)], ["same"] * 10],
    ids=["9-names", "11-names", "repeated"],
)
def test_a_meta_file_whose_names_disagree_with_the_classes_is_one_sentence(tmp_path, names):
    _write_py2_style_cifar10(tmp_path)  # labels 0..9 over 10 classes
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2))
    with pytest.raises(
        DatasetNotFoundError, match=f"lists {len(names)} names .* where cifar10 has 10 classes"
    ):
        load_cifar("cifar10", "train", tmp_path)
