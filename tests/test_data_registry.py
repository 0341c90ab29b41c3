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
        "restricted-imagenet": (9, (128, 128), "flip-jitter-lighting"),
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
    from PIL import Image

    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert standard_augmentation(224)(image).shape == (3, 224, 224)
    test = standard_augmentation(224, train=False)(image)
    assert test.shape == (3, 224, 224)
    # centre crop of PIL's bilinear 256-short-side resize: 256 x int(256 * 400 / 300) = 341, offsets (16, 58)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    resized = np.asarray(pil.resize((341, 256), Image.BILINEAR))
    assert np.array_equal(test.permute(1, 2, 0).numpy(), resized[16:240, 58:282])
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


def _ramp(size: int = 32) -> np.ndarray:
    """uint8 (size, size, 3) whose pixels all differ within a channel (so every crop window is unique)."""
    values = np.arange(size * size).reshape(size, size)
    return np.stack([values % 251, (values * 7) % 253, values // 5 % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect"])
def test_crop_padding_matches_np_pad(pad_mode):
    """Every crop-flip output is a 32 x 32 window of np.pad(image, 4, mode) (possibly mirrored)."""
    image = _ramp()
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), mode="constant" if pad_mode == "zeros" else "reflect")
    windows = {}
    for top in range(9):
        for left in range(9):
            window = padded[top : top + 32, left : left + 32]
            windows[window.tobytes()] = (top, left, False)
            windows[window[:, ::-1].tobytes()] = (top, left, True)
    augment = augmentation_preset("crop-flip", 32, train=True, pad_mode=pad_mode)
    source = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    torch.manual_seed(0)
    seen = [windows.get(augment(source).permute(1, 2, 0).numpy().tobytes()) for _ in range(300)]
    assert None not in seen
    assert {(0, 0), (8, 8)} <= {(top, left) for top, left, _ in seen}  # both corners were drawn
    assert {flipped for _, _, flipped in seen} == {False, True}
    # by hand, top-left window: row 0 of the padded image is zeros, or reflect's source row 4
    corner = padded[:32, :32]
    expected_first_row = np.zeros((32, 3)) if pad_mode == "zeros" else image[4, [4, 3, 2, 1, *range(28)]]
    assert np.array_equal(corner[0], expected_first_row)


def test_pad_mode_and_preset_errors(small_embedded):
    root, _ = small_embedded
    with pytest.raises(ConfigError, match="Unknown pad_mode 'mirror'; choose one of zeros, reflect"):
        augmentation_preset("crop-flip", 32, pad_mode="mirror")
    with pytest.raises(ConfigError, match="resized-crop-flip preset resizes images before BaSS"):
        build_dataset("embedded", "train", root, augmentation="resized-crop-flip")
    lighting = build_dataset("embedded", "train", root, augment=True, augmentation="flip-jitter-lighting")
    assert lighting[0][0].dtype == torch.float32 and lighting[0][0].shape == (3, 32, 32)


def test_lighting_adds_the_pca_colour_shift_without_clamping():
    from freqtail.data.augment import Lighting

    eigval = np.array([0.2175, 0.0188, 0.0045])
    eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
    image = torch.rand(3, 5, 4)
    torch.manual_seed(7)
    out = Lighting(0.05)(image)
    torch.manual_seed(7)
    alpha = torch.empty(3).normal_(0, 0.05).double().numpy()
    shift = eigvec @ (alpha * eigval)  # rgb = eigvec @ (alpha * eigval), the same for every pixel
    assert np.allclose((out - image).double().numpy(), shift[:, None, None], atol=1e-7)
    assert np.abs(shift).max() > 1e-4  # the draw moved the colours
    black = torch.zeros(3, 2, 2)
    for seed in range(20):  # some draw pushes a channel below 0: kept (reference), or clamped (option)
        torch.manual_seed(seed)
        shifted = Lighting(0.05)(black)
        torch.manual_seed(seed)
        clamped = Lighting(0.05, clamp=True)(black)
        if (shifted < 0).any():
            break
    assert (shifted < 0).any() and torch.equal(clamped, shifted.clamp(0, 1))
    assert torch.equal(Lighting(0.0)(image), image)
