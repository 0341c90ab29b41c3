"""freqtail.evaluate.statistics against expectations computed here independently of the module.

The independent expectations: the exact McNemar p-value summed from binomial coefficients
(math.comb), the Wilson interval from its closed form with the normal quantile of the standard
library (statistics.NormalDist, not SciPy), and Newcombe's (1998) method 10 written from the paper's
formula on the counts of the 2 x 2 table (not on masks).
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from freqtail.errors import InputError
from freqtail.evaluate.records import PerImage, Record, RecordId
from freqtail.evaluate.statistics import (
    UNAVAILABLE,
    AlignedMasks,
    McNemarResult,
    aligned_masks,
    mcnemar_exact,
    paired_difference_interval,
    seed_summary,
    wilson_interval,
)


def masks_of(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks with a both correct, b only first, c only second, d neither (in a shuffled order)."""
    first = np.array([True] * a + [True] * b + [False] * c + [False] * d)
    second = np.array([True] * a + [False] * b + [True] * c + [False] * d)
    order = np.random.default_rng(a + 7 * b + 31 * c + 127 * d).permutation(first.shape[0])
    return first[order], second[order]


def closed_form_wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def closed_form_mcnemar(b: int, c: int) -> float:
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1)) / 2**m
    return min(1.0, 2 * tail)


def closed_form_newcombe10(a: int, b: int, c: int, d: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe (1998) method 10 for theta = p(second) - p(first) = (c - b) / n."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = closed_form_wilson(a + b, n, confidence)
    l2, u2 = closed_form_wilson(a + c, n, confidence)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0 if denominator == 0 else (a * d - b * c) / math.sqrt(denominator)
    theta = (c - b) / n
    delta = math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    epsilon = math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return theta - delta, theta + epsilon


SMALL_TABLES = [t for t in itertools.product(range(0, 5), repeat=4) if sum(t) > 0]


# --- Wilson ----------------------------------------------------------------------------------


def test_wilson_matches_the_textbook_example_81_of_263():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81/263 -> 0.2553, 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert (low, high) == pytest.approx(closed_form_wilson(81, 263), abs=1e-12)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (9412, 10000), (1, 2)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_the_closed_form(k, n, confidence):
    low, high = wilson_interval(k, n, confidence)
    expected_low, expected_high = closed_form_wilson(k, n, confidence)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-10)
    assert high == pytest.approx(min(1.0, expected_high), abs=1e-10)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_refuses_what_has_no_interval():
    for bad in [(0, 0), (5, 4), (-1, 3), (1.5, 3)]:
        with pytest.raises(InputError) as err:
            wilson_interval(*bad)
        assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")
    with pytest.raises(InputError, match="confidence level"):
        wilson_interval(1, 2, confidence=1.0)


# --- McNemar ---------------------------------------------------------------------------------


def test_mcnemar_exact_of_a_known_table():
    first, second = masks_of(5, 1, 9, 3)
    result = mcnemar_exact(first, second)
    assert isinstance(result, McNemarResult)
    assert (result.b, result.c, result.n, result.discordant) == (1, 9, 18, 10)
    assert result.p_value == pytest.approx(2 * (1 + 10) / 2**10, abs=1e-15)  # 0.021484375
    assert result.p_value == pytest.approx(0.021484375, abs=1e-15)


def test_mcnemar_matches_the_binomial_sum():
    for a, b, c, d in SMALL_TABLES + [(100, 30, 12, 8), (0, 0, 0, 50), (0, 20, 20, 0), (3, 400, 371, 0)]:
        first, second = masks_of(a, b, c, d)
        result = mcnemar_exact(first, second)
        assert (result.b, result.c, result.n) == (b, c, a + b + c + d)
        assert result.p_value == pytest.approx(closed_form_mcnemar(b, c), abs=1e-12), (b, c)
        assert mcnemar_exact(second, first).p_value == pytest.approx(result.p_value, abs=1e-15)


def test_identical_masks_give_p_one_and_an_interval_around_zero():
    first, _ = masks_of(30, 10, 0, 5)
    assert mcnemar_exact(first, first).p_value == 1.0
    low, high = paired_difference_interval(first, first)
    assert low <= 0.0 <= high


def test_masks_of_different_lengths_are_refused():
    with pytest.raises(InputError, match="same images"):
        mcnemar_exact(np.ones(4, bool), np.ones(5, bool))
    with pytest.raises(InputError, match="same images"):
        paired_difference_interval(np.ones(4, bool), np.ones(5, bool))
    with pytest.raises(InputError):
        mcnemar_exact(np.ones((2, 2), bool), np.ones((2, 2), bool))
    with pytest.raises(InputError):
        mcnemar_exact(np.array([0.5, 1.0]), np.array([1, 0]))
    with pytest.raises(InputError):
        mcnemar_exact(np.zeros(0, bool), np.zeros(0, bool))
    assert mcnemar_exact([1, 0, 1], [0, 0, 1]).b == 1  # 0/1 integers read as bools


# --- Newcombe method 10 ----------------------------------------------------------------------


def test_newcombe_method_10_on_the_paired_example():
    # a = 12 both, b = 9 only first, c = 2 only second, d = 21 neither: first - second = 7/44 = 0.1591.
    first, second = masks_of(12, 9, 2, 21)
    low, high = paired_difference_interval(second, first)  # first - second
    assert round(7 / 44, 4) == 0.1591
    assert (low, high) == pytest.approx(closed_form_newcombe10(12, 2, 9, 21), abs=1e-12)
    assert low < 7 / 44 < high
    assert paired_difference_interval(first, second) == pytest.approx((-high, -low), abs=1e-15)


def test_newcombe_method_10_matches_the_closed_form_and_its_invariants():
    for a, b, c, d in SMALL_TABLES + [(500, 37, 61, 402), (9000, 1, 0, 999), (0, 0, 3, 0)]:
        first, second = masks_of(a, b, c, d)
        low, high = paired_difference_interval(first, second)
        estimate = (c - b) / (a + b + c + d)
        expected_low, expected_high = closed_form_newcombe10(a, b, c, d)
        # 1e-7: where phi = 1 the root of (x - y)^2 written as x^2 - 2xy + y^2 loses half the digits.
        assert low == pytest.approx(max(-1.0, expected_low), abs=1e-7), (a, b, c, d)
        assert high == pytest.approx(min(1.0, expected_high), abs=1e-7), (a, b, c, d)
        assert -1.0 <= low <= estimate <= high <= 1.0, (a, b, c, d)
        assert not (math.isnan(low) or math.isnan(high))
        swapped = paired_difference_interval(second, first)
        assert swapped == pytest.approx((-high, -low), abs=1e-12), (a, b, c, d)


def test_newcombe_degenerate_margins_have_phi_zero_and_no_nan():
    # Every image right for both models: the margins c + d and b + d are 0, phi is taken as 0.
    everything = np.ones(10, bool)
    low, high = paired_difference_interval(everything, everything)
    w_low, _ = closed_form_wilson(10, 10)
    assert (low, high) == pytest.approx((-(1 - w_low), 1 - w_low), abs=1e-10)
    nothing = np.zeros(10, bool)
    low, high = paired_difference_interval(everything, nothing)  # second - first = -1 exactly
    _, w_high = closed_form_wilson(0, 10)
    assert low == pytest.approx(-1.0, abs=1e-12)
    assert high == pytest.approx(-1.0 + math.hypot(w_high, 1 - w_low), abs=1e-10)


def test_a_wider_confidence_level_gives_a_wider_interval():
    first, second = masks_of(40, 6, 14, 40)
    narrow = paired_difference_interval(first, second, confidence=0.9)
    wide = paired_difference_interval(first, second, confidence=0.99)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]
    with pytest.raises(InputError, match="confidence level"):
        paired_difference_interval(first, second, confidence=0)


# --- seeds -----------------------------------------------------------------------------------


def test_seed_summary():
    assert seed_summary([83.5]) == (83.5, None)
    mean, sd = seed_summary([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert sd == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    for bad in ([], [1.0, float("nan")], ["x"]):
        with pytest.raises(InputError):
            seed_summary(bad)


# --- records ---------------------------------------------------------------------------------


def _record(metric: str, indices: list[int], mask: list[bool] | None, of: int = 10000) -> Record:
    data = {"n": len(indices), "of": of, "subset": "stratified", "subset_seed": 0, "indices": indices}
    per_image = None if mask is None else PerImage.of_mask(mask)
    return Record(
        id=RecordId("best", "standard", metric, "eps=8/255"),
        metric=metric,
        threat_model="standard",
        data=data,
        correct=None if mask is None else int(sum(mask)),
        total=len(indices),
        per_image=per_image,
    )


def test_aligned_masks_of_two_records_through_their_stored_form():
    first = _record("clean", [7, 3, 11, 42, 5], [True, False, True, True, False])
    second = _record("pgd-20-ce", [42, 5, 7, 99, 3], [False, True, True, True, False])
    # Through the file form, as a grid reads them.
    first, second = (Record.from_dict(record.to_dict()) for record in (first, second))
    aligned, reason = aligned_masks(first, second)
    assert reason is None and isinstance(aligned, AlignedMasks)
    assert aligned.indices.tolist() == [3, 5, 7, 42]
    assert aligned.first.tolist() == [False, False, True, True]
    assert aligned.second.tolist() == [False, True, True, False]
    result = mcnemar_exact(aligned.first, aligned.second)
    assert (result.b, result.c, result.n) == (1, 1, 4)


def test_aligned_masks_says_why_it_cannot_pair():
    with_bits = _record("clean", [1, 2, 3], [True, True, False])
    old = _record("clean", [1, 2, 3], None)
    for pair in [(with_bits, old), (old, with_bits)]:
        aligned, reason = aligned_masks(*pair)
        assert aligned is None and reason.startswith(UNAVAILABLE) and "per-image" in reason
    elsewhere = _record("clean", [4, 5], [True, False])
    aligned, reason = aligned_masks(with_bits, elsewhere)
    assert aligned is None and reason == "paired test unavailable: the two records share no test images."
    other_set = _record("clean", [1, 2, 3], [True, True, False], of=50000)
    assert aligned_masks(with_bits, other_set)[0] is None
    no_indices = Record(id=RecordId("best", "standard", "clean"), per_image=PerImage.of_mask([True]))
    aligned, reason = aligned_masks(with_bits, no_indices)
    assert aligned is None and "which test images" in reason


def test_aligned_masks_refuses_a_damaged_record():
    damaged = _record("clean", [1, 2, 3], [True, True, False]).replace(per_image=PerImage.of_mask([True]))
    with pytest.raises(InputError, match="evaluate it again"):
        aligned_masks(damaged, _record("clean", [1, 2, 3], [True, True, False]))
