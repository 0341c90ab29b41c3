"""build_dataset / dataset_info / iter_uint8_batches and the augmentation presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqtail.data import (
    augmentation_preset,
    build_dataset,
    canonical_name,
    dataset_info,
    dataset_names,
    iter_uint8_batches,
    standard_augmentation,
)
from freqtail.data.embedded import class_names
from freqtail.errors import ConfigError


def test_names_info_and_unknown_names():
    names = dataset_names()
    assert names == ["embedded", "cifar10", "cifar100", "tiny-imagenet", "imagenet", "restricted-imagenet"]
    assert canonical_name("CIFAR-10") == "cifar10" and canonical_name("Tiny_ImageNet") == "tiny-imagenet"
    expected = {
        "cifar10": (10, (32, 32), "crop-flip"),
        "cifar100": (100, (32, 32), "crop-flip"),
        "tiny-imagenet": (200, (64, 64), "crop-flip"),
        "imagenet": (1000, (224, 224), "resized-crop-flip"),
        "restricted-imagenet": (9, (224, 224), "resized-crop-flip"),
        "embedded": (16, (32, 32), "crop-flip"),
    }
    for name, (classes, size, preset) in expected.items():
        info = dataset_info(name)
        assert (info.num_classes, info.image_size, info.preset) == (classes, size, preset)
        assert len(info.mean) == 3 and all(0 < s < 0.5 for s in info.std)
        assert info.as_dict()["name"] == name
    with pytest.raises(ConfigError) as err:
        build_dataset("mnist", "train")
    assert all(name in str(err.value) for name in names)


def test_split_and_option_validation(small_embedded):
    root, _ = small_embedded
    for kwargs, pattern in [
        ({"split": "val"}, "'train' or 'test'"),
        ({"split": "dev"}, "Unknown split"),
        ({"split": "train", "bass": "mix"}, "BaSS mode"),
        ({"split": "train", "bass": "augment", "gamma": 1.5}, "gamma"),
        ({"split": "train", "strength": -0.1}, "strength"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            build_dataset("embedded", root=root, **kwargs)


def test_items_and_attributes(small_embedded):
    root, arrays = small_embedded
    data = build_dataset("embedded", "test", root)
    assert len(data) == 16 and data.num_classes == 16 and data.classes == class_names()
    assert data.image_size == (32, 32) and data.name == "embedded"
    image, label = data[3]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32) and isinstance(label, int)
    expected = torch.from_numpy(arrays["test_images"][3]).permute(2, 0, 1).float() / 255
    assert torch.equal(image, expected) and label == arrays["test_labels"][3]


def test_default_embedded_set_needs_no_root():
    data = build_dataset("embedded", "test")
    assert len(data) >= 1000 and data[0][0].shape == (3, 32, 32)


def test_iter_uint8_batches_streams_the_stored_images(small_embedded):
    root, arrays = small_embedded
    batches = list(iter_uint8_batches("embedded", "train", root, batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 10, 2]
    assert np.array_equal(np.concatenate(batches), arrays["train_images"])
    with pytest.raises(ConfigError):
        next(iter_uint8_batches("embedded", "train", root, bass="augment"))
    with pytest.raises(ConfigError):
        next(iter_uint8_batches("embedded", "train", root, batch_size=0))


def _is_padded_crop_or_flip(out: torch.Tensor, source: torch.Tensor, pad: int) -> bool:
    padded = torch.nn.functional.pad(source, (pad, pad, pad, pad))
    h, w = source.shape[-2:]
    for candidate in (out, out.flip(-1)):
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if torch.equal(candidate, padded[:, dy : dy + h, dx : dx + w]):
                    return True
    return False


def test_crop_flip_preset_is_a_padded_shift_or_mirror(natural_crops):
    source = torch.from_numpy(natural_crops(32, 1)[0]).permute(2, 0, 1).contiguous()
    augment = standard_augmentation(32)
    torch.manual_seed(0)
    outputs = [augment(source) for _ in range(20)]
    assert all(_is_padded_crop_or_flip(out, source, 4) for out in outputs)
    assert len({out.numpy().tobytes() for out in outputs}) > 5  # actually random
    assert torch.equal(standard_augmentation(32, train=False)(source), source)


def test_imagenet_size_presets():
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert standard_augmentation(224)(image).shape == (3, 224, 224)
    test = standard_augmentation(224, train=False)(image)
    assert test.shape == (3, 224, 224)
    # centre crop of the 256-short-side resize: 256 x 341, crop offsets (16, 58)
    from torchvision.transforms.v2 import functional as F

    resized = F.resize(image, [256, 341], antialias=True)
    assert torch.equal(test, resized[:, 16:240, 58:282])
    assert augmentation_preset("none", 32)(image[:, :32, :32]).shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="preset"):
        augmentation_preset("autoaugment", 32)


def test_augment_only_changes_the_train_split(small_embedded):
    root, _ = small_embedded
    torch.manual_seed(0)
    train = build_dataset("embedded", "train", root, augment=True)
    plain = build_dataset("embedded", "train", root)
    differs = sum(not torch.equal(train[i][0], plain[i][0]) for i in range(32))
    assert differs > 16
    test = build_dataset("embedded", "test", root, augment=True)
    test_plain = build_dataset("embedded", "test", root)
    assert all(torch.equal(test[i][0], test_plain[i][0]) for i in range(16))
