"""The statistics of accuracies: intervals, the paired test and the seed summary a grid table prints.

Accuracies here are proportions in [0, 1] (a table multiplies by 100 to print percent); a mask is a
1-D bool array, one entry per test image, True where the image was classified correctly (the
``correct_mask`` of a :class:`~freqtail.evaluate.records.Record`). ``z = Phi^-1(1 - alpha / 2)`` is
the standard normal quantile of the confidence level ``1 - alpha``.

**Wilson score interval** of one accuracy ``p = k / n`` (:func:`wilson_interval`; SciPy's
``binomtest(k, n).proportion_ci(method="wilson")`` computes it)::

    (p + z^2 / (2n) -+ z * sqrt(p (1 - p) / n + z^2 / (4 n^2))) / (1 + z^2 / n)

**Two models on the same images** (:func:`aligned_masks` pairs two records' masks). The paired
2 x 2 table counts ``a`` = both correct, ``b`` = only the first correct, ``c`` = only the second
correct, ``d`` = neither, ``n = a + b + c + d``; the accuracies are ``p1 = (a + b) / n`` and
``p2 = (a + c) / n``.

* **Exact McNemar test** (:func:`mcnemar_exact`): if the two models are equally accurate, each of
  the ``b + c`` discordant images is "only the first" with probability 1/2, so the two-sided p-value
  is the exact binomial test of ``b`` successes in ``b + c`` trials (SciPy's
  ``binomtest(b, b + c, 0.5)``)::

      p = min(1, 2 * sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c)),   p = 1 when b + c = 0

* **Interval of the paired difference** ``theta = p2 - p1 = (c - b) / n`` (second minus first;
  :func:`paired_difference_interval`): Newcombe's method 10, the hybrid score interval (R. G.
  Newcombe, "Improved confidence intervals for the difference between binomial proportions based on
  paired data", Statistics in Medicine 17:2635-2650, 1998). With ``(l1, u1)`` and ``(l2, u2)`` the
  Wilson intervals of ``p1`` and ``p2`` and ``phi`` the phi coefficient of the table::

      phi = (a d - b c) / sqrt((a + b) (c + d) (a + c) (b + d))      (phi = 0 when a margin is 0)
      low  = theta - sqrt((p2 - l2)^2 - 2 phi (p2 - l2) (u1 - p1) + (u1 - p1)^2)
      high = theta + sqrt((u2 - p2)^2 - 2 phi (u2 - p2) (p1 - l1) + (p1 - l1)^2)

  The interval lies in [-1, 1] and contains ``theta``; swapping the two models negates it.

**Seeds** (:func:`seed_summary`): the mean and the sample standard deviation (``ddof = 1``) of one
number measured over training seeds, in the values' own unit.

Every function returns plain floats and never NaN; bad input raises
:class:`~freqtail.errors.InputError` with one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from freqtail.errors import InputError
from freqtail.evaluate.records import Record

#: The prefix of every reason :func:`aligned_masks` gives for not pairing two records.
UNAVAILABLE = "paired test unavailable: "


def _check_confidence(confidence: float) -> float:
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise InputError(
            f"The confidence level {confidence!r} is not strictly between 0 and 1; use e.g. 0.95."
        )
    return value


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the accuracy ``correct / total`` (proportions in [0, 1]).

    Args:
        correct: correctly classified images (an integer in [0, total]).
        total: evaluated images (at least 1).
        confidence: the interval's confidence level in (0, 1).

    Raises:
        InputError: no images, counts that are not integers or out of range, or a confidence level
            outside (0, 1) (one sentence).
    """
    level = _check_confidence(confidence)
    if isinstance(correct, bool) or isinstance(total, bool) or int(correct) != correct or int(total) != total:
        raise InputError(f"The counts {correct!r} correct of {total!r} are not whole numbers of images.")
    correct, total = int(correct), int(total)
    if total < 1:
        raise InputError("An accuracy of no images has no interval; evaluate at least one image.")
    if not 0 <= correct <= total:
        raise InputError(f"{correct} correct images of {total} is not a count between 0 and {total}.")
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=level, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def _masks(first_correct: Any, second_correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two masks checked: 1-D, bool (or 0/1), the same length, not empty."""
    out = []
    for name, mask in (("first", first_correct), ("second", second_correct)):
        array = np.asarray(mask)
        if array.ndim != 1:
            raise InputError(
                f"The {name} mask has shape {array.shape}; pass one bool per image (a 1-D array)."
            )
        if array.dtype != bool:
            if not (np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()):
                raise InputError(f"The {name} mask holds values other than True/False (or 1/0).")
            array = array.astype(bool)
        out.append(array)
    if out[0].shape[0] != out[1].shape[0]:
        raise InputError(
            f"The two masks cover {out[0].shape[0]} and {out[1].shape[0]} images; a paired comparison "
            "needs one entry per image for the same images (see aligned_masks)."
        )
    if out[0].shape[0] == 0:
        raise InputError("The two masks hold no images; a paired comparison needs at least one image.")
    return out[0], out[1]


def _table(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int, int]:
    """(a, b, c, d): both correct, only the first, only the second, neither."""
    a = int(np.count_nonzero(first & second))
    b = int(np.count_nonzero(first & ~second))
    c = int(np.count_nonzero(~first & second))
    return a, b, c, int(first.shape[0]) - a - b - c


@dataclass(frozen=True)
class McNemarResult:
    """The exact McNemar test of two models on the same images.

    Attributes:
        b: images only the first model classified correctly.
        c: images only the second model classified correctly.
        n: paired images (all of them, concordant ones included).
        p_value: two-sided exact p-value in [0, 1] (1 when b + c = 0).
    """

    b: int
    c: int
    n: int
    p_value: float

    @property
    def discordant(self) -> int:
        """Images on which the two models disagree (b + c)."""
        return self.b + self.c


def mcnemar_exact(first_correct: Any, second_correct: Any) -> McNemarResult:
    """The exact two-sided McNemar test (a binomial test of b in b + c trials at 1/2).

    Args:
        first_correct, second_correct: bool (n,) masks over the same images in the same order.

    Raises:
        InputError: masks of different lengths, empty, not 1-D or not bool (one sentence).
    """
    first, second = _masks(first_correct, second_correct)
    _, b, c, _ = _table(first, second)
    p_value = 1.0 if b + c == 0 else min(1.0, float(stats.binomtest(b, b + c, 0.5).pvalue))
    return McNemarResult(b=b, c=c, n=int(first.shape[0]), p_value=p_value)


def paired_difference_interval(
    first_correct: Any, second_correct: Any, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's method-10 interval of (second accuracy - first accuracy) on the same images.

    The difference is of proportions in [-1, 1]; see the module docstring for the formula.

    Args:
        first_correct, second_correct: bool (n,) masks over the same images in the same order.
        confidence: the interval's confidence level in (0, 1).

    Raises:
        InputError: masks of different lengths, empty, not 1-D or not bool, or a confidence level
            outside (0, 1) (one sentence).
    """
    # SciPy has no interval for a difference of paired proportions, so the combination of the two
    # Wilson intervals is written here from Newcombe (1998), Statist. Med. 17:2635, method 10.
    level = _check_confidence(confidence)
    first, second = _masks(first_correct, second_correct)
    a, b, c, d = _table(first, second)
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, level)
    l2, u2 = wilson_interval(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    # phi is undefined when a margin is 0 (one model all right or all wrong): Newcombe sets it to 0.
    phi = 0.0 if margins == 0 else (a * d - b * c) / math.sqrt(margins)
    phi = min(1.0, max(-1.0, phi))
    theta = p2 - p1
    low_2, high_1 = p2 - l2, u1 - p1
    high_2, low_1 = u2 - p2, p1 - l1
    delta = math.sqrt(max(0.0, low_2**2 - 2.0 * phi * low_2 * high_1 + high_1**2))
    epsilon = math.sqrt(max(0.0, high_2**2 - 2.0 * phi * high_2 * low_1 + low_1**2))
    return max(-1.0, min(theta, theta - delta)), min(1.0, max(theta, theta + epsilon))


@dataclass(frozen=True)
class AlignedMasks:
    """Two records' masks over the test images both evaluated, in one order.

    Attributes:
        indices: int (m,) the common test-set indices, ascending.
        first, second: bool (m,) the first and the second record's correctness on those images.
    """

    indices: np.ndarray
    first: np.ndarray
    second: np.ndarray


def _indexed_mask(record: Record, which: str) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(indices, mask, None) of one record, or (None, None, reason)."""
    name = f"the {which} record ({record.id})"
    mask = record.correct_mask()
    if mask is None:
        return None, None, f"{UNAVAILABLE}{name} has no per-image correctness (an older results file)."
    if record.indices is None:
        return None, None, f"{UNAVAILABLE}{name} does not store which test images it evaluated."
    indices = np.asarray(record.indices, dtype=np.int64).reshape(-1)
    if indices.shape[0] != mask.shape[0]:
        raise InputError(
            f"The record {record.id} holds per-image bits for {mask.shape[0]} images but names "
            f"{indices.shape[0]} test images; evaluate it again."
        )
    if np.unique(indices).shape[0] != indices.shape[0]:
        raise InputError(f"The record {record.id} names a test image twice; evaluate it again.")
    return indices, mask, None


def aligned_masks(record_a: Record, record_b: Record) -> tuple[AlignedMasks | None, str | None]:
    """The two records' per-image masks restricted to their common test images.

    Records evaluated on the same subset of the same test set share ``data["indices"]``; the masks
    come back over the indices both hold, ascending, so element i of both is the same image.

    Returns:
        ``(AlignedMasks, None)``, or ``(None, reason)`` when the records cannot be paired: the reason
        is one sentence starting "paired test unavailable: " that a table can print as it is.

    Raises:
        InputError: a record whose bits and indices disagree, or that names an image twice.
    """
    indices_a, mask_a, reason = _indexed_mask(record_a, "first")
    if reason is not None:
        return None, reason
    indices_b, mask_b, reason = _indexed_mask(record_b, "second")
    if reason is not None:
        return None, reason
    of_a, of_b = (record.data.get("of") for record in (record_a, record_b))
    if of_a is not None and of_b is not None and int(of_a) != int(of_b):
        return None, f"{UNAVAILABLE}the records index test sets of {of_a} and {of_b} images."
    common, at_a, at_b = np.intersect1d(indices_a, indices_b, assume_unique=True, return_indices=True)
    if common.shape[0] == 0:
        return None, f"{UNAVAILABLE}the two records share no test images."
    return AlignedMasks(indices=common, first=mask_a[at_a], second=mask_b[at_b]), None


def seed_summary(values: Iterable[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation with ddof = 1) of one number over seeds, in its own unit.

    One value gives ``(value, None)``: a spread needs two seeds.

    Raises:
        InputError: no values, or a value that is not a finite number (one sentence).
    """
    try:
        array = np.asarray(list(values), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError("The seed values are not all numbers.") from None
    if array.shape[0] == 0:
        raise InputError("There are no seed values to summarise; pass at least one.")
    if not np.isfinite(array).all():
        raise InputError("A seed value is not a finite number (NaN or infinite); drop or re-measure it.")
    mean = float(array.mean())
    return mean, (None if array.shape[0] == 1 else float(array.std(ddof=1)))
