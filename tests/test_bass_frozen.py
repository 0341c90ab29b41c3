"""BaSS's tensor core gives the same bits as the frozen copy of the implementation before its
fixed-cost work (tests/bass_frozen_core.py): outputs, degenerate masks, weight tables and
gradients, on natural crops mixed with every special case, at three sizes, in float32 and float64,
both profiles, two strengths, whole, chunked, image by image and channel by channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bass_frozen_core as frozen
from freqtail.bass import core

CASES = [
    (size, dtype, profile, strength)
    for size in (17, 32, 64)
    for dtype in (torch.float32, torch.float64)
    for profile in ("amplitude", "power")
    for strength in (1.0, 0.5)
]


def special_batch(natural_crops, n: int, size: int) -> np.ndarray:
    """uint8 (n, size, size, 3) natural crops with, every 5th image, one of the special cases: a
    zero, a flat, a 0/1-noise channel (degenerate or near it), a dim dot and a bright dot on black
    (ties with DC), a step edge, uniform noise, an all-white image."""
    crops = natural_crops(size, max(1, -(-n // 16)), seed=3)
    images = np.ascontiguousarray(np.resize(crops, (n, size, size, 3)))
    rng = np.random.default_rng(size)
    for i in range(0, n, 5):
        kind = (i // 5) % 8
        if kind == 0:
            images[i, ..., 0] = 0
        elif kind == 1:
            images[i, ..., 2] = 37
        elif kind == 2:
            images[i] = 0
            images[i, 3, 4] = 1
        elif kind == 3:
            images[i] = 0
            images[i, 5, 7] = 255
        elif kind == 4:
            images[i, : size // 2] = 0
            images[i, size // 2 :] = 255
        elif kind == 5:
            images[i, ..., 1] = rng.integers(0, 2, (size, size))
        elif kind == 6:
            images[i] = rng.integers(0, 256, (size, size, 3))
        else:
            images[i] = 255
    return images


def assert_same_bits(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)


@pytest.mark.parametrize(("size", "dtype", "profile", "strength"), CASES)
def test_tensor_core_gives_the_frozen_bits(natural_crops, monkeypatch, size, dtype, profile, strength):
    n = 20 if size < 64 else 10
    x = torch.from_numpy(special_batch(natural_crops, n, size)).permute(0, 3, 1, 2).to(dtype).div(255.0)
    x = x.contiguous()
    zero_mean = (x - x.mean((2, 3), keepdim=True)).contiguous()  # the general maximum rule
    options = {"profile": profile, "per_channel": True}
    for batch in (x, zero_mean, x[3:4], x[5:6, 1:2]):  # whole, one image, one lone channel
        assert_same_bits(
            core.balance_spectrum_tensor(batch, strength, **options),
            frozen.balance_spectrum_tensor(batch, strength, **options),
        )
    on_0_255 = x.mul(255.0)
    assert_same_bits(
        core.balance_spectrum_tensor(on_0_255, strength, scale=1.0, **options),
        frozen.balance_spectrum_tensor(on_0_255, strength, scale=1.0, **options),
    )
    weight_options = {"profile": profile}
    assert_same_bits(
        core.bass_weights(x, strength, **weight_options), frozen.bass_weights(x, strength, **weight_options)
    )
    image_bytes = x[0].numel() * x.element_size()
    monkeypatch.setattr(core, "CHUNK_BYTES", 3 * image_bytes)  # chunks of 3 images, both sides
    monkeypatch.setattr(frozen, "CHUNK_BYTES", 3 * image_bytes)
    chunked = core.balance_spectrum_tensor(x, strength, **options)
    assert_same_bits(chunked, frozen.balance_spectrum_tensor(x, strength, **options))
    if size == 64:
        return
    upstream = torch.randn(x[:10].shape, generator=torch.Generator().manual_seed(size), dtype=dtype)
    results = []
    for implementation in (core, frozen):
        leaf = x[:10].clone().requires_grad_(True)
        out, degenerate = implementation.balance_spectrum_tensor(leaf, strength, **options)
        (out * upstream).sum().backward()
        weights_leaf = x[:10].clone().requires_grad_(True)
        weights, _ = implementation.bass_weights(weights_leaf, strength, profile=profile)
        weights.sum().backward()
        results.append((out.detach(), degenerate, leaf.grad, weights.detach(), weights_leaf.grad))
    assert_same_bits(*results)
