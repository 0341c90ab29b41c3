"""The on-device data pipeline: per-sample crops, flips and BaSS choices against a hand computation,
independence from batching, the BaSS mixture's extremes, held-out rows, bit-exact resume, and the
``data_pipeline`` selection rules and refusals."""
# ruff: noqa: F811  (pytest fixtures imported from test_train_support are parameters here)

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from freqtail.cli import main
from freqtail.data import build_dataset
from freqtail.errors import ConfigError
from freqtail.train import load_config
from freqtail.train.data import EpochSampler, SeededItems, build_train_data
from freqtail.train.device_data import DeviceTrainData, build_device_train_data
from freqtail.train.pipeline import resolve_data_pipeline
from freqtail.train.rng import derive_seed
from test_train_support import tiny_root, train  # noqa: F401
from test_train_trainer import StopAt, _assert_same_run

MASK = 2**64 - 1


def _word(key: int, epoch: int, index: int, k: int) -> int:
    """SplitMix64 output n = (epoch * 2**32 + index) * 4 + k + 1 for seed ``key``, in Python integers."""
    n = ((epoch << 32) + index) * 4 + k + 1
    z = (key + 0x9E3779B97F4A7C15 * n) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _expected(images, bass_images, seed, epoch, index, *, gamma, pad_mode, crop=True):
    """Sample ``index``'s uint8 (H, W, C) image by the documented rule: BaSS, np.pad, slice, np.flip."""
    key = derive_seed(seed, "augment")
    u = [(_word(key, epoch, index, k) >> 11) / 2**53 for k in range(4)]
    image = bass_images[index] if bass_images is not None and u[0] < gamma else images[index]
    if not crop:
        return image
    top, left = (((_word(key, epoch, index, k) >> 11) * 9) >> 53 for k in (1, 2))  # floor(u_k * 9)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="constant" if pad_mode == "zeros" else "reflect")
    out = padded[top : top + image.shape[0], left : left + image.shape[1]]
    return np.flip(out, axis=1) if u[3] < 0.5 else out


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B, C, H, W) in [0, 1] from the pipeline -> the uint8 (B, H, W, C) it was made from."""
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (40, 11, 13, 3), dtype=np.uint8)  # non-square, odd sizes
    return images, 255 - images, rng.integers(0, 5, 40)


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect"])
def test_crops_and_flips_are_the_hand_computed_ones(arrays, pad_mode):
    images, _, labels = arrays
    data = DeviceTrainData(images, labels, pad_mode=pad_mode, seed=11, classes="abcde")
    positions = list(range(40))
    x, y, seeds = data.batch(3, positions)
    assert x.dtype == torch.float32 and x.shape == (40, 3, 11, 13) and seeds is None
    assert torch.equal(y, torch.as_tensor(labels))
    got = _as_uint8(x)
    assert torch.equal(x, torch.from_numpy(got).permute(0, 3, 1, 2).float().div(255))  # uint8 / 255
    key = derive_seed(11, "augment")
    flips = edges = 0
    for index in positions:
        expected = _expected(images, None, 11, 3, index, gamma=0.0, pad_mode=pad_mode)
        assert np.array_equal(got[index], expected), index
        flips += (_word(key, 3, index, 3) >> 11) / 2**53 < 0.5
        edges += ((_word(key, 3, index, 1) >> 11) * 9) >> 53 in (0, 8)
    assert 5 < flips < 35 and edges > 0  # both flips and the outermost crop offsets were exercised
    if pad_mode == "zeros":
        assert (got == 0).any()  # zero padding reached the crops


def test_no_crop_gives_the_stored_images(arrays):
    images, _, labels = arrays
    data = DeviceTrainData(images, labels, crop=False, classes="abcde")
    x, _, _ = data.batch(0, [5, 2, 9])
    assert torch.equal(x, torch.from_numpy(images[[5, 2, 9]]).permute(0, 3, 1, 2).float() / 255)


def test_a_sample_is_the_same_whatever_its_batch(arrays):
    images, converted, labels = arrays
    data = DeviceTrainData(images, labels, bass_images=converted, gamma=0.5, seed=2, classes="abcde")
    alone = {i: data.batch(4, [i])[0][0] for i in range(40)}
    x, _, _ = data.batch(4, [17, 3, 17, 39, 0])
    for row, index in enumerate([17, 3, 17, 39, 0]):
        assert torch.equal(x[row], alone[index])
    sampler = EpochSampler(data, num_replicas=1, rank=0, seed=2, drop_last=False)
    sampler.set_epoch(4)
    order = [index for _, index in sampler]
    for batch_size in (1, 7, 40):
        sampler.set_epoch(4)
        batches = list(data.batches(sampler, batch_size, drop_last=False))
        assert [len(b[0]) for b in batches][-1] == 40 - (len(batches) - 1) * batch_size
        stacked = torch.cat([b[0] for b in batches])
        assert all(torch.equal(stacked[p], alone[i]) for p, i in enumerate(order))
    assert not torch.equal(data.batch(5, [3])[0][0], alone[3])  # another epoch, another draw


def test_bass_mixture_extremes_and_choices(arrays):
    images, converted, labels = arrays
    for gamma, source in ((0.0, images), (1.0, converted)):
        data = DeviceTrainData(
            images, labels, bass_images=converted, gamma=gamma, crop=False, classes="abcde"
        )
        x, y, _ = data.batch(1, list(range(40)))
        assert np.array_equal(_as_uint8(x), source) and torch.equal(y, torch.as_tensor(labels))
    data = DeviceTrainData(images, labels, bass_images=converted, gamma=0.3, seed=5, classes="abcde")
    got = _as_uint8(data.batch(2, list(range(40)))[0])
    chosen = 0
    for index in range(40):
        assert np.array_equal(
            got[index], _expected(images, converted, 5, 2, index, gamma=0.3, pad_mode="zeros")
        )
        chosen += (_word(derive_seed(5, "augment"), 2, index, 0) >> 11) / 2**53 < 0.3
    assert 3 < chosen < 25


def _config(root, **changes):
    values = {
        "data_root": str(root),
        "model_options": {"width": 4},
        "batch_size": 16,
        "epochs": 2,
        "lr": 0.05,
        "progress": False,
        "eval_batch_size": 48,
    }
    return load_config(overrides={**values, **changes})


def test_the_chosen_bass_images_are_the_cached_conversion(tiny_root):
    config = _config(tiny_root, bass="augment", gamma=0.5, pad_mode="reflect", seed=4)
    data = build_device_train_data(config, "cpu")
    original = build_dataset("embedded", "train", tiny_root).images
    cached = build_dataset("embedded", "train", tiny_root, bass="dataset").images  # cached_bass_arrays
    got = _as_uint8(data.batch(1, list(range(96)))[0])
    for index in range(96):
        expected = _expected(original, cached, 4, 1, index, gamma=0.5, pad_mode="reflect")
        assert np.array_equal(got[index], expected), index
    dataset_mode = build_device_train_data(_config(tiny_root, bass="dataset", augment=False), "cpu")
    assert np.array_equal(_as_uint8(dataset_mode.batch(0, list(range(96)))[0]), cached)


def test_held_out_and_subset_rows_and_attack_seeds_match_the_loader_path(tiny_root):
    config = _config(
        tiny_root, objective="pgd-at", selection="val", val_subset=10, train_subset=30, augment=False
    )
    device, loader = (
        build_device_train_data(config, "cpu"),
        SeededItems(build_train_data(config), config.seed),
    )
    assert len(device) == len(loader) == 30 and device.num_classes == 4
    x, y, seeds = device.batch(2, list(range(30)))
    for position in range(30):
        image, label, noise_seed = loader[(2, position)]
        assert torch.equal(x[position], image) and int(y[position]) == label
        assert int(seeds[position]) == noise_seed


def test_resume_mid_epoch_is_bit_exact_with_the_device_pipeline(tmp_path, tiny_root):
    config = _config(
        tiny_root,
        objective="pgd-at",
        attack_steps=1,
        robust_eval_examples=8,
        robust_eval_steps=1,
        epochs=3,
        bass="augment",
        gamma=0.5,
        pad_mode="reflect",
        selection="val",
        val_subset=12,
        data_pipeline="device",
    )
    reference = train(config, tmp_path / "reference", log=lambda m: None)
    stopped = train(config, tmp_path / "resumed", log=lambda m: None, callbacks=[StopAt(1, step=2)])
    assert stopped.status == "interrupted" and stopped.global_step == 5 + 2  # 84 images: 5 steps
    finished = train(config, tmp_path / "resumed", resume=True, log=lambda m: None)
    assert finished.global_step == reference.global_step == 15
    _assert_same_run(tmp_path / "reference", tmp_path / "resumed")
    loader = train(config.replace(data_pipeline="loader"), tmp_path / "loader", log=lambda m: None)
    assert loader.history[0]["train_loss"] != reference.history[0]["train_loss"]  # other random crops


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "device"),
        ({"objective": "trades", "bass": "augment", "gamma": 0.3, "pad_mode": "reflect"}, "device"),
        ({"dataset": "cifar100", "objective": "mart", "bass": "dataset"}, "device"),
        ({"augmentation": "none"}, "device"),
        ({"data_pipeline": "loader"}, "loader"),
        ({"objective": "augmix"}, "loader"),
        ({"objective": "augmix-bass"}, "loader"),
        ({"augmentation": "flip-jitter-lighting"}, "loader"),
        ({"dataset": "tiny-imagenet"}, "loader"),
        ({"dataset": "restricted-imagenet"}, "loader"),
    ],
)
def test_auto_chooses_the_device_pipeline_where_it_applies(changes, expected):
    assert resolve_data_pipeline(load_config(overrides=changes)) == expected


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"dataset": "tiny-imagenet"}, "tiny-imagenet is read from image files"),
        ({"dataset": "imagenet"}, "imagenet is read from image files"),
        ({"objective": "augmix"}, "trades and mart objectives, not augmix (its per-image AugMix operations"),
        (
            {"augmentation": "flip-jitter-lighting"},
            "crop-flip and none augmentation presets, not flip-jitter",
        ),
    ],
)
def test_device_where_unsupported_is_one_sentence(capsys, tmp_path, changes, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)) as info:
        load_config(overrides={**changes, "data_pipeline": "device"})
    message = str(info.value)
    assert message.startswith("data_pipeline: device cannot train this run: ") and message.count(". ") == 0
    assert message.endswith("; use loader or auto.")
    argv = ["train", "--set", "data_pipeline=device", "--out", str(tmp_path / "run")]
    argv += [arg for key, value in changes.items() for arg in ("--set", f"{key}={value}")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"freqtail train: error: {message}\n"


def test_two_processes_train_on_the_images_of_one(tiny_root):
    config = _config(tiny_root, objective="pgd-at", bass="augment", gamma=0.5)
    data = build_device_train_data(config, "cpu")
    for epoch in (0, 3):
        one = EpochSampler(data, num_replicas=1, rank=0, seed=config.seed, drop_last=True)
        ranks = [EpochSampler(data, num_replicas=2, rank=r, seed=config.seed, drop_last=True) for r in (0, 1)]
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        single = list(data.batches(one, 16, drop_last=True))
        halves = [list(data.batches(sampler, 8, drop_last=True)) for sampler in ranks]
        assert len(single) == len(halves[0]) == len(halves[1]) == 6
        for step, (x, y, seeds) in enumerate(single):
            # global batch k = rank 0's batch k and rank 1's batch k; the same (image, label, seed) items
            parts = [halves[rank][step] for rank in (0, 1)]
            joined = [torch.cat([part[i] for part in parts]) for i in range(3)]
            order, joined_order = seeds.argsort(), joined[2].argsort()
            assert torch.equal(seeds[order], joined[2][joined_order])
            assert torch.equal(x[order], joined[0][joined_order]) and torch.equal(
                y[order], joined[1][joined_order]
            )


def test_a_run_from_before_the_key_resumes_with_the_loader_it_was_trained_with(tmp_path, tiny_root):
    from freqtail.runs.layout import RunLayout
    from freqtail.train.config import adopt_stored_data_pipeline, stored_config

    # The rule: a stored config without the key means the DataLoader; "auto" adopts what was stored.
    assert stored_config({"dataset": "embedded"}).data_pipeline == "loader"
    auto = _config(tiny_root)
    assert adopt_stored_data_pipeline(auto, stored_config({"dataset": "embedded"})).data_pipeline == "loader"
    explicit = _config(tiny_root, data_pipeline="device")
    assert adopt_stored_data_pipeline(explicit, stored_config({})).data_pipeline == "device"
    # A run folder written before the key: interrupted, then resumed with today's default ("auto").
    config = _config(tiny_root, epochs=2, data_pipeline="loader")
    reference = train(config, tmp_path / "reference", log=lambda m: None)
    stopped = train(config, tmp_path / "old", log=lambda m: None, callbacks=[StopAt(1, step=2)])
    assert stopped.status == "interrupted"
    layout = RunLayout.of(tmp_path / "old")
    text = layout.config.read_text()
    layout.config.write_text("\n".join(line for line in text.splitlines() if "data_pipeline" not in line))
    for info in layout.checkpoints.rglob("checkpoint.json"):
        data = json.loads(info.read_text())
        data["config"].pop("data_pipeline")
        info.write_text(json.dumps(data))
    finished = train(auto.replace(epochs=2), tmp_path / "old", resume=True, log=lambda m: None)
    assert finished.status == "complete" and finished.global_step == reference.global_step
    _assert_same_run(tmp_path / "reference", tmp_path / "old")
