"""Fourier heat maps (Yin et al. 2019): basis images, a low-frequency-only model, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from freqtail.analysis import HeatmapResult, conjugate_half_plane, fourier_basis, fourier_heatmap
from freqtail.errors import InputError
from freqtail.spectrum import band_map, low_pass


@pytest.mark.parametrize(("h", "w"), [(8, 8), (7, 6)])
def test_basis_images_are_real_unit_norm_single_frequency_patterns(h, w):
    plane = conjugate_half_plane(h, w)
    basis = fourier_basis(h, w, plane.du, plane.dv, dtype=torch.float64).numpy()
    np.testing.assert_allclose(np.linalg.norm(basis.reshape(len(basis), -1), axis=1), 1.0)
    for k in range(plane.size):
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(basis[k]))).ravel()
        support = set(np.flatnonzero(spectrum > 1e-9))
        assert support == {plane.index[k], plane.conjugate_index[k]}, (plane.du[k], plane.dv[k])


class LowPassLinear(nn.Module):
    """A fixed low-pass filter (bands < boundary) in front of a fixed linear two-class classifier.

    logit 1 - logit 0 = sum over channels of <low_pass(x) - 0.5, P>, P a band-1 cosine pattern.
    """

    def __init__(self, pattern: torch.Tensor, boundary: int):
        super().__init__()
        self.register_buffer("pattern", pattern)
        self.boundary = boundary

    def forward(self, x):
        score = ((low_pass(x, self.boundary) - 0.5) * self.pattern).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def _low_pass_case(n=32):
    h = w = 8
    pattern = fourier_basis(h, w, np.array([1]), np.array([0]))[0]  # frequency (1, 0), band 1
    signs = torch.tensor([1.0, -1.0]).repeat(n // 2)
    margin = 0.5  # the clean score is +-margin * C
    images = 0.5 + margin * signs[:, None, None, None] * pattern.expand(n, 3, h, w)
    labels = (signs > 0).long()
    return LowPassLinear(pattern, boundary=3), images, labels


def test_a_low_frequency_model_errs_only_under_low_frequency_perturbations():
    model, images, labels = _low_pass_case()
    result = fourier_heatmap(model, (images, labels), eps=1.0, batch_size=100, seed=0, sign="image")
    assert result.clean_error == 0.0
    bands = band_map(8, 8).numpy()
    assert np.all(result.error_rate[bands >= 3] == 0.0)  # removed by the filter: never an error
    # The pattern's own frequency flips every image whose random sign opposes its label: about half.
    at_pattern = result.error_rate[4 + 1, 4 + 0]
    assert 0.2 < at_pattern < 0.8
    # With a sign per channel (the default) the shift is eps * (r_1 + r_2 + r_3) against a margin of
    # 0.5 * 3: only images whose three signs all oppose the label flip (about 1 in 8).
    per_channel = fourier_heatmap(model, (images, labels), eps=1.0, seed=0)
    plane = conjugate_half_plane(8, 8)
    k = int(np.flatnonzero((plane.du == 1) & (plane.dv == 0))[0])
    draws = torch.randint(0, 2, (plane.size, 32, 3), generator=torch.Generator().manual_seed(0)) * 2 - 1
    opposed = (draws[k] == -(labels * 2 - 1)[:, None]).all(dim=1).double().mean().item()
    assert per_channel.error_rate[4 + 1, 4 + 0] == opposed < at_pattern
    assert result.error_rate[4 - 1, 4 + 0] == at_pattern  # mirrored conjugate
    # Orthogonal low frequencies leave the score unchanged.
    assert result.error_rate[4 + 0, 4 + 1] == 0.0 and result.error_rate[4, 4] == 0.0
    assert result.to_dict(grid=False)["max_error_frequency"] in ([1, 0], [-1, 0])


def test_below_the_margin_nothing_flips_and_eps_zero_gives_the_clean_error():
    model, images, labels = _low_pass_case(n=8)
    small = fourier_heatmap(model, (images, labels), eps=0.4)
    assert np.all(small.error_rate == 0.0)
    flipped = labels.clone()
    flipped[:3] = 1 - flipped[:3]
    zero = fourier_heatmap(model, (images, flipped), eps=0.0)
    assert zero.clean_error == pytest.approx(3 / 8)
    np.testing.assert_allclose(zero.error_rate, 3 / 8)


def _plain_heatmap(model, images, labels, eps, seed, channels_share_sign):
    """The heat map written plainly from Yin et al.'s definition: for every frequency of the conjugate
    half plane and every image, x' = clip(x + eps * r_c * U, 0, 1) with U the unit-norm cosine at that
    frequency and r_c a random sign per channel (or one per image); the error rate per frequency,
    mirrored to the conjugate. The signs follow the documented draw so the two can be compared exactly."""
    n, c, h, w = images.shape
    plane = conjugate_half_plane(h, w)
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (plane.size, n, 1 if channels_share_sign else c), generator=generator) * 2 - 1
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    grid = np.zeros((h, w))
    for k in range(plane.size):
        pattern = np.cos(2 * np.pi * (plane.du[k] * rows / h + plane.dv[k] * cols / w))
        pattern = torch.tensor(pattern / np.linalg.norm(pattern), dtype=torch.float32)
        wrong = 0
        for i in range(n):
            r = signs[k, i].float().expand(c)
            x = (images[i] + eps * r[:, None, None] * pattern).clamp(0, 1)
            with torch.no_grad():
                wrong += int(model(x[None]).argmax(1).item() != int(labels[i]))
        for position in (plane.index[k], plane.conjugate_index[k]):
            grid.flat[position] = wrong / n
    return grid


def test_the_default_heat_map_is_yin_et_al_s_per_channel_sign():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 3)).eval()
    images = torch.rand(5, 3, 6, 6)
    labels = torch.tensor([0, 1, 2, 0, 1])
    default = fourier_heatmap(model, (images, labels), eps=3.0, seed=4)
    assert default.sign == "channel" and default.to_dict()["sign"] == "channel"
    plain = _plain_heatmap(model, images, labels, eps=3.0, seed=4, channels_share_sign=False)
    np.testing.assert_array_equal(default.error_rate, plain)
    shared = fourier_heatmap(model, (images, labels), eps=3.0, seed=4, sign="image")
    np.testing.assert_array_equal(
        shared.error_rate, _plain_heatmap(model, images, labels, eps=3.0, seed=4, channels_share_sign=True)
    )
    assert not np.array_equal(default.error_rate, shared.error_rate)


def test_signs_are_seeded_and_channel_signs_are_an_option():
    model, images, labels = _low_pass_case(n=16)
    one = fourier_heatmap(model, (images, labels), eps=1.0, seed=3)
    two = fourier_heatmap(model, (images, labels), eps=1.0, seed=3, batch_size=7)
    np.testing.assert_array_equal(one.error_rate, two.error_rate)
    shared = fourier_heatmap(model, (images, labels), eps=1.0, sign="image")
    assert shared.sign == "image" and shared.error_rate.shape == (8, 8)
    assert np.all(shared.error_rate[band_map(8, 8).numpy() >= 3] == 0.0)


def test_save_load_and_json(tmp_path):
    model, images, labels = _low_pass_case(n=4)
    result = fourier_heatmap(model, (images, labels), eps=1.0, n=4)
    loaded = HeatmapResult.load(result.save(tmp_path / "heatmap.npz"))
    np.testing.assert_array_equal(loaded.error_rate, result.error_rate)
    assert (loaded.eps, loaded.sign, loaded.num_images) == (1.0, "channel", 4)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert np.array(data["error_rate"]).shape == (8, 8)
    assert data["indices"] == [0, 1, 2, 3] and data["subset"] == "all"
    from freqtail.data.subsets import stratified_subset

    model, images, labels = _low_pass_case(n=16)
    picked = fourier_heatmap(model, (images, labels), eps=1.0, n=5, subset_seed=3).to_dict()
    assert picked["indices"] == stratified_subset(labels.numpy(), 5, seed=3).tolist()
    assert picked["num_images"] == 5 and picked["subset_seed"] == 3


def test_bad_input_sentences():
    model, images, labels = _low_pass_case(n=4)
    with pytest.raises(InputError, match="eps"):
        fourier_heatmap(model, (images, labels), eps=-1)
    with pytest.raises(InputError, match="eps"):
        fourier_heatmap(model, (images, labels), eps=float("inf"))
    with pytest.raises(InputError, match="sign mode"):
        fourier_heatmap(model, (images, labels), sign="pixel")
    with pytest.raises(InputError, match="batch size"):
        fourier_heatmap(model, (images, labels), batch_size=0)
