"""Tests of freqtail.spectrum against hand-computed cases and a plain numpy re-implementation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from freqtail import spectrum as S
from freqtail.errors import InputError

# --------------------------------------------------------------------------------------------------
# A second, deliberately plain implementation (full fft2, fftshift, a loop over pixels)
# --------------------------------------------------------------------------------------------------


def ref_bands(h: int, w: int) -> np.ndarray:
    bands = np.zeros((h, w), dtype=np.int64)
    for i in range(h):
        for j in range(w):
            bands[i, j] = math.isqrt((i - h // 2) ** 2 + (j - w // 2) ** 2)
    return bands


def ref_band_power(img: np.ndarray, quantity: str = "power", reduce: str = "sum") -> np.ndarray:
    """Band sums of |X|^2 (or |X|) of one float64 (H, W) image, by brute force."""
    h, w = img.shape
    spectrum = np.fft.fftshift(np.fft.fft2(img))
    values = np.abs(spectrum) ** 2 if quantity == "power" else np.abs(spectrum)
    bands = ref_bands(h, w)
    sums = np.zeros(bands.max() + 1)
    counts = np.zeros(bands.max() + 1)
    for i in range(h):
        for j in range(w):
            sums[bands[i, j]] += values[i, j]
            counts[bands[i, j]] += 1
    return sums / counts if reduce == "mean" else sums


def ref_boundary(pi: np.ndarray, ratio: float) -> int:
    """Largest n with sum(pi[:n]) <= ratio (tiny tolerance for float sums)."""
    best = 0
    for n in range(len(pi) + 1):
        if pi[:n].sum() <= ratio + 1e-12:
            best = n
    return best


def ref_dataset(images: np.ndarray, ratio: float):
    """(mean pi, dataset boundary, per-image boundaries, skipped images, skipped channels) for uint8 NHWC."""
    pis, per_image, skipped_images, skipped_channels = [], [], 0, 0
    for image in images.astype(np.float64):
        channel_pis = []
        for c in range(image.shape[2]):
            channel = image[:, :, c]
            if channel.max() == channel.min():
                skipped_channels += 1
                continue
            power = ref_band_power(channel)
            power[0] = 0.0
            channel_pis.append(power / power.sum())
        if not channel_pis:
            skipped_images += 1
            continue
        pis += channel_pis
        per_image.append(ref_boundary(np.mean(channel_pis, axis=0), ratio))
    mean_pi = np.mean(pis, axis=0)
    return mean_pi, ref_boundary(mean_pi, ratio), np.array(per_image), skipped_images, skipped_channels


SIZES = [(8, 8), (7, 7), (6, 9), (9, 4), (1, 5), (5, 1), (1, 1), (2, 2), (15, 20)]


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", SIZES)
def test_band_map_matches_brute_force_and_every_band_is_populated(h, w):
    bands = S.band_map(h, w)
    assert bands.dtype == torch.int64 and bands.shape == (h, w)
    np.testing.assert_array_equal(bands.numpy(), ref_bands(h, w))
    assert S.num_bands(h, w) == int(bands.max()) + 1
    assert np.all(np.bincount(bands.numpy().ravel()) > 0)
    assert int((bands == 0).sum()) == 1 and int(bands[h // 2, w // 2]) == 0
    radius = S.radius_map(h, w)
    assert float(radius[h // 2, w // 2]) == 0.0
    assert S.corner_radius(h, w) == pytest.approx(float(radius.max()))
    np.testing.assert_array_equal(np.floor(radius.numpy() + 1e-12).astype(np.int64), bands.numpy())


def test_geometry_hand_computed():
    # 5x4: centre (2, 2); offsets u in -2..2, v in -2..1; corner hypot(2, 2) = 2.83 -> bands 0..2.
    expected = np.array(
        [
            [2, 2, 2, 2],
            [2, 1, 1, 1],
            [2, 1, 0, 1],
            [2, 1, 1, 1],
            [2, 2, 2, 2],
        ]
    )
    np.testing.assert_array_equal(S.band_map(5, 4).numpy(), expected)
    assert S.num_bands(5, 4) == 3
    assert S.nyquist_radius(5, 4) == 2.0
    assert S.corner_radius(5, 4) == pytest.approx(math.sqrt(8))
    assert S.num_bands(32, 32) == 23  # floor(hypot(16, 16)) = 22
    assert S.full_ring_max_band(32, 32) == 15 and S.full_ring_max_band(33, 40) == 16
    with pytest.raises(InputError):
        S.band_map(0, 4)


def test_maps_are_copies_so_callers_cannot_corrupt_the_cache():
    S.band_map(6, 6)[:] = 99
    S.radius_map(6, 6)[:] = -1
    np.testing.assert_array_equal(S.band_map(6, 6).numpy(), ref_bands(6, 6))
    assert float(S.radius_map(6, 6).min()) == 0.0


# --------------------------------------------------------------------------------------------------
# Spectrum and band power
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(8, 8), (7, 5), (1, 1)])
def test_centered_spectrum_puts_dc_at_the_centre(h, w):
    x = torch.rand(2, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spectrum = S.centered_spectrum(x)
    assert spectrum.is_complex() and spectrum.shape == (2, h, w)
    np.testing.assert_allclose(spectrum[:, h // 2, w // 2].real.numpy(), x.sum(dim=(-2, -1)).numpy())
    np.testing.assert_allclose(spectrum.numpy(), np.fft.fftshift(np.fft.fft2(x.numpy()), axes=(-2, -1)))


# (H, W, fu, fv, band): band = floor(hypot(fu, fv)), computed by hand.
COSINES = [
    (32, 32, 3, 4, 5),  # hypot = 5 exactly: the lower edge of band 5
    (15, 20, 2, 6, 6),  # sqrt(40) = 6.32
    (17, 9, 5, 3, 5),  # sqrt(34) = 5.83, odd sizes
    (8, 8, 4, 4, 5),  # the Nyquist frequency on both axes: sqrt(32) = 5.66
    (12, 7, 0, 3, 3),  # a pure horizontal frequency
    (16, 10, 7, 1, 7),  # sqrt(50) = 7.07
]


@pytest.mark.parametrize("h,w,fu,fv,band", COSINES)
def test_cosine_puts_all_non_dc_power_in_its_band(h, w, fu, fv, band):
    u = np.arange(h)[:, None]
    v = np.arange(w)[None, :]
    x = np.cos(2 * np.pi * (fu * u / h + fv * v / w)) + 0.25
    power = S.band_power(x)
    assert isinstance(power, np.ndarray) and power.shape == (S.num_bands(h, w),)
    non_dc = power.copy()
    non_dc[0] = 0
    assert np.argmax(non_dc) == band
    total_non_dc = h * w * np.sum((x - x.mean()) ** 2)  # Parseval on the zero-mean part
    assert non_dc[band] == pytest.approx(total_non_dc, rel=1e-9)
    assert np.delete(non_dc, band).max() <= 1e-9 * total_non_dc
    assert power[0] == pytest.approx((0.25 * h * w) ** 2, rel=1e-9)
    pi = S.band_proportions(power)
    assert pi[band] == pytest.approx(1.0) and pi[0] == 0.0


@pytest.mark.parametrize("h,w", SIZES)
def test_band_power_parseval_and_brute_force(h, w):
    gen = torch.Generator().manual_seed(h * 100 + w)
    x = torch.rand(2, 3, h, w, dtype=torch.float64, generator=gen) * 3 - 1
    power = S.band_power(x)
    assert power.shape == (2, 3, S.num_bands(h, w)) and power.dtype == torch.float64
    np.testing.assert_allclose(power.sum(-1).numpy(), h * w * (x**2).sum(dim=(-2, -1)).numpy(), rtol=1e-10)
    for quantity in ("power", "amplitude"):
        for reduce in ("sum", "mean"):
            got = S.band_power(x, quantity=quantity, reduce=reduce)
            for i in range(2):
                for c in range(3):
                    expected = ref_band_power(x[i, c].numpy(), quantity, reduce)
                    np.testing.assert_allclose(got[i, c].numpy(), expected, rtol=1e-9, atol=1e-9)


def test_band_power_float32_agrees_with_float64_and_numpy_roundtrip():
    x = torch.rand(4, 1, 13, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    p64 = S.band_power(x)
    p32 = S.band_power(x.float())
    assert p32.dtype == torch.float32
    np.testing.assert_allclose(p32.double().numpy(), p64.numpy(), rtol=2e-4, atol=1e-3)
    np.testing.assert_allclose(S.band_power(x.numpy()), p64.numpy())


def test_band_power_rejects_bad_input():
    with pytest.raises(InputError, match="NaN"):
        S.band_power(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(InputError, match="floating-point"):
        S.band_power(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(InputError, match="as_float_images"):
        S.band_power(np.zeros((2, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="at least 2 dimensions"):
        S.band_power(torch.ones(5))
    with pytest.raises(InputError, match="empty"):
        S.band_power(torch.ones(0, 4, 4))
    with pytest.raises(InputError, match="quantity"):
        S.band_power(torch.ones(4, 4), quantity="energy")
    with pytest.raises(InputError, match="reduce"):
        S.band_power(torch.ones(4, 4), reduce="max")


def test_one_by_one_image_has_only_dc():
    power = S.band_power(torch.tensor([[[0.5]]]))
    assert power.shape == (1, 1) and float(power[0, 0]) == pytest.approx(0.25)
    assert not bool(S.has_signal(power)[0])
    assert torch.equal(S.band_proportions(power), torch.zeros(1, 1))
    with pytest.raises(InputError, match="1x1"):
        S.boundary_fractions(0, 1, 1)


# --------------------------------------------------------------------------------------------------
# Proportions, boundary, fractions
# --------------------------------------------------------------------------------------------------


def test_band_proportions_with_and_without_dc():
    power = np.array([[6.0, 1.0, 2.0, 1.0], [0.0, 0.0, 3.0, 1.0]])
    np.testing.assert_allclose(S.band_proportions(power), [[0, 0.25, 0.5, 0.25], [0, 0, 0.75, 0.25]])
    np.testing.assert_allclose(
        S.band_proportions(power, include_dc=True), [[0.6, 0.1, 0.2, 0.1], [0, 0, 0.75, 0.25]]
    )


def test_constant_and_zero_images_have_no_signal_and_zero_pi_never_nan():
    x = torch.stack([torch.full((9, 7), 0.7), torch.zeros(9, 7), torch.rand(9, 7)])
    power = S.band_power(x)
    assert S.has_signal(power).tolist() == [False, False, True]
    pi = S.band_proportions(power)
    assert torch.isfinite(pi).all()
    assert torch.equal(pi[0], torch.zeros_like(pi[0])) and torch.equal(pi[1], torch.zeros_like(pi[1]))
    assert float(pi[2].sum()) == pytest.approx(1.0)
    assert S.has_signal(power, include_dc=True).tolist() == [True, False, True]
    # no signal: b = K + 1, everything is low frequency
    assert S.lfc_boundary(pi).tolist()[:2] == [pi.shape[-1], pi.shape[-1]]


@pytest.mark.parametrize(
    "pi,ratio,expected",
    [
        ([0, 1, 0, 0], 0.8, 1),  # all power in band 1: bands < 1 carry 0, bands < 2 carry 1 > 0.8
        ([0, 0.5, 0.3, 0.2], 0.8, 3),  # ratio hit exactly: bands < 3 carry 0.8
        ([0, 0.25, 0.25, 0.25, 0.25], 0.5, 3),  # exactly representable tie
        ([0, 0.1, 0.1, 0.1, 0.7], 0.8, 4),
        ([0, 0.9, 0.05, 0.05], 0.8, 1),
        ([0, 0.2, 0.2, 0.2, 0.2, 0.2], 0.3, 2),
        ([0, 0, 0, 0, 1], 0.5, 4),  # power only in the last band
        ([0.5, 0.5], 0.2, 0),  # DC included: band 0 alone carries 0.5 > 0.2, so no LFC
    ],
)
def test_lfc_boundary_hand_made(pi, ratio, expected):
    assert int(S.lfc_boundary(np.array(pi), ratio)) == expected
    assert int(S.lfc_boundary(torch.tensor(pi, dtype=torch.float32), ratio)) == expected
    assert int(S.lfc_boundary(torch.tensor(pi, dtype=torch.float64), ratio)) == expected


def test_lfc_boundary_matches_definition_on_random_batches():
    rng = np.random.default_rng(3)
    pi = rng.dirichlet(np.ones(12) * 0.3, size=(5, 7))
    pi[..., 0] = 0
    pi /= pi.sum(-1, keepdims=True)
    for ratio in (0.2, 0.5, 0.8, 0.95):
        b = S.lfc_boundary(pi, ratio)
        assert b.shape == (5, 7) and b.dtype == np.int64
        expected = np.array([[ref_boundary(row, ratio) for row in block] for block in pi])
        np.testing.assert_array_equal(b, expected)
        # the definition, restated: bands < b carry <= ratio, bands < b + 1 carry more
        below = np.take_along_axis(np.cumsum(pi, -1), (b - 1)[..., None].clip(0), -1)[..., 0]
        assert np.all(below <= ratio + 1e-12)
        above = np.take_along_axis(np.cumsum(pi, -1), b[..., None], -1)[..., 0]
        assert np.all(above > ratio)


@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5, float("nan"), "x", None])
def test_lfc_boundary_rejects_bad_ratio(ratio):
    with pytest.raises(InputError, match="ratio"):
        S.lfc_boundary(np.array([0, 0.5, 0.5]), ratio)


def test_lfc_boundary_rejects_unnormalised_and_bad_values():
    with pytest.raises(InputError, match="sum to 1"):
        S.lfc_boundary(np.array([10.0, 5.0, 2.0]))
    with pytest.raises(InputError, match="negative"):
        S.lfc_boundary(np.array([0, 1.5, -0.5]))
    with pytest.raises(InputError, match="NaN"):
        S.lfc_boundary(np.array([0, np.nan, 1.0]))


def test_boundary_fractions():
    frac_nyq, frac_corner = S.boundary_fractions(8, 32, 32)
    assert frac_nyq == 0.5 and frac_corner == pytest.approx(8 / math.sqrt(16**2 + 16**2))
    fn, fc = S.boundary_fractions(np.array([3, 6]), 12, 20)
    np.testing.assert_allclose(fn, [0.5, 1.0])
    np.testing.assert_allclose(fc, np.array([3, 6]) / math.hypot(6, 10))


def ref_inscribed_boundary(pi: np.ndarray, max_band: int, ratio: float) -> int:
    """Eq. 2 on pi[0 .. max_band] renormalised, by the plain reference (None without power there)."""
    kept = np.asarray(pi[: max_band + 1], dtype=np.float64)
    return None if kept.sum() == 0 else ref_boundary(kept / kept.sum(), ratio)


def test_inscribed_max_band():
    assert S.inscribed_max_band(32, 32) == 16 and S.inscribed_max_band(64, 64) == 32
    assert S.inscribed_max_band(15, 20) == 7 and S.inscribed_max_band(33, 40) == 16
    assert S.inscribed_max_band(1, 9) == 0  # only DC lies inside a circle of radius 1/2
    # the paper's H / 2 lies between the last complete ring and the corner
    assert S.full_ring_max_band(32, 32) == 15 < 16 < S.num_bands(32, 32) - 1 == 22
    with pytest.raises(InputError):
        S.inscribed_max_band(0, 4)


def test_inscribed_boundary_hand_computed():
    # Bands 0 .. 5 of an 8x8 image (corner band 5 lies beyond the inscribed band 8 // 2 = 4).
    pi = np.array([0.0, 0.36, 0.20, 0.12, 0.07, 0.25])
    # corner: sum(pi[:5]) = 0.75 <= 0.8 < sum(pi[:6]) = 1, so b = 5
    assert int(S.lfc_boundary(pi, 0.8)) == 5
    # inscribed: bands 0 .. 4 hold 0.75, renormalised 0, .48, .2667, .16, .0933; cumulative .48, .7467,
    # .9067, so b = 3
    kept = S.truncate_proportions(pi, 4)
    np.testing.assert_allclose(kept, [0.0, 0.48, 0.20 / 0.75, 0.16, 0.07 / 0.75], rtol=1e-12)
    assert int(S.lfc_boundary(pi, 0.8, max_band=4)) == 3
    assert int(S.lfc_boundary(torch.tensor(pi, dtype=torch.float32), 0.8, max_band=4)) == 3
    # a lower ratio: .48 <= 0.5 < .7467, so b = 2 inscribed; the corner gets 2 too (.36 <= .5 < .56)
    assert int(S.lfc_boundary(pi, 0.5, max_band=4)) == 2 == int(S.lfc_boundary(pi, 0.5))
    # max_band at or beyond K changes nothing
    for m in (5, 6, 100):
        assert int(S.lfc_boundary(pi, 0.8, max_band=m)) == 5
        np.testing.assert_allclose(S.truncate_proportions(pi, m), pi)
    # no power in the kept bands: the no-signal rule, b = max_band + 1 (all of it is "low")
    assert int(S.lfc_boundary(pi, 0.8, max_band=0)) == 1
    assert S.truncate_proportions(np.array([0.0, 0.0, 0.0, 1.0]), 2).tolist() == [0.0, 0.0, 0.0]
    assert int(S.lfc_boundary(np.array([0.0, 0.0, 0.0, 1.0]), 0.8, max_band=2)) == 3


def test_inscribed_boundary_agrees_when_nothing_lies_beyond_and_never_exceeds_the_corner_one():
    rng = np.random.default_rng(11)
    pi = rng.dirichlet(np.ones(14) * 0.4, size=(6, 5))
    pi[..., 0] = 0
    inside = pi.copy()
    inside[..., 10:] = 0  # no power beyond band 9
    pi /= pi.sum(-1, keepdims=True)
    inside /= inside.sum(-1, keepdims=True)
    for ratio in (0.3, 0.5, 0.8, 0.95):
        for m in (9, 10, 13):
            np.testing.assert_array_equal(
                S.lfc_boundary(inside, ratio, max_band=m), S.lfc_boundary(inside, ratio)
            )
        b = S.lfc_boundary(pi, ratio)
        b_inscribed = S.lfc_boundary(pi, ratio, max_band=9)
        assert b_inscribed.shape == (6, 5) and b_inscribed.dtype == np.int64
        # renormalising raises every cumulative sum, so the boundary can only move inwards
        assert np.all(b_inscribed <= b) and np.any(b_inscribed < b)
        expected = [[ref_inscribed_boundary(row, 9, ratio) for row in block] for block in pi]
        np.testing.assert_array_equal(b_inscribed, expected)
    assert S.truncate_proportions(torch.from_numpy(pi), 9).shape == (6, 5, 10)


@pytest.mark.parametrize("max_band", [-1, 1.5, True, "4", None])
def test_truncate_proportions_rejects_bad_max_band(max_band):
    with pytest.raises(InputError, match="max_band"):
        S.truncate_proportions(np.array([0, 0.5, 0.5]), max_band)
    if max_band is not None:
        with pytest.raises(InputError, match="max_band"):
            S.lfc_boundary(np.array([0, 0.5, 0.5]), max_band=max_band)
    with pytest.raises(InputError, match="sum to 1"):
        S.truncate_proportions(np.array([0.0, 5.0, 2.0]), 1)


# --------------------------------------------------------------------------------------------------
# Entropy and power law
# --------------------------------------------------------------------------------------------------


def test_spectral_entropy_hand_computed():
    pi = np.array([0.0, 0.5, 0.25, 0.25])
    result = S.spectral_entropy(pi)
    ln2 = math.log(2)
    np.testing.assert_allclose(result.per_band, [0.0, 0.5 * ln2, 0.5 * ln2, 0.5 * ln2])
    assert result.total == pytest.approx(1.5 * ln2)
    assert result.normalized == pytest.approx(1.5 * ln2 / math.log(3))  # 3 bands used: DC excluded
    bits = S.spectral_entropy(pi, base=2)
    assert bits.total == pytest.approx(1.5) and bits.normalized == pytest.approx(result.normalized)
    with_dc = S.spectral_entropy(pi, include_dc=True)
    assert with_dc.normalized == pytest.approx(1.5 * ln2 / math.log(4))


def test_spectral_entropy_extremes_and_zero_rows():
    uniform = torch.tensor([[0.0] + [0.125] * 8, [0.0] + [1.0] + [0.0] * 7, [0.0] * 9], dtype=torch.float64)
    result = S.spectral_entropy(uniform)
    assert torch.isfinite(result.per_band).all()
    assert result.normalized[0] == pytest.approx(1.0)  # flat spectrum: maximal entropy
    assert float(result.total[1]) == 0.0 and float(result.total[2]) == 0.0  # single frequency / no signal
    assert not torch.signbit(result.per_band).any()  # no -0.0 leaking into JSON
    assert S.spectral_entropy(np.array([0.0, 1.0])).normalized == 0.0  # one band used: log 1 = 0
    with pytest.raises(InputError, match="base"):
        S.spectral_entropy(np.array([0, 1.0]), base=1)


def test_fit_power_law_exact_and_masked():
    k = np.arange(1, 40, dtype=np.float64)
    pi = np.concatenate([[0.0], k**-1.7])
    pi /= pi.sum()
    alpha, r2 = S.fit_power_law(pi)
    assert alpha == pytest.approx(1.7, abs=1e-10) and r2 == pytest.approx(1.0)
    holes = pi.copy()
    holes[[3, 10, 20]] = 0  # zero bands are skipped, the rest still lies on the line
    holes /= holes.sum()
    assert S.fit_power_law(holes)[0] == pytest.approx(1.7, abs=1e-10)
    assert S.fit_power_law(pi, max_band=5)[0] == pytest.approx(1.7, abs=1e-10)
    flat = np.array([0.0, 0.25, 0.25, 0.25, 0.25])
    alpha, r2 = S.fit_power_law(flat)
    assert alpha == pytest.approx(0.0, abs=1e-12) and r2 == 1.0
    batch = torch.tensor(np.stack([pi, pi[::-1].copy()]))
    alphas, r2s = S.fit_power_law(batch)
    assert alphas.shape == (2,) and float(alphas[0]) == pytest.approx(1.7)


def test_fit_power_law_r2_against_numpy_polyfit():
    rng = np.random.default_rng(5)
    pi = np.concatenate([[0.0], rng.random(30) * np.arange(1, 31) ** -1.2])
    pi /= pi.sum()
    alpha, r2 = S.fit_power_law(pi)
    x, y = np.log(np.arange(1, 31)), np.log(pi[1:])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    assert alpha == pytest.approx(-slope) and r2 == pytest.approx(
        1 - residual @ residual / np.sum((y - y.mean()) ** 2)
    )


def test_fit_power_law_needs_two_bands():
    with pytest.raises(InputError, match="at least 2 bands"):
        S.fit_power_law(np.array([0.0, 1.0, 0.0, 0.0]))
    with pytest.raises(InputError, match="at least 2 bands"):
        S.fit_power_law(np.array([1.0]))


def power_law_image(n: int, a: float, seed: int) -> np.ndarray:
    """Random-phase image whose per-pixel spectral power is exactly r ** -a (0 at DC).

    The phases come from the FFT of real white noise, so they are Hermitian and the image is real.
    """
    noise = np.fft.fft2(np.random.default_rng(seed).standard_normal((n, n)))
    offsets = np.fft.fftfreq(n) * n
    r = np.hypot(offsets[:, None], offsets[None, :])
    amplitude = np.where(r > 0, np.where(r > 0, r, 1.0) ** (-a / 2), 0.0)
    return np.real(np.fft.ifft2(noise / np.abs(noise) * amplitude))


@pytest.mark.parametrize("n,a", [(64, 2.0), (64, 3.0), (65, 1.5)])
def test_power_law_exponent_recovered_on_synthetic_images(n, a):
    # Per-pixel power r^-a summed over band k (a full ring of ~2 pi k pixels) gives
    # pi[k] ~ 2 pi k * k^-a = k^(1 - a): the fit over the full rings must return alpha = a - 1.
    image = power_law_image(n, a, seed=int(10 * a))
    pi = S.band_proportions(S.band_power(image))
    # exact expectation: band sums of r^-a over the lattice, computed directly
    r = np.hypot(*np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij"))
    expected = np.bincount(ref_bands(n, n).ravel(), np.where(r > 0, np.where(r > 0, r, 1) ** -a, 0).ravel())
    np.testing.assert_allclose(pi, expected / expected.sum(), rtol=1e-8, atol=1e-15)
    rings = S.full_ring_max_band(n, n)
    alpha, r2 = S.fit_power_law(pi, max_band=rings)
    assert alpha == pytest.approx(a - 1, abs=0.06)
    assert r2 > 0.95  # lattice rounding makes shallow (small alpha) tails wobble a little
    # ... and the summary reports the same full-ring fit
    image_u8 = np.round((image - image.min()) / np.ptp(image) * 255).astype(np.uint8)[:, :, None]
    summary = S.summarize(image_u8)
    assert summary.alpha_rings == pytest.approx(a - 1, abs=0.15)


def test_power_law_recovered_from_white_noise_filtered_images():
    # Noisy amplitudes this time (filtered white noise); the dataset mean pi averages the noise out.
    n, a = 48, 2.5
    rng = np.random.default_rng(0)
    offsets = np.fft.fftfreq(n) * n
    r = np.hypot(offsets[:, None], offsets[None, :])
    gain = np.where(r > 0, np.where(r > 0, r, 1.0) ** (-a / 2), 0.0)
    images = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((40, 3, n, n))) * gain))
    summary = S.summarize(torch.from_numpy(images).float())
    assert summary.alpha_rings == pytest.approx(a - 1, abs=0.1)


# --------------------------------------------------------------------------------------------------
# LFC / HFC
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", ["hard", "smooth"])
@pytest.mark.parametrize("h,w", [(16, 16), (15, 20), (9, 4)])
def test_split_sums_back_to_the_image(mask, h, w):
    x = torch.rand(3, 2, h, w, generator=torch.Generator().manual_seed(2))
    for b in range(S.num_bands(h, w) + 1):
        lfc, hfc = S.split_frequencies(x, b, mask=mask, width=3.0)
        assert lfc.shape == x.shape and lfc.dtype == x.dtype
        torch.testing.assert_close(lfc + hfc, x, atol=2e-6, rtol=0)
        torch.testing.assert_close(S.low_pass(x, b, mask=mask, width=3.0), lfc)
        torch.testing.assert_close(S.high_pass(x, b, mask=mask, width=3.0), hfc)


def test_hard_split_separates_the_bands():
    x = torch.rand(2, 1, 15, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    b = 4
    lfc, hfc = S.split_frequencies(x, b)
    power_x, power_l, power_h = S.band_power(x), S.band_power(lfc), S.band_power(hfc)
    scale = float(power_x.max())
    assert float(power_l[..., b:].abs().max()) <= 1e-12 * scale
    assert float(power_h[..., :b].abs().max()) <= 1e-12 * scale
    torch.testing.assert_close(power_l[..., :b], power_x[..., :b])
    torch.testing.assert_close(power_h[..., b:], power_x[..., b:])


def test_split_of_a_cosine_by_hand():
    # A cosine at radius exactly 5 (fu=3, fv=4): band 5.
    u, v = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    x = torch.tensor(np.cos(2 * np.pi * (3 * u + 4 * v) / 32))
    lfc, hfc = S.split_frequencies(x, 6)
    torch.testing.assert_close(lfc, x)
    torch.testing.assert_close(hfc, torch.zeros_like(x))
    lfc, hfc = S.split_frequencies(x, 5)
    assert float(lfc.abs().max()) < 1e-12 and float((hfc - x).abs().max()) < 1e-12
    # smooth mask centred on radius b with width 2: weight 1/2 at r = b, 1 at r = b - 1 (edge of the ramp)
    lfc, _ = S.split_frequencies(x, 5, mask="smooth", width=2.0)
    torch.testing.assert_close(lfc, x / 2)
    lfc, _ = S.split_frequencies(x, 6, mask="smooth", width=2.0)
    torch.testing.assert_close(lfc, x)
    # b = 0: no LFC at all; b = K + 1: everything is LFC (both masks)
    for mask in ("hard", "smooth"):
        assert float(S.low_pass(x, 0, mask=mask).abs().max()) == 0.0
        torch.testing.assert_close(S.low_pass(x, S.num_bands(32, 32), mask=mask), x)


def test_split_per_image_boundaries_and_uint8_input(natural_crops):
    images = natural_crops(24, 1)[:4]  # uint8 (4, 24, 24, 3)
    x = S.as_float_images(images)
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32
    boundaries = torch.tensor([1, 3, 5, 8])[:, None]  # (N, 1) broadcasts over channels
    lfc, hfc = S.split_frequencies(images, boundaries)
    for i, b in enumerate(boundaries[:, 0].tolist()):
        torch.testing.assert_close(lfc[i], S.low_pass(x[i], b), atol=1e-6, rtol=0)
    torch.testing.assert_close(lfc + hfc, x, atol=2e-6, rtol=0)


def test_split_rejects_bad_boundaries():
    x = torch.rand(1, 8, 8)
    for bad in (-1, S.num_bands(8, 8) + 1, 2.5):
        with pytest.raises(InputError, match="boundary band"):
            S.split_frequencies(x, bad)
    with pytest.raises(InputError, match="broadcast"):
        S.split_frequencies(x, torch.tensor([1, 2, 3]))
    with pytest.raises(InputError, match="mask"):
        S.split_frequencies(x, 2, mask="gaussian")
    with pytest.raises(InputError, match="width"):
        S.split_frequencies(x, 2, mask="smooth", width=0)


# --------------------------------------------------------------------------------------------------
# Dataset statistics
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(natural_crops):
    """uint8 (N, 15, 20, 3) natural crops with one constant image and one constant channel."""
    images = natural_crops((15, 20), 2, seed=7).copy()
    images[3] = 77  # a constant image
    images[5, :, :, 1] = 200  # a constant channel in an otherwise normal image
    return images


def test_accumulator_streams_equal_one_shot_and_numpy_reference(dataset):
    ratio = 0.8
    mean_pi, b, per_image, skipped_images, skipped_channels = ref_dataset(dataset, ratio)

    one_shot = S.SpectrumAccumulator(ratio).update(dataset).result()
    streamed = S.SpectrumAccumulator(ratio)
    for start, stop in [(0, 5), (5, 6), (6, 19), (19, len(dataset))]:
        streamed.update(dataset[start:stop])
    streamed = streamed.result()
    single = S.SpectrumAccumulator(ratio)
    for image in dataset:  # (H, W, C) one at a time
        single.update(image)
    single = single.result()

    for summary in (one_shot, streamed, single):
        np.testing.assert_allclose(summary.pi, mean_pi, rtol=2e-4, atol=1e-7)
        assert summary.boundary_band == b
        assert summary.num_images == len(dataset)
        assert summary.num_skipped_constant == skipped_images >= 1
        assert summary.num_skipped_channels == skipped_channels >= 4
        hist = np.bincount(per_image, minlength=len(summary.per_image_boundary.histogram))
        assert summary.per_image_boundary.histogram == hist.tolist()
        dist = summary.per_image_boundary
        assert dist.count == len(dataset) - skipped_images
        assert dist.min == per_image.min() and dist.max == per_image.max()
        assert dist.mean == pytest.approx(per_image.mean())
        for q, value in ((10, dist.p10), (50, dist.median), (90, dist.p90)):
            assert value == int(np.percentile(per_image, q, method="inverted_cdf"))
        assert summary.lfc_power_share == pytest.approx(mean_pi[:b].sum(), rel=1e-4)
        assert summary.lfc_power_share <= 0.8 < summary.lfc_power_share + mean_pi[b]
        assert summary.boundary_fraction_nyquist == pytest.approx(b / 7.5)
        assert summary.boundary_fraction_corner == pytest.approx(b / math.hypot(7, 10))
        nz = mean_pi[1:][mean_pi[1:] > 0]
        assert summary.entropy == pytest.approx(-(nz * np.log(nz)).sum(), rel=1e-4)
        assert summary.entropy_normalized == pytest.approx(summary.entropy / math.log(len(mean_pi) - 1))
        slope, _ = np.polyfit(np.log(np.arange(1, len(mean_pi))), np.log(mean_pi[1:]), 1)
        assert summary.alpha == pytest.approx(-slope, rel=1e-3)


def test_float_tensor_input_matches_uint8_input(dataset):
    from_uint8 = S.summarize(dataset, batch_size=7)
    from_float = S.summarize(torch.from_numpy(dataset).permute(0, 3, 1, 2).double() / 255, batch_size=5)
    np.testing.assert_allclose(from_float.pi, from_uint8.pi, rtol=1e-4, atol=1e-8)
    assert from_float.boundary_band == from_uint8.boundary_band
    batches = S.summarize(iter([dataset[:10], dataset[10:]]))
    np.testing.assert_allclose(batches.pi, from_uint8.pi, rtol=1e-12)


def test_summary_to_dict_is_json_safe(dataset):
    summary = S.summarize(dataset)
    data = summary.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    for key in ("boundary_band", "boundary_fraction_nyquist", "boundary_fraction_corner", "lfc_power_share"):
        assert key in back
    for key in (
        "alpha",
        "alpha_r2",
        "entropy",
        "pi",
        "entropy_per_band",
        "num_images",
        "num_skipped_constant",
    ):
        assert key in back
    assert back["pi"][0] == 0.0 and sum(back["pi"]) == pytest.approx(1.0)
    assert back["image_size"] == [15, 20] and back["ratio"] == 0.8
    assert back["per_image_boundary"]["median"] == summary.per_image_boundary.median


def _cosines(h: int, w: int, parts: list[tuple[int, int, float]], dtype=torch.float64) -> torch.Tensor:
    """(1, 1, H, W) image 0.5 + sum of a * cos(2 pi (fu u / H + fv v / W)) over (fu, fv, a)."""
    u = torch.arange(h, dtype=torch.float64)[:, None]
    v = torch.arange(w, dtype=torch.float64)[None, :]
    x = 0.5 + sum(a * torch.cos(2 * math.pi * (fu * u / h + fv * v / w)) for fu, fv, a in parts)
    return x.to(dtype)[None, None]


def test_summary_inscribed_boundary_on_known_rings():
    # 16x16: bands 0 .. 11, inscribed band 8. A cosine (off the Nyquist lines) puts power a^2 (H W)^2 / 2
    # in band floor(hypot(fu, fv)), so shares are proportional to a^2:
    # (1, 0) -> band 1: .36, (0, 2) -> 2: .20, (3, 0) -> 3: .12, (3, 3) -> 4 (4.24): .07,
    # (7, 7) -> band 9 (9.90), beyond the inscribed circle: .25.
    shares = {(1, 0): 0.36, (0, 2): 0.20, (3, 0): 0.12, (3, 3): 0.07, (7, 7): 0.25}
    x = _cosines(16, 16, [(fu, fv, 0.2 * math.sqrt(a)) for (fu, fv), a in shares.items()])
    summary = S.summarize(x)
    expected_pi = np.zeros(12)
    expected_pi[[1, 2, 3, 4, 9]] = [0.36, 0.20, 0.12, 0.07, 0.25]
    np.testing.assert_allclose(summary.pi, expected_pi, atol=1e-12)
    # corner: bands < 9 carry .75, bands < 10 carry 1
    assert summary.boundary_band == 9 and summary.lfc_power_share == pytest.approx(0.75)
    assert summary.boundary_fraction_nyquist == pytest.approx(9 / 8)
    # inscribed (bands <= 8 hold .75): renormalised cumulative .48, .7467, .9067 -> b = 3
    assert summary.inscribed_max_band == 8
    assert summary.inscribed_power_share == pytest.approx(0.75)
    assert summary.boundary_band_inscribed == 3
    assert summary.boundary_fraction_nyquist_inscribed == pytest.approx(3 / 8)
    assert summary.lfc_power_share_inscribed == pytest.approx(0.56 / 0.75)
    data = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert data["boundary_band_inscribed"] == 3 and data["inscribed_max_band"] == 8
    assert data["boundary_fraction_nyquist_inscribed"] == pytest.approx(0.375)
    assert data["lfc_power_share_inscribed"] == pytest.approx(0.56 / 0.75)
    assert data["inscribed_power_share"] == pytest.approx(0.75)

    # Without the outer cosine nothing lies beyond the inscribed circle and the two agree.
    del shares[(7, 7)]
    inside = S.summarize(_cosines(16, 16, [(fu, fv, 0.2 * math.sqrt(a)) for (fu, fv), a in shares.items()]))
    assert inside.boundary_band == inside.boundary_band_inscribed == 3  # .48, .7467 <= .8 < .9067
    assert inside.lfc_power_share == pytest.approx(inside.lfc_power_share_inscribed)
    assert inside.inscribed_power_share == pytest.approx(1.0)


def test_summary_without_power_inside_the_inscribed_circle():
    # 8x8: the inscribed band is 4; a (3, 4) cosine lies in band 5. In float32 the FFT leaks ~5e-16 of
    # the power into inner bands, which must not make a boundary.
    summary = S.summarize(_cosines(8, 8, [(3, 4, 0.4)], dtype=torch.float32))
    assert summary.boundary_band == 5
    assert summary.inscribed_power_share < 1e-12
    assert summary.boundary_band_inscribed is None
    assert summary.boundary_fraction_nyquist_inscribed is None and summary.lfc_power_share_inscribed is None
    data = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert data["boundary_band_inscribed"] is None and data["lfc_power_share_inscribed"] is None
    # images one pixel high: the inscribed circle holds DC alone
    row = S.summarize(np.random.default_rng(0).integers(0, 256, (4, 1, 9, 3), dtype=np.uint8))
    assert row.inscribed_max_band == 0 and row.boundary_band_inscribed is None
    assert row.inscribed_power_share == 0.0


def test_summary_inscribed_boundary_matches_reference(dataset):
    summary = S.summarize(dataset)
    mean_pi, *_ = ref_dataset(dataset, 0.8)
    m = 7  # 15x20 images
    assert summary.inscribed_max_band == m
    assert summary.boundary_band_inscribed == ref_inscribed_boundary(mean_pi, m, 0.8)
    assert summary.inscribed_power_share == pytest.approx(mean_pi[: m + 1].sum(), rel=1e-4)
    b = summary.boundary_band_inscribed
    assert summary.lfc_power_share_inscribed == pytest.approx(
        mean_pi[:b].sum() / mean_pi[: m + 1].sum(), rel=1e-4
    )


@pytest.mark.parametrize("size", [64, 32])
def test_corner_and_inscribed_boundaries_on_natural_crops(natural_crops, size):
    """Measures how far the two boundaries are apart on real photographs (run with -s to see it)."""
    images = natural_crops(size, 16, seed=0)  # the 256 crops `freqtail spectrum` uses at 64x64
    summary = S.summarize(images)
    m = S.inscribed_max_band(size, size)
    assert summary.boundary_band_inscribed == ref_inscribed_boundary(summary.pi, m, 0.8)
    assert summary.boundary_band_inscribed <= summary.boundary_band
    # per image, from each image's channel-mean pi
    power = S.band_power(S.as_float_images(images)).double()
    valid = S.has_signal(power)
    pi = S.band_proportions(power)
    usable = valid.any(1)
    image_pi = (pi * valid[..., None]).sum(1)[usable] / valid.sum(1)[usable, None]
    b = S.lfc_boundary(image_pi)
    b_inscribed = S.lfc_boundary(image_pi, max_band=m)
    assert bool((b_inscribed <= b).all())
    np.testing.assert_array_equal(
        np.bincount(b.numpy()), summary.per_image_boundary.histogram[: int(b.max()) + 1]
    )
    moved = (b - b_inscribed).numpy()
    print(
        f"\n{size}x{size}, {summary.num_images} crops: corner b = {summary.boundary_band} "
        f"({summary.boundary_fraction_nyquist:.3f} of Nyquist, LFC {summary.lfc_power_share:.4f}); "
        f"inscribed b = {summary.boundary_band_inscribed} "
        f"({summary.boundary_fraction_nyquist_inscribed:.3f}, LFC {summary.lfc_power_share_inscribed:.4f}); "
        f"inscribed bands hold {summary.inscribed_power_share:.4f} of the power; per image the "
        f"boundary moves in for {np.mean(moved > 0):.1%} of the images "
        f"(mean {moved.mean():.2f}, max {moved.max()} bands)"
    )


def test_accumulator_memory_does_not_grow(dataset):
    acc = S.SpectrumAccumulator()
    acc.update(dataset[:4])
    sizes = (acc._pi_sum.numel(), acc._boundary_hist.numel())
    for _ in range(5):
        acc.update(dataset)
    assert (acc._pi_sum.numel(), acc._boundary_hist.numel()) == sizes == (13, 14)
    assert acc.num_images == 4 + 5 * len(dataset)


def test_tiny_images_have_no_power_law_but_valid_json():
    images = np.random.default_rng(0).integers(0, 256, (6, 2, 2, 3), dtype=np.uint8)
    summary = S.summarize(images)
    assert summary.num_bands == 2 and summary.boundary_band == 1  # all non-DC power is in band 1
    assert summary.alpha is None and summary.alpha_rings is None
    assert json.loads(json.dumps(summary.to_dict(), allow_nan=False))["alpha"] is None


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((2, 8, 8, 3), dtype=np.float32), "uint8"),
        (np.zeros((2, 8, 8, 2), dtype=np.uint8), "channels"),
        (np.zeros((8, 8), dtype=np.uint8), "shape"),
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), "empty"),
        (np.zeros((3, 1, 1, 3), dtype=np.uint8), "1x1"),
        (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
        (torch.zeros(3, 8, 8), "shape"),
        ([1, 2, 3], "numpy array"),
    ],
)
def test_accumulator_rejects_bad_input(bad, match):
    with pytest.raises(InputError, match=match):
        S.SpectrumAccumulator().update(bad)


def test_accumulator_degenerate_sets():
    with pytest.raises(InputError, match="No images"):
        S.SpectrumAccumulator().result()
    constant = np.full((4, 8, 8, 3), 128, dtype=np.uint8)
    with pytest.raises(InputError, match="constant"):
        S.summarize(constant)
    acc = S.SpectrumAccumulator().update(np.zeros((2, 8, 8, 1), dtype=np.uint8))
    with pytest.raises(InputError, match="size"):
        acc.update(np.zeros((2, 8, 9, 1), dtype=np.uint8))
    with pytest.raises(InputError, match="ratio"):
        S.SpectrumAccumulator(ratio=1.0)
    with pytest.raises(InputError, match="batch_size"):
        S.summarize(constant, batch_size=0)
