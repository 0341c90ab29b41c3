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


class _Items(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255, i


def test_bass_branch_applies_bass_to_exactly_the_first_augmented_branch(natural_crops):
    images = natural_crops(32, 1)[:3]
    identity = lambda u: u.float() / 255  # noqa: E731 - AugMix replaced by the identity to see the branches
    with_bass = AugMixDataset(_Items(images), bass_branch=True, mixer=identity)
    without = AugMixDataset(_Items(images), bass_branch=False, mixer=identity)
    for i, raw in enumerate(images):
        u = torch.from_numpy(raw).permute(2, 0, 1)
        (clean, first, second), label = with_bass[i]
        assert label == i
        assert torch.equal(clean, u.float() / 255)
        assert torch.equal(second, u.float() / 255)
        assert torch.equal(first, balance_spectrum(u).float() / 255)
        assert not torch.equal(first, clean)
        (clean0, first0, second0), _ = without[i]
        assert torch.equal(first0, clean0) and torch.equal(second0, clean0)


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
