"""The records of a dataset's long-tail measurement.

:class:`SpectrumSummary` (with a JSON-safe ``to_dict``) and the per-image boundary histogram it
carries, :class:`BoundaryDistribution`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from freqtail.spectrum.bands import full_ring_max_band, inscribed_max_band


@dataclass
class BoundaryDistribution:
    """Distribution of per-image boundary bands (each from that image's channel-mean pi).

    Quantiles use the inverted-CDF rule (the smallest band b with at least q of the images at or
    below b), so they are always band indices.
    """

    histogram: list[int]  # histogram[b] = number of images with boundary band b, b = 0 .. K + 1
    count: int
    mean: float
    min: int
    p10: int
    median: int
    p90: int
    max: int

    @classmethod
    def from_histogram(cls, histogram: np.ndarray) -> BoundaryDistribution:
        hist = np.asarray(histogram, dtype=np.int64)
        count = int(hist.sum())
        cumulative = np.cumsum(hist)

        def quantile(q: float) -> int:
            return int(np.searchsorted(cumulative, max(1, math.ceil(q * count - 1e-9)), side="left"))

        bands = np.arange(hist.size)
        return cls(
            histogram=[int(v) for v in hist],
            count=count,
            mean=float((bands * hist).sum() / count),
            min=int(bands[hist > 0][0]),
            p10=quantile(0.1),
            median=quantile(0.5),
            p90=quantile(0.9),
            max=int(bands[hist > 0][-1]),
        )


@dataclass
class SpectrumSummary:
    """The frequency long tail of a set of images (see :class:`SpectrumAccumulator`)."""

    boundary_band: int
    boundary_fraction_nyquist: float
    boundary_fraction_corner: float
    lfc_power_share: float
    alpha: float | None  # None when fewer than 2 bands have power (tiny images)
    alpha_r2: float | None
    alpha_intercept: float | None  # c of log pi[k] = c - alpha log k, for plotting the fit
    # The same fit restricted to the full rings (1 <= k <= full_ring_max_band): the corner bands are
    # partial rings whose sums fall off steeply, which bends the all-band fit. None if < 2 bands.
    alpha_rings: float | None
    alpha_rings_r2: float | None
    alpha_rings_intercept: float | None
    entropy: float  # nats
    entropy_normalized: float
    entropy_per_band: np.ndarray  # (K + 1,) nats
    pi: np.ndarray  # (K + 1,) dataset mean proportions, pi[0] = 0
    num_images: int  # images seen, skipped ones included
    num_skipped_constant: int  # images without non-DC power in any channel
    num_skipped_channels: int  # constant channels skipped (those of skipped images included)
    image_size: tuple[int, int]
    ratio: float
    per_image_boundary: BoundaryDistribution
    nyquist_radius: float
    corner_radius: float
    # The 80/20 boundary over the inscribed bands 1 .. inscribed_max_band alone (the paper's bands stop
    # at H / 2), from the same mean pi renormalised over those bands. None when they carry no power
    # (at most INSCRIBED_MIN_SHARE of it, i.e. rounding noise).
    boundary_band_inscribed: int | None
    boundary_fraction_nyquist_inscribed: float | None
    lfc_power_share_inscribed: float | None  # share of the inscribed bands' power below it
    inscribed_power_share: float  # share of the non-DC power in bands <= inscribed_max_band

    @property
    def num_bands(self) -> int:
        """K + 1, the number of bands in ``pi``."""
        return int(len(self.pi))

    @property
    def full_ring_max_band(self) -> int:
        """The last complete ring, the upper end of the ``alpha_rings`` fit."""
        return full_ring_max_band(*self.image_size)

    @property
    def inscribed_max_band(self) -> int:
        """``min(H, W) // 2``, the last band of the inscribed boundary ``boundary_band_inscribed``."""
        return inscribed_max_band(*self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: plain ints, floats (never NaN/Inf), lists and None."""

        def number(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else float(value)

        return {
            "boundary_band": int(self.boundary_band),
            "boundary_fraction_nyquist": number(self.boundary_fraction_nyquist),
            "boundary_fraction_corner": number(self.boundary_fraction_corner),
            "lfc_power_share": number(self.lfc_power_share),
            "boundary_band_inscribed": None
            if self.boundary_band_inscribed is None
            else int(self.boundary_band_inscribed),
            "boundary_fraction_nyquist_inscribed": number(self.boundary_fraction_nyquist_inscribed),
            "lfc_power_share_inscribed": number(self.lfc_power_share_inscribed),
            "inscribed_max_band": self.inscribed_max_band,
            "inscribed_power_share": number(self.inscribed_power_share),
            "alpha": number(self.alpha),
            "alpha_r2": number(self.alpha_r2),
            "alpha_intercept": number(self.alpha_intercept),
            "alpha_rings": number(self.alpha_rings),
            "alpha_rings_r2": number(self.alpha_rings_r2),
            "alpha_rings_intercept": number(self.alpha_rings_intercept),
            "entropy": number(self.entropy),
            "entropy_normalized": number(self.entropy_normalized),
            "entropy_per_band": [float(v) for v in self.entropy_per_band],
            "pi": [float(v) for v in self.pi],
            "num_bands": self.num_bands,
            "num_images": int(self.num_images),
            "num_skipped_constant": int(self.num_skipped_constant),
            "num_skipped_channels": int(self.num_skipped_channels),
            "image_size": [int(v) for v in self.image_size],
            "nyquist_radius": float(self.nyquist_radius),
            "corner_radius": float(self.corner_radius),
            "ratio": float(self.ratio),
            "per_image_boundary": {
                "histogram": list(self.per_image_boundary.histogram),
                "count": self.per_image_boundary.count,
                "mean": float(self.per_image_boundary.mean),
                "min": self.per_image_boundary.min,
                "p10": self.per_image_boundary.p10,
                "median": self.per_image_boundary.median,
                "p90": self.per_image_boundary.p90,
                "max": self.per_image_boundary.max,
            },
        }
