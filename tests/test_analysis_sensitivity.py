"""Frequency sensitivity (paper §3.2.2, Eq. 3): half plane, linear models with known answers, invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from freqtail.analysis import (
    SensitivityAccumulator,
    SensitivityResult,
    conjugate_half_plane,
    frequency_sensitivity,
    radius_density,
)
from freqtail.errors import InputError
from freqtail.spectrum import band_map, summarize


def cosine_pattern(h: int, w: int, du: int, dv: int) -> torch.Tensor:
    """Unit-norm cos(2 pi (du m / H + dv n / W)), written here from the formula."""
    m = torch.arange(h, dtype=torch.float64)[:, None]
    n = torch.arange(w, dtype=torch.float64)[None, :]
    pattern = torch.cos(2 * math.pi * (du * m / h + dv * n / w))
    return (pattern / pattern.norm()).float()


class PatternLogit(nn.Module):
    """Two classes: logit 0 is 0, logit 1 is <x, P> summed over channels (P the same on every channel).

    The input gradient of the cross-entropy is (p1 - y1) * P on every channel, with p1 = sigmoid(<x, P>).
    """

    def __init__(self, pattern: torch.Tensor):
        super().__init__()
        self.pattern = nn.Parameter(pattern.clone())

    def forward(self, x):
        score = (x * self.pattern).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(score), score], dim=1)


# ---------------------------------------------------------------------------------------------------
# The conjugate half plane
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (4, 4), (5, 5), (4, 5), (5, 4), (6, 3), (7, 8)])
def test_half_plane_keeps_one_coefficient_per_conjugate_class(size):
    h, w = size
    plane = conjugate_half_plane(h, w)
    # Brute force over the unshifted DFT: classes {(u, v), (-u mod H, -v mod W)}.
    classes = {frozenset({(u, v), ((-u) % h, (-v) % w)}) for u in range(h) for v in range(w)}
    assert plane.size == len(classes)
    kept = {((du % h), (dv % w)) for du, dv in zip(plane.du, plane.dv, strict=True)}
    assert len(kept) == plane.size
    assert all(len(cls & kept) == 1 for cls in classes)
    assert plane.multiplicity.sum() == h * w
    assert set(np.union1d(plane.index, plane.conjugate_index)) == set(range(h * w))


def test_half_plane_4x4_is_the_documented_set():
    plane = conjugate_half_plane(4, 4)
    kept = set(zip(plane.du.tolist(), plane.dv.tolist(), strict=True))
    # dv = 1 column, every row; dv = 0 and Nyquist dv = -2 columns: rows 0, 1 and Nyquist -2.
    expected = {(du, 1) for du in (-2, -1, 0, 1)} | {(du, dv) for dv in (0, -2) for du in (0, 1, -2)}
    assert kept == expected
    self_conjugate = {(0, 0), (0, -2), (-2, 0), (-2, -2)}
    for du, dv, mult in zip(plane.du, plane.dv, plane.multiplicity, strict=True):
        assert mult == (1.0 if (du, dv) in self_conjugate else 2.0)


def test_half_plane_geometry_matches_spectrum_maps_and_conjugate_symmetry():
    h, w = 6, 5
    plane = conjugate_half_plane(h, w)
    assert np.array_equal(plane.band, band_map(h, w).numpy().ravel()[plane.index])
    np.testing.assert_allclose(plane.radius, np.hypot(plane.du, plane.dv))
    g = np.random.default_rng(0).normal(size=(h, w))
    spectrum = np.fft.fftshift(np.fft.fft2(g)).ravel()
    np.testing.assert_allclose(spectrum[plane.conjugate_index], np.conj(spectrum[plane.index]), atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Known answers on a linear model
# ---------------------------------------------------------------------------------------------------


def _linear_case(h=16, w=16, du=3, dv=5, n=6, seed=0):
    pattern = cosine_pattern(h, w, du, dv)
    model = PatternLogit(pattern)
    rng = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=rng)
    labels = torch.arange(n) % 2
    return model, pattern, images, labels


def test_top_coefficient_is_the_pattern_frequency_with_the_hand_computed_radius_and_magnitude():
    model, pattern, images, labels = _linear_case()
    result = frequency_sensitivity(model, (images, labels), boundary_band=3, batch_size=4)
    assert result.num_images == 6 and result.num_zero_gradient == 0
    assert result.rank_positions[0] == 0
    np.testing.assert_allclose(result.rank_radius_samples[0], math.sqrt(3**2 + 5**2))
    assert np.all(result.rank_band_samples[0] == 5)
    # |c| of (p1 - y1) * P at its frequency: |p1 - y1| * sqrt(2 / HW) * HW / 2 = |p1 - y1| * sqrt(HW / 2).
    p1 = torch.sigmoid((images * pattern).sum(dim=(1, 2, 3)).double())
    expected = ((p1 - labels.double()).abs() * math.sqrt(16 * 16 / 2)).mean()
    assert result.mean_sorted_magnitude[0] == pytest.approx(float(expected), rel=1e-4)
    # Every other coefficient is zero up to float32 rounding.
    assert result.mean_sorted_magnitude[1] < 1e-4 * result.mean_sorted_magnitude[0]


@pytest.mark.parametrize(("boundary", "share"), [(3, 1.0), (5, 1.0), (6, 0.0), (12, 0.0)])
def test_hfc_shares_are_one_above_and_zero_below_the_boundary(boundary, share):
    model, _, images, labels = _linear_case()
    plane = conjugate_half_plane(16, 16)
    result = frequency_sensitivity(
        model, (images, labels), boundary_band=boundary, top_fraction=1.0 / plane.size
    )
    assert result.hfc_energy_share == pytest.approx(share, abs=1e-6)
    assert result.top_hfc_share == share  # the single top coefficient per image is the pattern's
    assert result.rank_hfc_share[0] == share


def test_self_conjugate_nyquist_pattern_is_found():
    model, _, images, labels = _linear_case(h=8, w=8, du=-4, dv=0)
    result = frequency_sensitivity(model, (images, labels), boundary_band=2)
    np.testing.assert_allclose(result.rank_radius_samples[0], 4.0)


# ---------------------------------------------------------------------------------------------------
# Invariants on a small CNN, against a second implementation
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_case():
    from freqtail.models import create_model
    from freqtail.sample_photos import photo_crops

    torch.manual_seed(0)
    model = create_model("small-cnn", 4, width=4)
    images = photo_crops(16, 3, seed=1)[:10]
    labels = torch.arange(10) % 4
    return model, images, labels


def _reference_gradients(model, images_uint8, labels):
    """Per-image gradients, one image at a time, on a copy of the model in eval mode."""
    import copy

    reference = copy.deepcopy(model).eval()
    x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255
    grads = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(reference(xi), labels[i : i + 1])
        grads.append(torch.autograd.grad(loss, xi)[0][0])
    return torch.stack(grads).double().numpy()


def test_rank_curve_band_energies_and_extremes_match_a_numpy_reference(cnn_case):
    model, images, labels = cnn_case
    model.train()  # the analysis must switch to eval mode itself and restore this flag
    result = frequency_sensitivity(model, (images, labels), boundary_band=3, batch_size=3)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())

    curve = result.mean_sorted_magnitude
    assert curve.size == conjugate_half_plane(16, 16).size
    assert np.all(np.diff(curve) <= 1e-12)

    grads = _reference_gradients(model, images, labels).mean(axis=1)  # channel mean, (N, H, W)
    spectra = np.abs(np.fft.fftshift(np.fft.fft2(grads), axes=(1, 2))).reshape(len(grads), -1)
    np.testing.assert_allclose(curve[0], spectra.max(axis=1).mean(), rtol=1e-4)
    np.testing.assert_allclose(curve[-1], spectra.min(axis=1).mean(), rtol=1e-3, atol=1e-9)

    bands = band_map(16, 16).numpy().ravel()
    energy = spectra**2
    per_band = np.stack([np.bincount(bands, weights=e, minlength=bands.max() + 1) for e in energy])
    share = (per_band / per_band.sum(axis=1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(result.band_energy_share, share, rtol=1e-4, atol=1e-9)
    assert result.hfc_energy_share == pytest.approx(share[3:].sum(), rel=1e-4)


def test_batch_size_does_not_change_the_result(cnn_case):
    model, images, labels = cnn_case
    one = frequency_sensitivity(model, (images, labels), boundary_band=4, batch_size=1)
    many = frequency_sensitivity(model, (images, labels), boundary_band=4, batch_size=10)
    np.testing.assert_allclose(one.mean_sorted_magnitude, many.mean_sorted_magnitude, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(one.band_energy_share, many.band_energy_share, rtol=1e-4, atol=1e-9)


def test_default_boundary_is_measured_on_the_same_images(cnn_case):
    model, images, labels = cnn_case
    result = frequency_sensitivity(model, (images, labels), n=8)
    assert result.num_images == 8
    assert result.spectrum is not None
    # The documented subset: the class-stratified rule on the labels, seed 0.
    from freqtail.data.subsets import stratified_subset

    chosen = stratified_subset(labels.numpy(), 8, seed=0)
    assert result.boundary_band == summarize(images[chosen]).boundary_band
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["spectrum"]["num_images"] == 8 and data["indices"] == chosen.tolist()


def test_n_selects_a_fixed_stratified_subset_across_a_class_sorted_set():
    from freqtail.analysis._data import collect, select_images
    from freqtail.data import ArrayDataset
    from freqtail.data.subsets import FIRST_N_RULE, SUBSET_RULE, stratified_subset

    images = torch.arange(40, dtype=torch.float32).reshape(40, 1, 1, 1).expand(40, 1, 2, 2) / 40
    labels = torch.arange(40) // 10  # class-sorted: 4 classes of 10
    x, y = collect((images, labels), n=8)
    picked = (x[:, 0, 0, 0] * 40).round().long()
    assert picked.tolist() == stratified_subset(labels.numpy(), 8, 0).tolist()
    assert np.bincount(y.numpy(), minlength=4).tolist() == [2, 2, 2, 2]  # every class, evenly
    assert torch.equal(collect((images, labels), n=8)[0], x)  # the same images every time
    assert collect((images, labels), n=100)[0].shape[0] == 40
    other_seed = collect((images, labels), n=8, selection=select_images((images, labels), 8, seed=5))[0]
    assert not torch.equal(other_seed, x)
    # A dataset selects by its labels, the same rule; an iterable takes its first n and says so.
    uint8 = (np.arange(40, dtype=np.uint8) * 6).reshape(40, 1, 1, 1).repeat(2, 1).repeat(2, 2).repeat(3, 3)
    dataset = ArrayDataset(uint8, labels.numpy(), list("abcd"))
    chosen = select_images(dataset, 8, seed=0)
    assert chosen.rule == SUBSET_RULE and chosen.indices.tolist() == picked.tolist()
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    assert select_images(loader, 8).to_dict() == {
        "subset": FIRST_N_RULE,
        "subset_seed": 0,
        "n_requested": 8,
        "indices": None,
    }


def test_accepts_a_dataset_and_a_loader(cnn_case):
    from freqtail.data import ArrayDataset

    model, images, labels = cnn_case
    dataset = ArrayDataset(images, labels.numpy(), ["a", "b", "c", "d"])
    from_pair = frequency_sensitivity(model, (images, labels), boundary_band=3, n=7)
    from_dataset = frequency_sensitivity(model, dataset, boundary_band=3, n=7, batch_size=4)
    assert from_dataset.num_images == 7
    np.testing.assert_allclose(from_dataset.mean_sorted_magnitude, from_pair.mean_sorted_magnitude, rtol=1e-4)
    # An iterable of batches contributes its first n images.
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)
    from_loader = frequency_sensitivity(model, loader, boundary_band=3, n=7)
    first_seven = frequency_sensitivity(model, (images[:7], labels[:7]), boundary_band=3)
    assert from_loader.num_images == 7
    np.testing.assert_allclose(
        from_loader.mean_sorted_magnitude, first_seven.mean_sorted_magnitude, rtol=1e-4
    )


# ---------------------------------------------------------------------------------------------------
# Degenerate cases, serialisation, bad input
# ---------------------------------------------------------------------------------------------------


class DarkBlind(nn.Module):
    """Pattern logit that only exists for bright images: dark images get an exactly zero gradient."""

    def __init__(self, pattern):
        super().__init__()
        self.inner = PatternLogit(pattern)

    def forward(self, x):
        bright = (x.mean(dim=(1, 2, 3)) > 0.25).float()[:, None]
        return self.inner(x) * bright


def test_zero_gradient_images_are_skipped_and_counted():
    pattern = cosine_pattern(8, 8, 1, 2)
    images = torch.cat([torch.full((2, 1, 8, 8), 0.1), 0.5 + 0.1 * torch.rand(3, 1, 8, 8)])
    labels = torch.tensor([0, 1, 0, 1, 1])
    result = frequency_sensitivity(DarkBlind(pattern), (images, labels), boundary_band=2)
    assert (result.num_images, result.num_zero_gradient) == (3, 2)
    with pytest.raises(InputError, match="exactly zero"):
        frequency_sensitivity(DarkBlind(pattern), (images[:2], labels[:2]), boundary_band=2)


def test_kde_handles_point_masses_and_tiny_samples():
    grid = np.linspace(0, 10, 101)
    assert radius_density(np.array([3.0, 3.0, 3.0]), grid) is None
    assert radius_density(np.array([3.0]), grid) is None
    density = radius_density(np.array([2.0, 3.0, 3.5, 5.0]), grid)
    assert density is not None and np.all(density >= 0)
    from scipy.integrate import trapezoid

    assert trapezoid(density, grid) == pytest.approx(1.0, abs=0.05)


def test_to_dict_is_json_safe_with_point_masses_and_save_load_round_trip(tmp_path):
    model, _, images, labels = _linear_case(n=4)
    result = frequency_sensitivity(model, (images, labels), boundary_band=4)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["ranks"][0]["density"] is None  # every image's top radius is sqrt(34)
    assert data["ranks"][0]["mean_radius"] == pytest.approx(math.sqrt(34))
    assert data["num_coefficients"] == len(data["mean_sorted_magnitude"])
    path = result.save(tmp_path / "sens.npz")
    loaded = SensitivityResult.load(path)
    assert loaded.boundary_band == 4 and loaded.image_size == (16, 16)
    np.testing.assert_array_equal(loaded.rank_radius_samples, result.rank_radius_samples)
    assert loaded.top_hfc_share == result.top_hfc_share
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    with pytest.raises(InputError, match="not a readable"):
        SensitivityResult.load(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="does not exist"):
        SensitivityResult.load(tmp_path / "missing.npz")


def test_bad_input_sentences():
    model, _, images, labels = _linear_case(n=4)
    with pytest.raises(InputError, match="rank fractions"):
        SensitivityAccumulator(rank_fractions=[0.5, 1.5])
    with pytest.raises(InputError, match="top fraction"):
        SensitivityAccumulator(top_fraction=0)
    with pytest.raises(InputError, match="not a class"):
        frequency_sensitivity(model, (images, torch.tensor([0, 1, 2, 1])), boundary_band=3)
    with pytest.raises(InputError, match="one label per image"):
        frequency_sensitivity(model, (images, labels[:3]), boundary_band=3)
    with pytest.raises(InputError, match="boundary band"):
        frequency_sensitivity(model, (images, labels), boundary_band=99)
    with pytest.raises(InputError, match="number of images n must be a positive integer"):
        frequency_sensitivity(model, (images, labels), n=0)
    with pytest.raises(InputError, match="NaN"):
        frequency_sensitivity(model, (images * float("nan"), labels), boundary_band=3)
    with pytest.raises(InputError, match="logits"):
        frequency_sensitivity(nn.Flatten(0), (images, labels), boundary_band=3)
    with pytest.raises(InputError, match="data must be"):
        frequency_sensitivity(model, 42, boundary_band=3)
