"""Which coefficients Fig. 2 ranks, the radius each one is given, and the rank positions reported.

Two rankings (``ranking=`` of :func:`freqtail.analysis.frequency_sensitivity`, ``--ranking`` of
``freqtail sensitivity``):

``"definition"`` (the default): one coefficient per conjugate class
(:func:`freqtail.analysis.fourier.conjugate_half_plane`; M = 514 for 32x32), each at its exact
radius; rank fraction ``f`` is position ``round(f (M - 1))`` (20, 40, 60, 80 %: positions 103, 205,
308, 410 of 514).

``"published-notebook"``: the computation of the authors' published notebook, for 32x32 images only.

* It ranks columns 0 .. 16 of the centred 32x32 spectrum, all 32 rows (offsets ``dv = -16 .. 0``,
  32 x 17 = 544 coefficients): both members of the 30 conjugate pairs in column ``dv = 0`` and in the
  Nyquist column ``dv = -16`` (``du = +-1 .. +-15``) are ranked, so those pairs count twice.
* The coefficient at flat index ``idx`` of that 32 x 17 array gets row ``idx / 17`` (true division,
  a float), column ``idx % 17`` and radius ``sqrt((row - 16)^2 + (col - 16)^2)``. The row is off by
  ``col / 17``: exact in column 0 (the Nyquist column), 16/17 = 0.94 too far in column 16, where DC
  gets radius 0.94 instead of 0.
* It reports positions 100, 200, 300, 400 of 544, labelled 20, 40, 60, 80 %.

The two copies of a pair have one magnitude (both read their class's ``|c|``), and ties are ranked in
the flat order of the 32 x 17 array (stable sort), the earlier copy first. A coefficient's band is
``floor`` of the radius its ranking gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from freqtail.analysis.constants import DEFAULT_RANK_FRACTIONS, RANKINGS
from freqtail.analysis.fourier import conjugate_half_plane
from freqtail.checks import check_choice
from freqtail.errors import InputError

#: The only image size the published notebook handles (CIFAR-10), its 17 kept columns and its centre.
NOTEBOOK_IMAGE_SIZE = (32, 32)
NOTEBOOK_COLUMNS = 17
NOTEBOOK_CENTRE = 16
#: The rank positions the notebook reports (of 544) and the fractions it labels them with.
NOTEBOOK_POSITIONS = (100, 200, 300, 400)
NOTEBOOK_FRACTIONS = (0.2, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class CoefficientRanking:
    """The coefficients one ranking sorts per image, and the rank positions it reports.

    Attributes (numpy, read-only): M = ranked coefficients, R = reported positions.
        name: one of :data:`freqtail.analysis.constants.RANKINGS`.
        coefficient: (M,) int64, each ranked coefficient's position in
            ``conjugate_half_plane(height, width)`` (its conjugate class, whose ``|c|`` it ranks with).
        radius: (M,) float64, the radius the ranking gives it (frequency units, DC = 0 by definition).
        band: (M,) int64, ``floor(radius)``.
        fractions: (R,) float64, the rank labels (fractions of the rank axis, 0 = largest ``|c|``).
        positions: (R,) int64, the rank positions reported, 0 .. M - 1.
    """

    name: str
    height: int
    width: int
    coefficient: np.ndarray
    radius: np.ndarray
    band: np.ndarray
    fractions: np.ndarray
    positions: np.ndarray

    @property
    def size(self) -> int:
        """M, the coefficients ranked per image."""
        return int(self.coefficient.size)


def check_ranking(name: str, rank_fractions: Sequence[float] | None = None) -> str:
    """The ranking's name, checked once at the door with the rank fractions asked for.

    Raises:
        InputError: an unknown name, or rank fractions given with the published-notebook ranking
            (which reports its own four positions).
    """
    check_choice(name, RANKINGS, "The sensitivity ranking")
    if name == "published-notebook" and rank_fractions is not None:
        raise InputError(
            "The published-notebook ranking reports its own rank positions (100, 200, 300, 400 of 544, "
            f"labelled 20-80%), so rank fractions cannot be given with it, not {list(rank_fractions)!r}."
        )
    return name


def coefficient_ranking(
    name: str, height: int, width: int, rank_fractions: np.ndarray | None = None
) -> CoefficientRanking:
    """The ranking ``name`` of (height, width) images.

    Args:
        name: ``"definition"`` or ``"published-notebook"`` (module docstring).
        rank_fractions: checked fractions in [0, 1] for the definition (None: its defaults,
            :data:`freqtail.analysis.constants.DEFAULT_RANK_FRACTIONS`); must be None for the notebook.

    Raises:
        InputError: the published-notebook ranking for images that are not 32x32.
    """
    check_ranking(name, None if rank_fractions is None else list(rank_fractions))
    fractions = None if rank_fractions is None else tuple(float(f) for f in rank_fractions)
    if name == "published-notebook":
        if (int(height), int(width)) != NOTEBOOK_IMAGE_SIZE:
            raise InputError(
                "The published-notebook ranking is defined for 32x32 images only (the notebook's "
                f"CIFAR-10 computation), not {height}x{width}; use the ranking 'definition'."
            )
        return _notebook_ranking()
    return _definition_ranking(int(height), int(width), fractions)


def _frozen(name: str, h: int, w: int, *arrays: np.ndarray) -> CoefficientRanking:
    for array in arrays:
        array.setflags(write=False)
    return CoefficientRanking(name, h, w, *arrays)


@lru_cache(maxsize=32)
def _definition_ranking(h: int, w: int, fractions: tuple[float, ...] | None) -> CoefficientRanking:
    plane = conjugate_half_plane(h, w)
    labels = np.asarray(DEFAULT_RANK_FRACTIONS if fractions is None else fractions, dtype=np.float64)
    return _frozen(
        "definition",
        h,
        w,
        np.arange(plane.size, dtype=np.int64),
        plane.radius.copy(),
        plane.band.copy(),
        labels,
        np.rint(labels * (plane.size - 1)).astype(np.int64),
    )


@lru_cache(maxsize=1)
def _notebook_ranking() -> CoefficientRanking:
    h, w = NOTEBOOK_IMAGE_SIZE
    plane = conjugate_half_plane(h, w)
    class_of = np.empty(h * w, dtype=np.int64)  # centred flat position -> its conjugate class
    class_of[plane.conjugate_index] = np.arange(plane.size)
    class_of[plane.index] = np.arange(plane.size)
    rows, cols = np.meshgrid(np.arange(h), np.arange(NOTEBOOK_COLUMNS), indexing="ij")
    idx = np.arange(h * NOTEBOOK_COLUMNS, dtype=np.int64)  # flat order of the 32 x 17 array
    notebook_row = idx / NOTEBOOK_COLUMNS  # true division, as the notebook computes it
    notebook_col = idx % NOTEBOOK_COLUMNS
    radius = np.sqrt((notebook_row - NOTEBOOK_CENTRE) ** 2 + (notebook_col - NOTEBOOK_CENTRE) ** 2)
    return _frozen(
        "published-notebook",
        h,
        w,
        class_of[(rows * w + cols).ravel()],
        radius,
        np.floor(radius).astype(np.int64),
        np.asarray(NOTEBOOK_FRACTIONS, dtype=np.float64),
        np.asarray(NOTEBOOK_POSITIONS, dtype=np.int64),
    )
