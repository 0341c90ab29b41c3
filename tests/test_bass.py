"""BaSS (paper Eq. 4) against a plain numpy implementation written here from docs/design.md.

The reference works per image and per channel on the full centred spectrum (np.fft.fft2 +
fftshift), with explicit loops over bands; the library works batched on the rfft2 half plane.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from freqtail.bass import (
    BaSS,
    BaSSModule,
    balance_spectrum,
    balance_spectrum_tensor,
    band_layout,
    bass_weights,
    convert_uint8_images,
)
from freqtail.bass import core as bass_core
from freqtail.errors import InputError
from freqtail.spectrum import band_map, band_power, num_bands

# ----------------------------------------------------------------------------- the reference


def reference_channel(channel, log=np.log, strength=1.0, power=False):
    """BaSS of one (H, W) channel on the 0..255 scale, straight from the formula.

    ``power=False`` (published): the profile p[k] is the mean of |F| over band k, and the spectrum
    is multiplied by w ** strength. ``power=True``: the profile is Eq. 1's azimuthal integral
    AI[k] = sum of |F|^2 over band k, and the spectrum is multiplied by w ** (strength / 2).

    Returns ``(out, profile, weights)``: the unclipped float result real(ifft2(ifftshift(F * factor))),
    the profile for k = 1..K-1 and the Eq. 4 weights q/o (before ``strength``).
    """
    h, w = channel.shape
    spectrum = np.fft.fftshift(np.fft.fft2(np.asarray(channel, dtype=np.float64)))
    amplitude = np.abs(spectrum + 1e-8)
    peak = amplitude == amplitude.max()
    amplitude[peak] = 0.0
    rows, cols = np.indices((h, w))
    band = np.floor(np.sqrt((rows - h // 2) ** 2 + (cols - w // 2) ** 2)).astype(int)
    outer = int(band.max())
    profile = []
    for k in range(1, outer):
        if power:
            profile.append((amplitude[band == k] ** 2).sum())
        else:
            profile.append(amplitude[band == k].sum() / np.count_nonzero(band == k))
    profile = np.array(profile)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = log(profile)
        weights = (logs / logs.sum()) / (profile / profile.sum())
    factor = np.ones((h, w))
    for k in range(1, outer):
        factor[band == k] = weights[k - 1] ** (strength / 2 if power else strength)
    factor[peak] = 1.0
    out = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum * factor)))
    return out, profile, weights


def reference_is_degenerate(image_hwc, scale=1.0, power=False) -> np.ndarray:
    """The documented rule, per channel: bool (C,), True for a channel with no band 1..K-1, a
    profile value <= 1, or weights that are not all finite and positive."""
    flags = []
    for c in range(image_hwc.shape[-1]):
        _, profile, weights = reference_channel(image_hwc[..., c] * scale, power=power)
        bad_weights = not np.isfinite(weights).all() or (weights <= 0).any()
        flags.append(profile.size == 0 or (profile <= 1).any() or bad_weights)
    return np.array(flags)


def reference_uint8(images_nhwc, **options) -> np.ndarray:
    """Published uint8 output uint8(clip(x', 0, 255)) of every image and channel."""
    out = np.empty_like(images_nhwc)
    for i, image in enumerate(images_nhwc):
        for c in range(image.shape[-1]):
            result, _, _ = reference_channel(image[..., c], **options)
            out[i, ..., c] = np.uint8(np.clip(result, 0, 255))
    return out


def to_float_nchw(images_nhwc, dtype=torch.float64) -> torch.Tensor:
    return torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).to(dtype) / 255.0


@pytest.fixture(scope="module")
def crops32():
    from freqtail.sample_photos import photo_crops

    return photo_crops(32, 2)


def assert_faithful(ours, reference, degenerate, inputs):
    """uint8 (N, H, W, C) outputs agree with the reference on regular channels (<= 1 grey level on
    < 0.1% of their pixels) and equal the input on degenerate ones; degenerate is bool (N, C)."""
    assert degenerate.shape == ours.shape[:1] + ours.shape[-1:]
    keep = ~degenerate
    assert keep.sum() >= 0.5 * keep.size, "most channels must be regular"
    ours_nc, reference_nc, inputs_nc = (np.moveaxis(a, -1, 1) for a in (ours, reference, inputs))
    diff = np.abs(ours_nc[keep].astype(int) - reference_nc[keep].astype(int))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) < 1e-3 * diff.size
    np.testing.assert_array_equal(ours_nc[degenerate], inputs_nc[degenerate])


# ----------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("size", [32, 64, (40, 56), (33, 27)])
@pytest.mark.parametrize("channels", [3, 1])
def test_uint8_matches_reference_on_natural_crops(natural_crops, size, channels):
    images = natural_crops(size, 2, seed=1)[..., :channels]
    images = np.ascontiguousarray(images)
    ours, degenerate = balance_spectrum(images, return_degenerate="channels")
    assert ours.dtype == np.uint8 and ours.shape == images.shape
    expected_degenerate = np.array([reference_is_degenerate(image) for image in images])
    np.testing.assert_array_equal(degenerate, expected_degenerate)
    assert_faithful(ours, reference_uint8(images), degenerate, images)
    regular = ~degenerate.any(1)
    assert not np.array_equal(ours[regular], images[regular])
    _, per_image = balance_spectrum(images, return_degenerate=True)
    np.testing.assert_array_equal(per_image, expected_degenerate.any(1))


def test_single_image_and_ties_with_dc(crops32):
    # One bright pixel: every |F| equals DC's, so many positions tie for the maximum amplitude.
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[5, 7] = 255
    ours, degenerate = balance_spectrum(image, return_degenerate=True)
    assert ours.shape == (32, 32, 3) and degenerate.shape == (1,) and not degenerate[0]
    np.testing.assert_array_equal(ours, reference_uint8(image[None])[0])
    # Mixed in a batch (the tie path runs for that image only), the others are unaffected.
    batch = np.concatenate([crops32[:3], image[None], crops32[3:5]])
    out = balance_spectrum(batch)
    np.testing.assert_array_equal(out[3], ours)
    np.testing.assert_array_equal(out[[0, 1, 2, 4, 5]], balance_spectrum(batch[[0, 1, 2, 4, 5]]))


def test_float_path_equals_uint8_path_before_truncation(crops32):
    images = crops32[:8]
    x = to_float_nchw(images)
    out, degenerate = balance_spectrum_tensor(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    for i, image in enumerate(images):
        if degenerate[i]:
            continue
        for c in range(3):
            expected = np.clip(reference_channel(image[..., c])[0], 0, 255) / 255.0
            np.testing.assert_allclose(out[i, c].numpy(), expected, atol=1e-9)
    # Truncating the float result gives the uint8 path (up to rare float rounding).
    truncated = np.floor(out.permute(0, 2, 3, 1).numpy() * 255.0).astype(np.uint8)
    uint8_path = balance_spectrum(images)
    assert np.count_nonzero(truncated != uint8_path) < 1e-3 * truncated.size
    # float32 agrees with float64 to float32 precision.
    out32, degenerate32 = balance_spectrum_tensor(x.float())
    assert out32.dtype == torch.float32
    assert torch.equal(degenerate32, degenerate)
    assert torch.allclose(out32.double(), out, atol=2e-5)


def test_zero_mean_input_takes_the_general_maximum_rule(crops32):
    # Values below 0 make DC small; the maximum amplitude sits elsewhere and must keep factor 1.
    x = to_float_nchw(crops32[:2]) - 0.5
    out, degenerate = balance_spectrum_tensor(x)
    assert not degenerate.any()
    for i in range(2):
        for c in range(3):
            reference = reference_channel(x[i, c].numpy() * 255.0)[0]
            np.testing.assert_allclose(out[i, c].numpy(), np.clip(reference, 0, 255) / 255.0, atol=1e-9)


def test_weights_table_matches_equation_4(crops32):
    x = to_float_nchw(crops32[:2])
    weights, degenerate = bass_weights(x)
    layout = band_layout(32, 32)
    assert weights.shape == (2, 3, layout.num_bands) and not degenerate.any()
    for i in range(2):
        for c in range(3):
            _, _, expected = reference_channel(crops32[i][..., c])
            np.testing.assert_allclose(weights[i, c, 1:-1].numpy(), expected, rtol=1e-9)
            assert weights[i, c, 0] == 1 and weights[i, c, -1] == 1
            # After re-weighting, band means are proportional to ln p: the tail is flattened.
            _, means, _ = reference_channel(crops32[i][..., c])
            ratio = means * weights[i, c, 1:-1].numpy() / np.log(means)
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4, 4), (5, 8), (7, 6), (1, 9), (32, 32)])
def test_band_layout_half_plane_bookkeeping(size):
    h, w = size
    layout = band_layout(h, w)
    assert int(layout.counts.sum()) == h * w
    # Counting each stored rfft column with its conjugate partner reproduces the full plane.
    recount = torch.bincount(layout.band, weights=layout.multiplicity, minlength=layout.num_bands)
    assert torch.equal(recount, layout.counts)
    # The band of every full-plane position, from the shifted plane directly.
    rows, cols = np.indices((h, w))
    full = np.floor(np.sqrt((rows - h // 2) ** 2 + (cols - w // 2) ** 2)).astype(int)
    unshifted = np.fft.ifftshift(full)[:, : w // 2 + 1]
    np.testing.assert_array_equal(layout.band.numpy(), unshifted.ravel())


@pytest.mark.parametrize(
    "size", [(1, 1), (1, 8), (1, 9), (6, 1), (3, 3), (4, 4), (5, 8), (8, 5), (7, 6), (32, 32)]
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_band_layout_agrees_with_the_spectrum_band_map(size, dtype):
    # Invariant: BaSS re-weights exactly the bands that freqtail.spectrum measures.
    h, w = size
    layout = band_layout(h, w, dtype=dtype)
    centred = band_map(h, w)
    assert layout.num_bands == num_bands(h, w) == int(centred.max()) + 1
    unshifted = torch.fft.ifftshift(centred)[:, : w // 2 + 1]
    assert torch.equal(layout.band.view(h, -1), unshifted)
    assert layout.counts.dtype == layout.multiplicity.dtype == dtype
    assert torch.equal(layout.counts, torch.bincount(centred.flatten(), minlength=layout.num_bands).to(dtype))
    # Band sums over BaSS's half plane equal the spectrum's band power (Eq. 1) of the same image.
    x = torch.rand(2, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * 100 + w))
    power = torch.fft.rfft2(x).abs().square().flatten(-2) * layout.multiplicity.double()
    sums = torch.zeros(2, layout.num_bands, dtype=torch.float64).index_add_(1, layout.band, power)
    torch.testing.assert_close(sums, band_power(x), rtol=1e-10, atol=1e-9)


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize("tau", [1.5, 2.0, 10.0])
def test_tau_cancels(crops32, tau):
    # Eq. 4 with log base tau: log_tau(a) = ln(a) / ln(tau), and 1/ln(tau) cancels in q.
    images = crops32[:3]
    with_tau = reference_uint8(images, log=lambda a: np.log(a) / math.log(tau))
    ours, degenerate = balance_spectrum(images, return_degenerate="channels")
    assert_faithful(ours, with_tau, degenerate, images)


def test_strength(crops32):
    images = crops32[:3]
    np.testing.assert_array_equal(balance_spectrum(images, strength=0.0), images)
    x = to_float_nchw(images)
    out, _ = balance_spectrum_tensor(x, strength=0)
    assert torch.equal(out, x)
    half, degenerate = balance_spectrum(images, strength=0.5, return_degenerate="channels")
    assert_faithful(half, reference_uint8(images, strength=0.5), degenerate, images)
    # Half strength changes the image less than full strength.
    full = balance_spectrum(images)
    change = lambda out: np.abs(out.astype(int) - images.astype(int)).mean()  # noqa: E731
    assert 0 < change(half) < change(full)
    for bad in (-0.1, 1.5, float("nan"), "1"):
        with pytest.raises(InputError):
            balance_spectrum(images, strength=bad)


def test_power_profile(crops32):
    images = crops32[:3]
    ours, degenerate = balance_spectrum(images, profile="power", return_degenerate="channels")
    np.testing.assert_array_equal(degenerate, [reference_is_degenerate(i, power=True) for i in images])
    assert_faithful(ours, reference_uint8(images, power=True), degenerate, images)
    assert not np.array_equal(ours, balance_spectrum(images))
    with pytest.raises(InputError):
        balance_spectrum(images, profile="energy")


def band_of(h, w):
    """int (H, W): band floor(distance to (H//2, W//2)) of every centred-spectrum position."""
    rows, cols = np.indices((h, w))
    return np.floor(np.hypot(rows - h // 2, cols - w // 2)).astype(int)


def band_integral(channel):
    """Eq. 1 from the formula: AI[k] = sum of |F|^2 over band k, F = fftshift(fft2(channel));
    float (K+1,) for k = 0..K."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(channel))) ** 2
    return np.bincount(band_of(*channel.shape).ravel(), weights=power.ravel())


@pytest.mark.parametrize("size", [32, (40, 56), (33, 27)])
def test_power_profile_makes_band_power_proportional_to_log_ai(natural_crops, size):
    # A low-contrast float image, so that nothing is clipped and the spectrum of the output is
    # exactly the weighted one. Strength 1: AI'[k] = w[k] AI[k] = ln AI[k] * sum AI / sum ln AI.
    crops = natural_crops(size, 1, seed=4)[:3].astype(np.float64) / 255.0
    x_hwc = 0.5 + 0.1 * (crops - crops.mean(axis=(1, 2), keepdims=True))
    x = torch.from_numpy(x_hwc).permute(0, 3, 1, 2).contiguous()
    out, degenerate = balance_spectrum_tensor(x, profile="power")
    assert not degenerate.any()
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0, "the test needs an unclipped output"
    for i in range(3):
        for c in range(3):
            before = band_integral(x[i, c].numpy() * 255.0)
            after = band_integral(out[i, c].numpy() * 255.0)
            outer = len(before) - 1
            ratio = after[1:outer] / np.log(before[1:outer])
            np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-7)
            # The total power of bands 1..K-1 is kept, and bands 0 and K are not re-weighted.
            np.testing.assert_allclose(after[1:outer].sum(), before[1:outer].sum(), rtol=1e-9)
            np.testing.assert_allclose(after[[0, outer]], before[[0, outer]], rtol=1e-9)
            # Band sums, not band means: the band means of the power are not proportional to the
            # log of the input's band means (that was the old, mean-based "power" profile).
            counts = np.bincount(band_of(*x.shape[-2:]).ravel())
            mean_ratio = (after / counts)[1:outer] / np.log((before / counts)[1:outer])
            assert np.ptp(mean_ratio) > 0.1 * np.abs(mean_ratio).mean()


# ----------------------------------------------------------------------------- degenerate inputs


def test_degenerate_images_are_unchanged_and_counted(crops32):
    constant = np.full((32, 32, 3), 117, dtype=np.uint8)
    black = np.zeros((32, 32, 3), dtype=np.uint8)
    near_black = np.zeros((32, 32, 3), dtype=np.uint8)
    near_black[3, 4] = 1  # |F| = 1 everywhere: band means are about 1, logs about 0
    for image in (constant, black, near_black):
        assert reference_is_degenerate(image).all()
    batch = np.stack([crops32[0], constant, black, near_black, crops32[1]])
    out, degenerate = balance_spectrum(batch, return_degenerate=True)
    np.testing.assert_array_equal(degenerate, [False, True, True, True, False])
    np.testing.assert_array_equal(out[1:4], batch[1:4])
    np.testing.assert_array_equal(out[[0, 4]], balance_spectrum(batch[[0, 4]]))
    converted, n_degenerate = convert_uint8_images(batch, chunk_size=2)
    assert n_degenerate == 3
    np.testing.assert_array_equal(converted, out)
    assert convert_uint8_images(batch, chunk_size=2, count_channels=True)[1:] == (3, 9)
    # The float path agrees, returns the inputs exactly, and has no NaN anywhere.
    x = to_float_nchw(batch, torch.float32)
    y, float_degenerate = balance_spectrum_tensor(x)
    assert float_degenerate.tolist() == degenerate.tolist()
    assert torch.equal(y[1:4], x[1:4]) and torch.isfinite(y).all()


#: One channel replaced by: a constant (0 = all-zero, 37, 255); one dot of value 1 on black (|F| = 1
#: everywhere: band means about 1, published weights NaN or sign-flipped); 0/1 noise (|F| about 16:
#: a near-black but regular channel).
CHANNEL_KINDS = ("zero", "37", "255", "dot", "noise")
FLAT_VALUES = {"zero": 0, "37": 37, "255": 255}


def with_channel(images, channel, kind):
    """A copy of uint8 (N, H, W, C) ``images`` with ``channel`` replaced as ``kind`` says."""
    out = images.copy()
    if kind in FLAT_VALUES:
        out[..., channel] = FLAT_VALUES[kind]
    elif kind == "dot":
        out[..., channel] = 0
        out[:, 3, 4, channel] = 1
    else:
        noise = np.random.default_rng(7).integers(0, 2, out.shape[:-1], dtype=np.uint8)
        out[..., channel] = noise
    return out


@pytest.mark.parametrize("profile", ["amplitude", "power"])
@pytest.mark.parametrize("size", [32, (33, 27)])
@pytest.mark.parametrize("channel", [0, 2])
@pytest.mark.parametrize("kind", CHANNEL_KINDS)
def test_one_degenerate_channel_is_decided_per_channel(natural_crops, kind, channel, size, profile):
    power = profile == "power"
    crops = natural_crops(size, 1, seed=3)[:6]
    images = with_channel(crops, channel, kind)
    expected = np.array([reference_is_degenerate(image, power=power) for image in images])
    # The rule applied to the replaced channel: flat channels are degenerate under both profiles,
    # the dot only under the amplitude profile (its band sums of |F|^2 are ring sizes, >= 8), noise never.
    assert expected[:, channel].all() == (kind in FLAT_VALUES or (kind == "dot" and not power))
    assert (not expected[:, channel].any()) == (kind == "noise" or (kind == "dot" and power))
    others = [c for c in range(3) if c != channel]
    assert not expected[:, others].any(), "the natural channels of these crops are regular"

    ours, degenerate = balance_spectrum(images, profile=profile, return_degenerate="channels")
    np.testing.assert_array_equal(degenerate, expected)
    assert_faithful(ours, reference_uint8(images, power=power), degenerate, images)
    for c in others:  # the image's other channels are still transformed
        assert not np.array_equal(ours[..., c], images[..., c])
    if kind in FLAT_VALUES:  # the published code leaves a flat channel as it is too
        for image in images:
            published = reference_channel(image[..., channel], power=power)[0]
            np.testing.assert_allclose(published, FLAT_VALUES[kind], rtol=0, atol=1e-9)
    if kind == "noise":
        assert not np.array_equal(ours[..., channel], images[..., channel])

    _, per_image = balance_spectrum(images, profile=profile, return_degenerate=True)
    np.testing.assert_array_equal(per_image, expected.any(1))
    converted, n_images, n_channels = convert_uint8_images(
        images, chunk_size=4, profile=profile, count_channels=True
    )
    np.testing.assert_array_equal(converted, ours)
    assert (n_images, n_channels) == (int(expected.any(1).sum()), int(expected.sum()))


def flat_channel_batch(natural_crops):
    """uint8 (4, 32, 32, 3) crops: a zero channel 1, a constant-37 channel 0, a constant-255
    channel 2 (one per image), and one crop left as it is."""
    crops = natural_crops(32, 1, seed=3)[:4]
    images = crops.copy()
    images[0, ..., 1] = 0
    images[1, ..., 0] = 37
    images[2, ..., 2] = 255
    return images


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_float_path_with_flat_channels(natural_crops, dtype):
    images = flat_channel_batch(natural_crops)
    expected = np.array([reference_is_degenerate(image) for image in images])
    np.testing.assert_array_equal(np.argwhere(expected), [[0, 1], [1, 0], [2, 2]])
    x = to_float_nchw(images, dtype)
    out, degenerate = balance_spectrum_tensor(x, per_channel=True)
    assert degenerate.shape == (4, 3) and degenerate.tolist() == expected.tolist()
    assert balance_spectrum_tensor(x)[1].tolist() == [True, True, True, False]
    assert torch.isfinite(out).all()
    atol = 1e-9 if dtype == torch.float64 else 2e-5
    for i in range(4):
        for c in range(3):
            if expected[i, c]:
                assert torch.equal(out[i, c], x[i, c])
            else:
                reference = np.clip(reference_channel(images[i, ..., c])[0], 0, 255) / 255.0
                np.testing.assert_allclose(out[i, c].double().numpy(), reference, rtol=0, atol=atol)


@pytest.mark.parametrize("profile", ["amplitude", "power"])
def test_weights_table_is_per_channel(natural_crops, profile):
    power = profile == "power"
    images = flat_channel_batch(natural_crops)
    weights, degenerate = bass_weights(to_float_nchw(images), profile=profile)
    expected = np.array([reference_is_degenerate(image, power=power) for image in images])
    assert degenerate.shape == (4, 3) and degenerate.tolist() == expected.tolist()
    assert torch.equal(weights[degenerate], torch.ones_like(weights[degenerate]))
    for i, c in np.argwhere(~expected):
        _, _, reference = reference_channel(images[i, ..., c], power=power)
        factor = reference**0.5 if power else reference
        np.testing.assert_allclose(weights[i, c, 1:-1].numpy(), factor, rtol=1e-9)


def test_module_and_transform_with_flat_channels(natural_crops):
    images = flat_channel_batch(natural_crops)
    x = to_float_nchw(images, torch.float32)
    expected_out, expected = balance_spectrum_tensor(x, per_channel=True)
    module = BaSSModule()
    assert torch.equal(module(x), expected_out)
    assert torch.equal(module.last_degenerate_channels, expected)
    assert module.last_degenerate.tolist() == [True, True, True, False]
    # Straight-through rounding rounds the transformed channels only.
    rounded = BaSSModule(round_mode="straight-through")(x)
    assert torch.equal(rounded[expected], x[expected])
    assert torch.equal(rounded[~expected], torch.floor(expected_out[~expected] * 255.0) / 255.0)
    # With p < 1, unselected samples report no degenerate channel.
    torch.manual_seed(0)
    sometimes = BaSSModule(p=0.5)
    out = sometimes(x)
    selected = torch.tensor([not torch.equal(out[i], x[i]) for i in range(4)])
    assert torch.equal(sometimes.last_degenerate_channels, expected & selected[:, None])
    # The v2 transform on a uint8 image with a zero channel: that channel stays 0.
    tv_image = tv_tensors.Image(torch.from_numpy(images[0]).permute(2, 0, 1))
    transformed = BaSS()(tv_image).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(transformed, balance_spectrum(images[0]))
    assert (transformed[..., 1] == 0).all() and not np.array_equal(transformed[..., 0], images[0, ..., 0])


def test_all_bands_below_one_is_degenerate(crops32):
    # Published weights are all positive here (two negative logs cancel) but meaningless.
    dim = crops32[:1].astype(np.float64) * 1e-4
    _, means, weights = reference_channel(dim[0, ..., 0])
    assert (means < 1).all() and (weights > 0).all()
    x = torch.from_numpy(dim).permute(0, 3, 1, 2) / 255.0
    y, degenerate = balance_spectrum_tensor(x)
    assert degenerate.tolist() == [True] and torch.equal(y, x)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 3), (1, 3)])
def test_tiny_images_have_no_band_to_reweight(size):
    image = np.arange(size[0] * size[1] * 3, dtype=np.uint8).reshape(*size, 3) * 20
    out, degenerate = balance_spectrum(image, return_degenerate=True)
    assert degenerate.tolist() == [True]
    np.testing.assert_array_equal(out, image)
    assert balance_spectrum(image, return_degenerate="channels")[1].tolist() == [[True] * 3]
    x = torch.rand(2, 1, *size, dtype=torch.float64, requires_grad=True)
    y, float_degenerate = balance_spectrum_tensor(x)
    assert float_degenerate.all() and torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_smallest_image_with_a_band_is_regular():
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (4, 4, 3), dtype=np.uint8)
    out, degenerate = balance_spectrum(image, return_degenerate=True)
    assert degenerate.tolist() == [False]
    np.testing.assert_array_equal(out, reference_uint8(image[None])[0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_float_input_is_an_input_error(bad):
    x = torch.rand(2, 3, 8, 8)
    x[1, 2, 3, 4] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        balance_spectrum_tensor(x)
    with pytest.raises(InputError):
        BaSSModule()(x)


def test_tensor_options_are_checked_whatever_their_type():
    # Python floats in range skip the general checks on the tensor path: what those refuse is still
    # refused in their sentence, and an int or a NumPy number gives the float's result.
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for strength in (-0.0, -0.1, 1.5, float("nan"), float("inf"), True, "1", None):
        with pytest.raises(InputError, match="^The BaSS strength must be a number in \\[0, 1\\], not "):
            balance_spectrum_tensor(x, strength)
    for scale in (0.0, -0.0, -1.0, float("inf"), float("nan"), True, "255"):
        with pytest.raises(InputError, match="^The BaSS intensity scale must be a positive number, not "):
            balance_spectrum_tensor(x, scale=scale)
    expected = balance_spectrum_tensor(x, 1.0, scale=255.0)
    for strength, scale in ((1, 255), (np.float32(1.0), np.float64(255.0))):
        for ours, theirs in zip(balance_spectrum_tensor(x, strength, scale=scale), expected, strict=True):
            assert torch.equal(ours, theirs)
    assert torch.equal(balance_spectrum_tensor(x, 0.0)[0], x)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 8, 8, 3), dtype=np.float32),
        np.zeros((2, 8, 8, 4), dtype=np.uint8),
        np.zeros((8, 8), dtype=np.uint8),
        np.zeros((0, 8, 8, 3), dtype=np.uint8),
        [[1, 2], [3, 4]],
        torch.zeros(8, 8),
        torch.zeros(1, 3, 8, 8, dtype=torch.int32),
    ],
)
def test_bad_inputs_raise_one_sentence(bad):
    with pytest.raises(InputError) as info:
        balance_spectrum(bad)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


# ----------------------------------------------------------------------------- adapters


def test_pil_adapter(crops32):
    rgb = Image.fromarray(crops32[0])
    out, degenerate = balance_spectrum(rgb, return_degenerate=True)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and degenerate is False
    np.testing.assert_array_equal(np.asarray(out), balance_spectrum(crops32[0]))
    gray = Image.fromarray(crops32[1][..., 0])
    out_gray = balance_spectrum(gray)
    assert out_gray.mode == "L" and out_gray.size == gray.size
    np.testing.assert_array_equal(np.asarray(out_gray), balance_spectrum(crops32[1][..., :1])[..., 0])
    with pytest.raises(InputError, match="mode"):
        balance_spectrum(rgb.convert("RGBA"))
    # One zero channel: reported per channel (a tuple) and per image; the other channels change.
    no_green = crops32[0].copy()
    no_green[..., 1] = 0
    out, channels = balance_spectrum(Image.fromarray(no_green), return_degenerate="channels")
    assert channels == (False, True, False)
    assert balance_spectrum(Image.fromarray(no_green), return_degenerate=True)[1] is True
    np.testing.assert_array_equal(np.asarray(out), balance_spectrum(no_green))
    assert (np.asarray(out)[..., 1] == 0).all()
    with pytest.raises(InputError, match="return_degenerate"):
        balance_spectrum(rgb, return_degenerate="images")


def test_uint8_tensor_adapter(crops32):
    chw = torch.from_numpy(crops32[0]).permute(2, 0, 1)
    out = balance_spectrum(chw)
    assert out.dtype == torch.uint8 and out.shape == chw.shape
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), balance_spectrum(crops32[0]))


def test_transform_on_every_input_type(crops32):
    image = crops32[0]
    expected = balance_spectrum(image)
    transform = BaSS()
    assert np.array_equal(np.asarray(transform(Image.fromarray(image))), expected)
    tv_image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
    out = transform(tv_image)
    assert isinstance(out, tv_tensors.Image) and out.dtype == torch.uint8
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), expected)
    plain = transform(torch.from_numpy(image).permute(2, 0, 1).contiguous())
    assert type(plain) is torch.Tensor
    np.testing.assert_array_equal(plain.permute(1, 2, 0).numpy(), expected)
    x = to_float_nchw(crops32[:2], torch.float32)
    assert torch.equal(transform(x), balance_spectrum_tensor(x)[0])
    assert torch.equal(transform(x[0]), balance_spectrum_tensor(x[:1])[0][0])
    # Non-image inputs pass through untouched, as in every v2 transform.
    boxes = tv_tensors.BoundingBoxes([[1, 2, 10, 12]], format="XYXY", canvas_size=(32, 32))
    out_image, out_boxes, label = transform(tv_image, boxes, 7)
    assert out_boxes is boxes and label == 7
    assert torch.equal(out_image, out)
    assert repr(transform) == "BaSS(p=1.0, strength=1.0, profile=amplitude)"


def test_transform_probability(crops32):
    image = torch.from_numpy(crops32[0]).permute(2, 0, 1).contiguous()
    converted = balance_spectrum(image)
    never = BaSS(p=0.0)
    always = BaSS(p=1.0)
    for _ in range(20):
        assert never(image) is image
        assert torch.equal(always(image), converted)
    torch.manual_seed(0)
    sometimes = BaSS(p=0.5)
    applied = [not torch.equal(sometimes(image), image) for _ in range(200)]
    assert 70 < sum(applied) < 130
    torch.manual_seed(0)
    again = [not torch.equal(sometimes(image), image) for _ in range(200)]
    assert applied == again  # seeded by torch's global RNG
    for bad in (-0.5, 1.5, True):
        with pytest.raises(InputError):
            BaSS(p=bad)


# ----------------------------------------------------------------------------- module and gradients


@pytest.mark.parametrize("shape", [(1, 2, 5, 7), (1, 1, 6, 6), (2, 1, 8, 5)])
def test_gradcheck(shape):
    torch.manual_seed(0)
    x = (0.2 + 0.6 * torch.rand(*shape, dtype=torch.float64)).requires_grad_()
    assert not balance_spectrum_tensor(x)[1].any()
    assert torch.autograd.gradcheck(lambda t: balance_spectrum_tensor(t)[0], (x,))
    assert torch.autograd.gradcheck(BaSSModule(), (x,))
    assert torch.autograd.gradcheck(lambda t: balance_spectrum_tensor(t, strength=0.5)[0], (x,))


def test_gradients_are_finite_with_degenerate_images(crops32):
    x = to_float_nchw(np.stack([crops32[0], np.zeros_like(crops32[0]), np.full_like(crops32[0], 9)]))
    x.requires_grad_()
    out, degenerate = balance_spectrum_tensor(x)
    assert degenerate.tolist() == [False, True, True]
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * upstream).sum(), x)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[1:], upstream[1:])  # identity where the image is returned unchanged


def test_gradients_with_a_zero_and_a_flat_channel(crops32):
    images = crops32[:3].copy()
    images[0, ..., 1] = 0
    images[1, ..., 2] = 37
    x = to_float_nchw(images).requires_grad_()
    out, degenerate = balance_spectrum_tensor(x, per_channel=True)
    assert degenerate.tolist() == [[False, True, False], [False, False, True], [False, False, False]]
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * upstream).sum(), x)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[degenerate], upstream[degenerate])  # identity on unchanged channels
    # Channels are independent: a regular channel's gradient is that of BaSS on the channel alone.
    for i, c in ((0, 0), (0, 2), (1, 1)):
        alone = x[i : i + 1, c : c + 1].detach().requires_grad_()
        (expected,) = torch.autograd.grad((balance_spectrum_tensor(alone)[0] * upstream[i, c]).sum(), alone)
        torch.testing.assert_close(grad[i, c], expected[0, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fill", [0.0, 0.4])
def test_gradcheck_with_a_flat_channel(fill):
    torch.manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(1, 3, 6, 7, dtype=torch.float64)
    x[0, 1] = fill
    x.requires_grad_()
    for profile in ("amplitude", "power"):
        degenerate = balance_spectrum_tensor(x, profile=profile, per_channel=True)[1]
        assert degenerate.tolist() == [[False, True, False]]
    assert torch.autograd.gradcheck(lambda t: balance_spectrum_tensor(t)[0], (x,))
    assert torch.autograd.gradcheck(lambda t: balance_spectrum_tensor(t, profile="power")[0], (x,))


def test_module_matches_core_and_keeps_device_dtype(crops32):
    x = to_float_nchw(crops32[:4], torch.float32)
    module = BaSSModule()
    out = module(x)
    assert out.dtype == torch.float32 and out.device == x.device
    assert torch.equal(out, balance_spectrum_tensor(x)[0])
    assert module.last_degenerate.tolist() == [False] * 4
    assert "round_mode='none'" in repr(module)
    half = module(x.half())
    assert half.dtype == torch.float16
    assert torch.allclose(half.float(), out, atol=2e-3)


def test_module_probability_is_per_sample(crops32):
    x = to_float_nchw(crops32[:32], torch.float32)
    converted, degenerate = balance_spectrum_tensor(x)
    regular = [i for i in range(32) if not degenerate[i]]
    assert torch.equal(BaSSModule(p=0.0)(x), x)
    torch.manual_seed(3)
    module = BaSSModule(p=0.5)
    out = module(x)
    same = [torch.equal(out[i], x[i]) for i in regular]
    bassed = [torch.equal(out[i], converted[i]) for i in regular]
    assert all(s != b for s, b in zip(same, bassed, strict=True))  # each sample: untouched or BaSS
    assert 6 < sum(bassed) < len(regular) - 6
    assert not module.last_degenerate[[i for i, s in zip(regular, same, strict=True) if s]].any()


def test_straight_through_rounding(crops32):
    images = crops32[:6]
    x = to_float_nchw(images).requires_grad_()
    plain = BaSSModule()
    rounded = BaSSModule(round_mode="straight-through")
    out_plain = plain(x)
    out_rounded = rounded(x)
    # Forward: the published uint8 truncation, / 255.
    uint8_path = balance_spectrum(images)
    expected = torch.from_numpy(uint8_path).permute(0, 3, 1, 2).double() / 255.0
    mismatch = (out_rounded - expected).abs() > 1e-12
    assert mismatch.float().mean() < 1e-3
    assert ((out_rounded - expected).abs() <= 1 / 255 + 1e-12).all()
    assert torch.equal(out_rounded, torch.floor(out_plain * 255.0) / 255.0)
    # Backward: exactly the gradient of the unrounded transform.
    upstream = torch.randn_like(out_plain)
    (grad_plain,) = torch.autograd.grad((out_plain * upstream).sum(), x)
    (grad_rounded,) = torch.autograd.grad((rounded(x) * upstream).sum(), x)
    assert torch.equal(grad_plain, grad_rounded)
    with pytest.raises(InputError):
        BaSSModule(round_mode="nearest")


def test_straight_through_leaves_degenerate_images_unchanged():
    x = torch.full((1, 3, 16, 16), 0.4, dtype=torch.float32)
    assert torch.equal(BaSSModule(round_mode="straight-through")(x), x)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(crops32):
    x = to_float_nchw(crops32[:4], torch.float32)
    out_cpu = balance_spectrum_tensor(x)[0]
    out_gpu, _ = balance_spectrum_tensor(x.cuda())
    assert out_gpu.device.type == "cuda"
    assert torch.allclose(out_gpu.cpu(), out_cpu, atol=1e-4)


# ----------------------------------------------------------------------------- conversions


def test_convert_uint8_images_in_chunks(tmp_path, crops32, capsys):
    images = crops32[:11]
    whole = balance_spectrum(images)
    for chunk_size in (1, 4, 64):
        converted, n_degenerate = convert_uint8_images(images, chunk_size=chunk_size)
        np.testing.assert_array_equal(converted, whole)
    # A read-only memory map works (only chunks are read) and the progress bar reports.
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    converted, _ = convert_uint8_images(mapped, chunk_size=4, progress=True)
    np.testing.assert_array_equal(converted, whole)
    assert "BaSS" in capsys.readouterr().err
    single, _ = convert_uint8_images(images[0])
    np.testing.assert_array_equal(single, whole[0])
    with pytest.raises(InputError):
        convert_uint8_images(images, chunk_size=0)


# ----------------------------------------------------------------------------- chunking


def mixed_batch(natural_crops, n, size=32, channels=3):
    """uint8 (n, H, W, C) natural crops with, spread over the batch, every special case: a zero,
    a flat and a dim-dot channel (degenerate), a bright dot on black (ties with DC), a step edge
    (an amplitude above DC / 2: the tie check must not misfire), and 0/1 noise."""
    crops = natural_crops(size, max(1, -(-n // 16)), seed=6)
    images = np.ascontiguousarray(np.resize(crops, (n, *crops.shape[1:3], 3))[..., :channels])
    h = images.shape[1]
    for i in range(0, n, 7):
        kind = (i // 7) % 6
        if kind == 0:
            images[i, ..., 0] = 0
        elif kind == 1:
            images[i, ..., -1] = 37
        elif kind == 2:
            images[i] = 0
            images[i, 3, 4] = 1
        elif kind == 3:
            images[i] = 0
            images[i, 5, 7] = 255
        elif kind == 4:
            images[i, : h // 2] = 0
            images[i, h // 2 :] = 255
        else:
            images[i, ..., 0] = np.random.default_rng(i).integers(0, 2, images.shape[1:3])
    return images


def unchunked_uint8(images_nhwc, strength=1.0, profile="amplitude"):
    """The core on the whole batch in one call (no chunking): uint8 (N, H, W, C), degenerate (N, C)."""
    x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).to(torch.float64).contiguous()
    out, degenerate = bass_core.balance_batch(x, strength, profile, 1.0)
    return out.to(torch.uint8).permute(0, 2, 3, 1).numpy(), degenerate.numpy()


@pytest.fixture
def chunk_bytes(monkeypatch):
    """``chunk_bytes(images, image)``: make CPU chunks hold ``images`` images like ``image``."""

    def set_chunk(images, image):
        monkeypatch.setattr(bass_core, "CHUNK_BYTES", images * image.numel() * image.element_size())

    return set_chunk


@pytest.mark.parametrize("channels", [3, 1])
def test_uint8_conversion_is_the_same_in_any_chunking(natural_crops, channels):
    images = mixed_batch(natural_crops, 300, channels=channels)  # default chunks: 4 of 75 images
    expected, expected_degenerate = unchunked_uint8(images)
    assert expected_degenerate.any() and not expected_degenerate.all()
    for chunk_size in (1, 2, 7, 64, 256):
        converted, n_images, n_channels = convert_uint8_images(
            images, chunk_size=chunk_size, count_channels=True
        )
        np.testing.assert_array_equal(converted, expected)
        assert (n_images, n_channels) == (
            int(expected_degenerate.any(1).sum()),
            int(expected_degenerate.sum()),
        )
    out, degenerate = balance_spectrum(images, return_degenerate="channels")
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(degenerate, expected_degenerate)
    for i in (0, 7, 21, 299):  # an image alone (N = 1) gives what it gives in the batch
        alone, alone_degenerate = balance_spectrum(images[i], return_degenerate="channels")
        np.testing.assert_array_equal(alone, expected[i])
        np.testing.assert_array_equal(alone_degenerate[0], expected_degenerate[i])


def test_uint8_tensors_are_the_same_in_any_chunking(natural_crops, chunk_bytes):
    images = mixed_batch(natural_crops, 40)
    expected, expected_degenerate = unchunked_uint8(images)
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    for per_chunk in (1, 3, 40, 1000):
        chunk_bytes(per_chunk, nchw[0].double())
        out, degenerate = balance_spectrum(nchw, return_degenerate="channels")
        assert out.dtype == torch.uint8
        np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
        np.testing.assert_array_equal(degenerate.numpy(), expected_degenerate)
        np.testing.assert_array_equal(balance_spectrum(images), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "options", [{}, {"profile": "power"}, {"strength": 0.3}, {"strength": 0.5, "profile": "power"}]
)
def test_float_batches_are_the_same_in_any_chunking(natural_crops, chunk_bytes, dtype, options):
    images = mixed_batch(natural_crops, 30, size=(33, 27))
    x = to_float_nchw(images, dtype)
    strength, profile = options.get("strength", 1.0), options.get("profile", "amplitude")
    expected, expected_degenerate = bass_core.balance_batch(x, strength, profile, 255.0)
    assert expected_degenerate.any()
    for per_chunk in (1, 4, 7, 30):
        chunk_bytes(per_chunk, x[0])
        out, degenerate = balance_spectrum_tensor(x, per_channel=True, **options)
        assert torch.equal(out, expected) and torch.equal(degenerate, expected_degenerate)
    # Each image alone, and a channels-last copy of the batch, give the same bits.
    alone = torch.cat([balance_spectrum_tensor(x[i : i + 1], **options)[0] for i in range(len(x))])
    assert torch.equal(alone, expected)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(balance_spectrum_tensor(channels_last, **options)[0], expected)


def test_single_channel_images_are_the_same_alone(natural_crops):
    # A lone channel takes another FFT code path in MKL; BaSS transforms it beside a copy.
    images = mixed_batch(natural_crops, 12, channels=1)
    x = to_float_nchw(images)
    batch, _ = balance_spectrum_tensor(x)
    for i in range(len(x)):
        assert torch.equal(balance_spectrum_tensor(x[i : i + 1])[0], batch[i : i + 1])
    gray = Image.fromarray(images[2, ..., 0])
    np.testing.assert_array_equal(np.asarray(balance_spectrum(gray)), balance_spectrum(images)[2, ..., 0])


def test_chunked_gradients_equal_unchunked(natural_crops, chunk_bytes):
    x = to_float_nchw(mixed_batch(natural_crops, 9))
    upstream = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0))
    results = []
    for per_chunk in (9, 2):
        chunk_bytes(per_chunk, x[0])
        leaf = x.clone().requires_grad_()
        out, _ = balance_spectrum_tensor(leaf)
        (grad,) = torch.autograd.grad((out * upstream).sum(), leaf)
        assert torch.isfinite(grad).all()
        results.append((out.detach(), grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("size, most", [(32, 85), (128, 5), (224, 1)])
def test_chunks_bound_the_working_memory(monkeypatch, size, most):
    # Every step transforms less than twice CHUNK_BYTES of float64 (or one image), whatever N and
    # chunk_size; the memory benchmark shows the resulting peak (benchmarks/bass_speed.py).
    steps = []
    real = bass_core.balance_batch

    def recording(x, *args, **kwargs):
        steps.append(x.shape[0])
        assert x.shape[0] == 1 or x.numel() * x.element_size() < 2 * bass_core.CHUNK_BYTES
        return real(x, *args, **kwargs)

    monkeypatch.setattr("freqtail.bass.convert.balance_batch", recording)
    images = np.zeros((3 * most + 1, size, size, 3), dtype=np.uint8)
    convert_uint8_images(images)
    assert max(steps) <= most and sum(steps) == len(images)
    steps.clear()
    convert_uint8_images(images, chunk_size=2)
    assert max(steps) <= 2 and sum(steps) == len(images)
    steps.clear()
    balance_spectrum(images)
    assert max(steps) <= most and sum(steps) == len(images)


def test_non_finite_values_are_found_in_any_chunk(chunk_bytes):
    x = torch.rand(20, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    chunk_bytes(4, x[0])
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[17, 1, 3, 4] = bad
        with pytest.raises(InputError, match="NaN or infinite"):
            balance_spectrum_tensor(y)
        with pytest.raises(InputError, match="NaN or infinite"):
            bass_weights(y)
        with pytest.raises(InputError, match="NaN or infinite"):
            balance_spectrum_tensor(y, strength=0.0)
    # Finite values too large for the sums are not an error: those channels are left unchanged.
    huge = x.clone()
    huge[3, 0] = 3e38
    out, degenerate = balance_spectrum_tensor(huge, per_channel=True)
    assert degenerate[3, 0] and torch.equal(out[3, 0], huge[3, 0]) and torch.isfinite(out).all()


def test_top_level_exports_are_lazy():
    code = (
        "import sys, freqtail; assert 'torch' not in sys.modules; "
        "import freqtail.bass; assert 'torchvision' not in sys.modules; "
        "assert freqtail.BaSS is freqtail.bass.BaSS and freqtail.BaSSModule and freqtail.balance_spectrum"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
