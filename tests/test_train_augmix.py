"""AugMix operations against PIL (the published code's library), the mixing, and the BaSS branch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from freqtail.bass import balance_spectrum
from freqtail.train.augmix import AUGMIX_OPERATIONS, AugMixDataset, apply_operation, augmix_image


@pytest.fixture(scope="module")
def image(natural_crops):
    return natural_crops(32, 1)[2]  # uint8 (32, 32, 3)


def _chw(array):
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def _hwc(tensor):
    return tensor.permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    ("name", "level", "reference"),
    [
        ("autocontrast", 1.0, lambda im: ImageOps.autocontrast(im)),
        ("equalize", 1.0, lambda im: ImageOps.equalize(im)),
        ("posterize", 3.0, lambda im: ImageOps.posterize(im, 4 - int(3.0 * 4 / 10))),
        ("solarize", 3.0, lambda im: ImageOps.solarize(im, 256 - int(3.0 * 256 / 10))),
        (
            "translate_x",
            2.0,
            lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 2, 0, 1, 0), Image.BILINEAR),
        ),
        (
            "translate_y",
            2.0,
            lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, 2), Image.BILINEAR),
        ),
    ],
)
def test_operations_match_pil(image, name, level, reference):
    ours = _hwc(apply_operation(name, _chw(image), level)).astype(int)
    theirs = np.asarray(reference(Image.fromarray(image))).astype(int)
    # torchvision's autocontrast rounds where PIL's lookup table truncates: at most one grey level
    assert np.abs(ours - theirs).max() <= (1 if name == "autocontrast" else 0)


def test_geometric_operations_follow_pil_direction(image):
    """Shear and rotation agree with PIL's on almost every pixel (half-pixel conventions differ at edges)."""
    pil = Image.fromarray(image)
    cases = [
        ("shear_x", pil.transform(pil.size, Image.AFFINE, (1, 0.09, 0, 0, 1, 0), Image.BILINEAR)),
        ("shear_y", pil.transform(pil.size, Image.AFFINE, (1, 0, 0, 0.09, 1, 0), Image.BILINEAR)),
        ("rotate", pil.rotate(9, resample=Image.BILINEAR)),
    ]
    for name, reference in cases:
        ours = _hwc(apply_operation(name, _chw(image), 3.0, 1.0)).astype(int)
        far = np.abs(ours - np.asarray(reference).astype(int)) > 8
        assert far.mean() < 0.1, name


def test_severity_scaling_at_severity_three(image):
    """At level <= 3 posterize keeps 3-4 bits and solarize thresholds at >= 180 (published scaling)."""
    x = _chw(image)
    assert torch.equal(apply_operation("posterize", x, 2.4), x & 0xF0)  # int(2.4 * 4 / 10) = 0 -> 4 bits
    assert torch.equal(apply_operation("posterize", x, 3.0), x & 0xE0)  # 3 bits
    assert torch.equal(apply_operation("solarize", x, 0.3), x)  # threshold 256: nothing inverted
    bright = torch.full((3, 4, 4), 200, dtype=torch.uint8)
    assert torch.equal(apply_operation("solarize", bright, 3.0), 255 - bright)  # threshold 180


def test_augmix_image_is_a_reproducible_convex_mix(image):
    x = _chw(image)
    torch.manual_seed(0)
    first = augmix_image(x)
    torch.manual_seed(0)
    assert torch.equal(first, augmix_image(x))
    assert first.dtype == torch.float32 and first.shape == (3, 32, 32)
    assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
    assert not torch.equal(first, x.float() / 255)
    constant = torch.full((3, 8, 8), 77, dtype=torch.uint8)
    # autocontrast/equalize/posterize/solarize/geometry of a constant image stay within [0, 77] | black fill
    out = augmix_image(constant, width=3, depth=2)
    assert float(out.max()) <= 77 / 255 + 1e-6


def _uint8_hwc(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _window(padded: np.ndarray, top: int, left: int, flipped: bool) -> np.ndarray:
    window = padded[top : top + 32, left : left + 32]
    return window[:, ::-1] if flipped else window


def _find_window(crop: np.ndarray, padded: np.ndarray) -> tuple[int, int, bool]:
    """The (top, left, flipped) of the one window of ``padded`` that ``crop`` is."""
    found = [
        (top, left, flipped)
        for top in range(9)
        for left in range(9)
        for flipped in (False, True)
        if np.array_equal(_window(padded, top, left, flipped), crop)
    ]
    assert len(found) == 1, found
    return found[0]


def test_bass_branch_crops_the_bass_of_the_whole_image_like_the_clean_image(small_embedded):
    """BaSS branch before AugMix = the clean image's crop and flip of BaSS(stored image); padding stays 0."""
    from freqtail.data import build_dataset

    root, arrays = small_embedded
    base = build_dataset("embedded", "train", root, augment=True)  # crop-flip with zero padding
    twin = build_dataset("embedded", "train", root, bass="dataset", augment=True)
    identity = lambda u: u.float() / 255  # noqa: E731 - AugMix replaced by the identity to see the branches
    with_bass = AugMixDataset(base, bass_base=twin, mixer=identity)
    without = AugMixDataset(base, mixer=identity)
    pad = ((4, 4), (4, 4), (0, 0))
    padded_items = 0
    for index in range(16):
        torch.manual_seed(index)
        (clean, first, second), label = with_bass[index]
        assert label == arrays["train_labels"][index]
        full = arrays["train_images"][index]
        top, left, flipped = _find_window(_uint8_hwc(clean), np.pad(full, pad))
        branch = _uint8_hwc(first)
        assert np.array_equal(branch, _window(np.pad(balance_spectrum(full), pad), top, left, flipped))
        assert torch.equal(second, clean)
        inside = np.zeros((40, 40), dtype=bool)
        inside[4:36, 4:36] = True
        outside = ~_window(inside, top, left, flipped)
        assert (branch[outside] == 0).all()  # padding pixels were never BaSS-processed
        if outside.any():
            padded_items += 1
            # the previous behaviour, BaSS of the padded crop, re-weights the black edges
            assert not np.array_equal(branch, balance_spectrum(_uint8_hwc(clean)))
        torch.manual_seed(index)
        (clean0, first0, second0), _ = without[index]
        assert torch.equal(clean0, clean) and torch.equal(first0, clean0) and torch.equal(second0, clean0)
    assert padded_items >= 8
    # the twin's draws are replayed, not added: the RNG after an item is the same with and without BaSS
    torch.manual_seed(3)
    with_bass[3]
    after_bass = torch.rand(4)
    torch.manual_seed(3)
    without[3]
    assert torch.equal(after_bass, torch.rand(4))


def test_operation_list_is_the_published_one():
    assert AUGMIX_OPERATIONS == (
        "autocontrast",
        "equalize",
        "posterize",
        "rotate",
        "solarize",
        "shear_x",
        "shear_y",
        "translate_x",
        "translate_y",
    )
