"""Model sensitivity to frequency components (paper §3.2.2, Eq. 3, Fig. 2).

For every image: the gradient ``g`` of the image's own cross-entropy loss with respect to the input
(model in eval mode, so batch norm uses its running statistics and images do not interact), averaged
over the colour channels; its Fourier coefficients ``c[u, v] = sum g[m, n] exp(-2 pi i (mu/H + nv/W))``
(Eq. 3, i.e. the unnormalised ``fft2``), centred; one coefficient per conjugate pair (see
:mod:`freqtail.analysis.fourier` for exactly which), sorted by magnitude ``|c|``. ``ranking=
"published-notebook"`` ranks, places and reports them as the authors' published notebook does
instead (:mod:`freqtail.analysis.sensitivity_ranking`).

Over the data set this gives

* the mean sorted magnitude per rank (Fig. 2, first row);
* at chosen ranks (top, 20 %, ..., last), the radius of the coefficient at that rank in every image,
  whose kernel density is Fig. 2's second row, drawn with the data's 80/20 LFC/HFC boundary;
* scalar summaries: the share of the gradient's spectral energy in HFC (per image, then averaged),
  and the share of the top ``top_fraction`` coefficients by magnitude that lie in HFC.

Only sums, per-band counts and one radius per chosen rank and image are kept: per image
``len(rank_fractions)`` numbers, per global batch its sums (about ``M + 3 (K + 1)`` numbers, M ~ H W / 2:
4 KB a batch at 32x32, 200 KB at 224x224), so that a batch's share can be kept apart and resumed.

Under torchrun (``context`` of :func:`freqtail.distributed.init_distributed`) the images are sharded:
global batches of ``batch_size`` images, batch ``b`` on rank ``b % world_size``
(:func:`freqtail.analysis._data.shard_batches`). Each rank keeps every batch's contribution apart
(:meth:`SensitivityAccumulator.contribution`: counts, float64 sums, the per-image coefficient indices
and, when the boundary is measured here, the batch's spectrum sums); the contributions are gathered
exactly (each batch is one rank's, the others add 0) and added up in batch order on every rank, so
the result does not depend on the number of processes, bit for bit. The 80/20 boundary comes from
the same images, and rank 0's boundary is used by every rank. Every rank returns the same full result.

With ``partial_path`` (a pair or a dataset) the global batches are the units of
:mod:`freqtail.analysis._partials`: every rank keeps the contributions of the batches it has done in
its own file beside it (``sensitivity.partial.rank<r>.npz``), and a rerun with the same weights,
images and settings, with any number of processes, computes only the batches none of those files
holds and gives the uninterrupted result bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import gaussian_kde
from torch import nn

from freqtail.analysis._data import (
    SUBSET_SEED,
    Selection,
    check_logits,
    eval_mode,
    labelled_batches,
    model_device,
    select_images,
    shard_batches,
)
from freqtail.analysis._partials import (
    PartialWriter,
    UnitValues,
    owned_units,
    rank_partial_path,
    remove_partials,
    resume_units,
    run_fingerprint,
)
from freqtail.analysis.constants import (
    DEFAULT_RANK_FRACTIONS,
    DEFAULT_RANKING,
    DEFAULT_TOP_FRACTION,
    check_top_fraction,
)
from freqtail.analysis.fourier import conjugate_half_plane
from freqtail.analysis.sensitivity_ranking import NOTEBOOK_FRACTIONS, check_ranking, coefficient_ranking
from freqtail.checks import check_int, check_optional_int
from freqtail.distributed import DistContext, all_reduce_counts, broadcast_json, raise_together
from freqtail.errors import InputError, OutputError
from freqtail.io import atomic_write
from freqtail.progress import progress_bar
from freqtail.spectrum import DEFAULT_RATIO, SpectrumAccumulator, SpectrumSummary, nyquist_radius
from freqtail.spectrum.bands import num_bands
from freqtail.spectrum.statistics import shared_image_size

#: Number of radii at which the kernel densities are evaluated.
DENSITY_POINTS = 200
#: Version of the sensitivity's partial-file layout (part of the fingerprint).
PARTIAL_FORMAT = 1

__all__ = [
    "DEFAULT_RANK_FRACTIONS",
    "DEFAULT_TOP_FRACTION",
    "SensitivityAccumulator",
    "SensitivityResult",
    "frequency_sensitivity",
    "gradient_magnitudes",
    "input_gradients",
    "radius_density",
]


def input_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Gradient of each image's own cross-entropy loss w.r.t. the image: float (B, C, H, W).

    One batched forward and backward pass; the loss is summed over the batch, which leaves each
    image's gradient that of its own loss as long as images do not interact (put the model in eval
    mode: :func:`frequency_sensitivity` does). The parameters' ``.grad`` are not touched.
    """
    x = images.detach().clone().requires_grad_(True)
    logits = check_logits(model(x), labels)
    loss = F.cross_entropy(logits, labels, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    return gradient


def gradient_magnitudes(gradients: torch.Tensor) -> torch.Tensor:
    """|Eq. 3| of the channel-mean gradient on the conjugate half plane: float (B, M).

    Args:
        gradients: input gradients (B, C, H, W) (the channel mean is taken) or (B, H, W).

    Returns:
        ``|c|`` at the coefficients of :func:`freqtail.analysis.fourier.conjugate_half_plane`, in its order.
    """
    g = gradients.mean(1) if gradients.ndim == 4 else gradients
    if g.ndim != 3:
        raise InputError(
            f"Gradients must have shape (B, C, H, W) or (B, H, W), not {tuple(gradients.shape)}."
        )
    h, w = g.shape[-2:]
    plane = conjugate_half_plane(h, w)
    spectrum = torch.fft.fftshift(torch.fft.fft2(g), dim=(-2, -1)).flatten(1)
    return spectrum[:, torch.tensor(plane.index, device=g.device)].abs()


def _check_rank_fractions(values: Sequence[float]) -> np.ndarray:
    try:
        fractions = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"The rank fractions must be numbers in [0, 1], not {values!r}.") from None
    if (
        fractions.size == 0
        or not np.all(np.isfinite(fractions))
        or fractions.min() < 0
        or fractions.max() > 1
    ):
        raise InputError(f"The rank fractions must be a non-empty list of numbers in [0, 1], not {values!r}.")
    return fractions


def radius_density(samples: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Gaussian kernel density (``scipy.stats.gaussian_kde``, Scott's rule) of ``samples`` on ``grid``.

    Returns None when the density is undefined: fewer than two samples, or all samples equal (a point
    mass; plots draw it as a vertical line at that radius).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < 2 or float(np.ptp(samples)) == 0.0:
        return None
    try:
        density = gaussian_kde(samples)(np.asarray(grid, dtype=np.float64))
    except (np.linalg.LinAlgError, ValueError):  # numerically singular spread
        return None
    return density if np.all(np.isfinite(density)) else None


@dataclass
class SensitivityResult:
    """Frequency sensitivity of a model on a data set (see the module docstring).

    Arrays: M = coefficients ranked (the half plane, or the notebook's 544), R = chosen ranks,
    N = images used, K + 1 = bands.
    """

    image_size: tuple[int, int]
    num_images: int  # images used (non-zero gradient)
    num_zero_gradient: int  # images skipped because their loss gradient was exactly zero
    boundary_band: int  # LFC = bands < boundary_band, HFC = bands >= it
    rank_fractions: np.ndarray  # (R,) in [0, 1]
    rank_positions: np.ndarray  # (R,) int, 0 = largest |c|: round(fraction * (M - 1)), or the notebook's
    mean_sorted_magnitude: np.ndarray  # (M,) mean over images of the descending |c|
    rank_radius_samples: np.ndarray  # (R, N) radius of the coefficient at each chosen rank, per image
    rank_band_samples: np.ndarray  # (R, N) its band
    band_energy_share: np.ndarray  # (K + 1,) mean over images of the share of |c|^2 per band
    top_fraction: float
    top_band_counts: np.ndarray  # (K + 1,) bands of each image's top ceil(top_fraction * M) coefficients
    spectrum: Any = field(default=None, repr=False)  # SpectrumSummary of the data, when computed here
    selection: Any = field(default=None, repr=False)  # analysis._data.Selection: which images were used
    world_size: int = 1  # processes that measured it (torchrun)
    ranking: str = DEFAULT_RANKING  # freqtail.analysis.constants.RANKINGS

    @property
    def num_coefficients(self) -> int:
        """M, the coefficients ranked per image (one per conjugate pair by the definition)."""
        return int(self.mean_sorted_magnitude.size)

    @property
    def hfc_energy_share(self) -> float:
        """Mean over images of the share of the gradient's spectral energy in bands >= the boundary."""
        return float(self.band_energy_share[self.boundary_band :].sum())

    @property
    def top_hfc_share(self) -> float:
        """Share of the top ``top_fraction`` coefficients (by magnitude, all images) lying in HFC."""
        return float(self.top_band_counts[self.boundary_band :].sum() / self.top_band_counts.sum())

    def hfc_energy_share_at(self, band: int) -> float:
        """Like :attr:`hfc_energy_share` with the LFC/HFC boundary at ``band`` (to compare two results
        at one common boundary)."""
        return float(self.band_energy_share[int(band) :].sum())

    def top_hfc_share_at(self, band: int) -> float:
        """Like :attr:`top_hfc_share` with the LFC/HFC boundary at ``band``."""
        return float(self.top_band_counts[int(band) :].sum() / self.top_band_counts.sum())

    @property
    def rank_hfc_share(self) -> np.ndarray:
        """(R,) share of images whose coefficient at each chosen rank lies in HFC."""
        return (self.rank_band_samples >= self.boundary_band).mean(axis=1)

    def density_grid(self, points: int = DENSITY_POINTS) -> np.ndarray:
        """Radii from 0 to the corner radius at which :meth:`radius_densities` are evaluated."""
        h, w = self.image_size
        return np.linspace(0.0, math.hypot(h // 2, w // 2), points)

    def radius_densities(self, grid: np.ndarray | None = None) -> list[np.ndarray | None]:
        """Kernel density of the radius at each chosen rank on ``grid`` (None: a point mass, see
        :func:`radius_density`)."""
        grid = self.density_grid() if grid is None else grid
        return [radius_density(samples, grid) for samples in self.rank_radius_samples]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: scalars, the rank curve, per-band energy shares and top-coefficient band
        counts (to recompute the HFC shares at another boundary), per-rank radius statistics and
        densities, and which images were used (``indices``, ``subset``, ``subset_seed``)."""
        grid = self.density_grid()
        densities = self.radius_densities(grid)
        h, w = self.image_size
        ranks = []
        for i, fraction in enumerate(self.rank_fractions):
            radii = self.rank_radius_samples[i]
            density = densities[i]
            ranks.append(
                {
                    "fraction": float(fraction),
                    "position": int(self.rank_positions[i]),
                    "mean_radius": float(radii.mean()),
                    "median_radius": float(np.median(radii)),
                    "hfc_share": float(self.rank_hfc_share[i]),
                    "density": None if density is None else [float(v) for v in density],
                }
            )
        out = {
            "image_size": [int(h), int(w)],
            "num_images": int(self.num_images),
            "num_zero_gradient": int(self.num_zero_gradient),
            "num_coefficients": self.num_coefficients,
            "ranking": self.ranking,
            "boundary_band": int(self.boundary_band),
            "boundary_fraction_nyquist": float(self.boundary_band / nyquist_radius(h, w)),
            "hfc_energy_share": self.hfc_energy_share,
            "top_fraction": float(self.top_fraction),
            "top_hfc_share": self.top_hfc_share,
            "mean_sorted_magnitude": [float(v) for v in self.mean_sorted_magnitude],
            "band_energy_share": [float(v) for v in self.band_energy_share],
            "top_band_counts": [float(v) for v in self.top_band_counts],
            "density_grid": [float(v) for v in grid],
            "ranks": ranks,
            "world_size": int(self.world_size),
        }
        if self.selection is not None:
            out.update(self.selection.to_dict())
        if self.spectrum is not None:
            out["spectrum"] = self.spectrum.to_dict()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write every array to an ``.npz`` file atomically (reload with :meth:`load`)."""
        arrays = {
            "image_size": np.asarray(self.image_size, dtype=np.int64),
            "num_images": np.int64(self.num_images),
            "num_zero_gradient": np.int64(self.num_zero_gradient),
            "boundary_band": np.int64(self.boundary_band),
            "rank_fractions": self.rank_fractions,
            "rank_positions": self.rank_positions,
            "mean_sorted_magnitude": self.mean_sorted_magnitude,
            "rank_radius_samples": self.rank_radius_samples,
            "rank_band_samples": self.rank_band_samples,
            "band_energy_share": self.band_energy_share,
            "top_fraction": np.float64(self.top_fraction),
            "top_band_counts": self.top_band_counts,
            "world_size": np.int64(self.world_size),
            "ranking": np.str_(self.ranking),
        }
        if self.selection is not None and self.selection.indices is not None:
            arrays["indices"] = np.asarray(self.selection.indices, dtype=np.int64)
        return atomic_write(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> SensitivityResult:
        """Read a result written by :meth:`save` (no pickle).

        Raises:
            InputError: missing file or not a sensitivity result.
        """
        data = _load_npz(path, "sensitivity result")
        try:
            return cls(
                image_size=tuple(int(v) for v in data["image_size"]),
                num_images=int(data["num_images"]),
                num_zero_gradient=int(data["num_zero_gradient"]),
                boundary_band=int(data["boundary_band"]),
                rank_fractions=data["rank_fractions"],
                rank_positions=data["rank_positions"],
                mean_sorted_magnitude=data["mean_sorted_magnitude"],
                rank_radius_samples=data["rank_radius_samples"],
                rank_band_samples=data["rank_band_samples"],
                band_energy_share=data["band_energy_share"],
                top_fraction=float(data["top_fraction"]),
                top_band_counts=data["top_band_counts"],
                world_size=int(data.get("world_size", 1)),  # files written before it was recorded: 1
                ranking=str(data.get("ranking", DEFAULT_RANKING)),  # likewise: the definition
            )
        except KeyError as err:
            raise InputError(f"The file {path} is not a freqtail sensitivity result (no {err}).") from None


def _load_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read without pickle; one-sentence errors."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The {what} file {p} does not exist.")
    try:
        with np.load(p, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"The {what} file {p} is not a readable .npz archive ({err}).") from None


@dataclass
class BatchContribution:
    """What one batch of B images adds to a :class:`SensitivityAccumulator` (M ranked coefficients,
    K + 1 bands, R chosen ranks); the images with a zero gradient (``used`` False) add nothing.

    Attributes:
        used: (B,) bool, images with a non-zero gradient.
        rank_sum: (M,) float64 sum over the used images of the descending ``|c|``.
        band_energy_sum: (K + 1,) float64 sum of the per-image energy share per band.
        top_counts: (K + 1,) int64 bands of the used images' top coefficients.
        rank_indices: (R, B) int64 ranking index at each chosen rank per image (0 where not used).
    """

    used: np.ndarray
    rank_sum: np.ndarray
    band_energy_sum: np.ndarray
    top_counts: np.ndarray
    rank_indices: np.ndarray

    @classmethod
    def zero(cls, images: int, coefficients: int, bands: int, ranks: int) -> BatchContribution:
        """A batch of ``images`` images none of which is used."""
        return cls(
            used=np.zeros(images, dtype=bool),
            rank_sum=np.zeros(coefficients),
            band_energy_sum=np.zeros(bands),
            top_counts=np.zeros(bands, dtype=np.int64),
            rank_indices=np.zeros((ranks, images), dtype=np.int64),
        )


class SensitivityAccumulator:
    """Streams input gradients and accumulates the frequency-sensitivity statistics.

    Args:
        rank_fractions: ranks whose coefficient radius is recorded, as fractions of the rank axis
            (position ``round(fraction * (M - 1))``; 0 = the largest magnitude, 1 = the smallest);
            None: :data:`DEFAULT_RANK_FRACTIONS` (the notebook's own positions with its ranking).
        top_fraction: the share of coefficients (largest first, at least one) whose bands are counted.
        ranking: ``"definition"`` or ``"published-notebook"``
            (:mod:`freqtail.analysis.sensitivity_ranking`: which coefficients are ranked, their radii
            and bands, the positions reported); the energy shares do not depend on it.

    Ties in magnitude are ranked by half-plane order (stable sort). Images whose gradient is exactly
    zero (a saturated loss) have no ranking: they are skipped and counted.
    """

    def __init__(
        self,
        rank_fractions: Sequence[float] | None = None,
        top_fraction: float = DEFAULT_TOP_FRACTION,
        ranking: str = DEFAULT_RANKING,
    ) -> None:
        self.ranking = check_ranking(ranking, rank_fractions)
        by_definition = self.ranking == DEFAULT_RANKING
        self.rank_fractions = (  # the labels of the ranks reported
            _check_rank_fractions(DEFAULT_RANK_FRACTIONS if rank_fractions is None else rank_fractions)
            if by_definition
            else np.asarray(NOTEBOOK_FRACTIONS, dtype=np.float64)
        )
        self._given_fractions = self.rank_fractions if by_definition else None
        self.top_fraction = check_top_fraction(top_fraction)
        self.image_size: tuple[int, int] | None = None
        self.num_images = 0
        self.num_zero_gradient = 0
        self._rank_sum: torch.Tensor | None = None
        self._band_energy_sum: torch.Tensor | None = None
        self._top_counts: torch.Tensor | None = None
        self._rank_indices: list[np.ndarray] = []  # (R, B_used) indices into the ranking per batch
        self._image_positions: list[np.ndarray] = []  # (B_used,) positions of those images

    @property
    def images_seen(self) -> int:
        """Images given so far, those with a zero gradient included."""
        return self.num_images + self.num_zero_gradient

    def _start(self, h: int, w: int, device: torch.device) -> None:
        ranking = coefficient_ranking(self.ranking, h, w, self._given_fractions)
        plane = conjugate_half_plane(h, w)
        self.image_size = (h, w)
        self._plane = plane
        self._ranked = ranking
        self._ranked_coefficient = torch.tensor(ranking.coefficient, device=device)
        self._ranked_bands = torch.tensor(ranking.band, device=device)
        self._multiplicity = torch.tensor(plane.multiplicity, device=device)
        self._positions = ranking.positions
        self._top = max(1, math.ceil(self.top_fraction * ranking.size - 1e-9))
        self._rank_sum = torch.zeros(ranking.size, dtype=torch.float64, device=device)
        self._band_energy_sum = torch.zeros(plane.num_bands, dtype=torch.float64, device=device)
        self._top_counts = torch.zeros(plane.num_bands, dtype=torch.float64, device=device)

    def update(self, gradients: torch.Tensor, first: int | None = None) -> SensitivityAccumulator:
        """Add a batch of input gradients (B, C, H, W) (or channel means (B, H, W)); returns self.

        Args:
            gradients: the batch's input gradients.
            first: the position of the batch's first image in the whole data (default: right after
                the images given so far); the per-image results are kept in this order.

        Raises:
            InputError: non-finite gradients, or a change of image size.
        """
        first = self.images_seen if first is None else int(first)
        return self.add(self.contribution(gradients), first)

    def contribution(self, gradients: torch.Tensor) -> BatchContribution:
        """What a batch of input gradients adds to the statistics, without adding it (:meth:`add` does;
        a sharded or resumed pass adds every batch's contribution in batch order, so its sums do not
        depend on which process computed which batch).

        Raises:
            InputError: non-finite gradients, or a change of image size.
        """
        gradients = gradients.detach()
        if not bool(torch.isfinite(gradients).all()):
            raise InputError("The model's loss gradient is not finite for some images (NaN or Inf logits?).")
        h, w = (int(v) for v in gradients.shape[-2:])
        if self.image_size is None:
            self._start(h, w, gradients.device)
        elif (h, w) != self.image_size:
            raise InputError(
                f"All images must share one size, but {h}x{w} gradients followed "
                f"{self.image_size[0]}x{self.image_size[1]} ones."
            )
        magnitude = gradient_magnitudes(gradients).double()  # (B, M)
        energy = magnitude.square() * self._multiplicity
        total = energy.sum(1)
        used = total > 0
        contribution = BatchContribution.zero(
            int(gradients.shape[0]), self._ranked.size, self._plane.num_bands, len(self._positions)
        )
        contribution.used = used.cpu().numpy()
        if not bool(used.any()):
            return contribution
        magnitude, energy, total = magnitude[used], energy[used], total[used]
        ranked = magnitude[:, self._ranked_coefficient]
        ordered, order = torch.sort(ranked, dim=1, descending=True, stable=True)
        contribution.rank_sum = ordered.sum(0).cpu().numpy()
        share = (energy / total[:, None]).sum(0).cpu().numpy()
        # Summed per band on the CPU: a device's index_add_ adds in no fixed order.
        bands = self._plane.num_bands
        contribution.band_energy_sum = np.bincount(self._plane.band, weights=share, minlength=bands)
        top_bands = self._ranked_bands[order[:, : self._top]].flatten()
        contribution.top_counts = torch.bincount(top_bands, minlength=self._plane.num_bands).cpu().numpy()
        positions = torch.tensor(self._positions, device=order.device)
        contribution.rank_indices[:, contribution.used] = order[:, positions].T.cpu().numpy()
        return contribution

    def add(self, contribution: BatchContribution, first: int) -> SensitivityAccumulator:
        """Add a batch's :meth:`contribution` whose first image is at position ``first``; returns self."""
        if self.image_size is None:
            raise InputError("A batch contribution can only be added after a batch of gradients.")
        used = np.asarray(contribution.used, dtype=bool)
        self.num_zero_gradient += int((~used).sum())
        if not used.any():
            return self
        self.num_images += int(used.sum())
        device = self._rank_sum.device
        self._rank_sum += torch.as_tensor(contribution.rank_sum, dtype=torch.float64, device=device)
        self._band_energy_sum += torch.as_tensor(
            contribution.band_energy_sum, dtype=torch.float64, device=device
        )
        self._top_counts += torch.as_tensor(contribution.top_counts, dtype=torch.float64, device=device)
        self._image_positions.append(int(first) + np.flatnonzero(used))
        self._rank_indices.append(np.asarray(contribution.rank_indices)[:, used])
        return self

    def result(self, boundary_band: int) -> SensitivityResult:
        """The statistics so far, with LFC/HFC split at ``boundary_band`` (0 .. K + 1); the per-image
        samples in the order of the images' positions.

        Raises:
            InputError: no usable images, or a boundary outside the bands.
        """
        if self.image_size is None:
            raise InputError("No images were given, so there is no sensitivity to measure.")
        if self.num_images == 0:
            raise InputError(
                f"The loss gradient is exactly zero for all {self.num_zero_gradient} images, so the model's "
                "frequency sensitivity is undefined."
            )
        plane, ranking = self._plane, self._ranked
        check_int(boundary_band, "The boundary band")
        if not 0 <= int(boundary_band) <= plane.num_bands:
            raise InputError(
                f"The boundary band must be between 0 and {plane.num_bands} for "
                f"{plane.height}x{plane.width} images, not {boundary_band}."
            )
        order = np.argsort(np.concatenate(self._image_positions), kind="stable")
        indices = np.concatenate(self._rank_indices, axis=1)[:, order]
        return SensitivityResult(
            image_size=self.image_size,
            num_images=self.num_images,
            num_zero_gradient=self.num_zero_gradient,
            boundary_band=int(boundary_band),
            rank_fractions=ranking.fractions.copy(),
            rank_positions=self._positions.copy(),
            mean_sorted_magnitude=(self._rank_sum / self.num_images).cpu().numpy(),
            rank_radius_samples=ranking.radius[indices],
            rank_band_samples=ranking.band[indices],
            band_energy_share=(self._band_energy_sum / self.num_images).cpu().numpy(),
            top_fraction=self.top_fraction,
            top_band_counts=self._top_counts.cpu().numpy(),
            ranking=self.ranking,
        )


def frequency_sensitivity(
    model: nn.Module,
    data: Any,
    *,
    boundary_band: int | None = None,
    ratio: float = DEFAULT_RATIO,
    n: int | None = None,
    batch_size: int = 128,
    rank_fractions: Sequence[float] | None = None,
    top_fraction: float = DEFAULT_TOP_FRACTION,
    ranking: str = DEFAULT_RANKING,
    progress: bool = False,
    subset_seed: int = SUBSET_SEED,
    partial_path: str | os.PathLike | None = None,
    context: DistContext | None = None,
) -> SensitivityResult:
    """Measure a model's sensitivity to frequency components on labelled images (paper Fig. 2).

    One pass over the data: per batch one forward and one backward pass (model in eval mode, its
    training flags restored afterwards; its parameters and their ``.grad`` are left untouched).

    Args:
        model: classifier mapping float (B, C, H, W) in [0, 1] to logits (B, num_classes); batches go
            to the device of its first parameter.
        data: ``(images, labels)``, a dataset of ``(image, label)`` items, or an iterable of batches
            (see :mod:`freqtail.analysis._data`).
        boundary_band: the LFC/HFC boundary; None measures the 80/20 boundary of the same images with
            :class:`freqtail.spectrum.SpectrumAccumulator` during the pass (``result.spectrum``).
        ratio: the 80/20 ratio when the boundary is measured here.
        n: number of images (default all; of a pair or dataset, the seeded class-stratified subset of
            :func:`freqtail.data.subsets.stratified_subset`, recorded in ``result.selection``).
        batch_size: images per forward/backward pass; also the global batch that ranks share.
        rank_fractions, top_fraction, ranking: see :class:`SensitivityAccumulator` (``ranking=
            "published-notebook"``: 32x32 images only).
        progress: show a tqdm bar on stderr (rank 0).
        subset_seed: seed of the ``n``-image subset (the same images ``freqtail evaluate --n n
            --subset-seed`` evaluates).
        partial_path: if given (and ``data`` a pair or a dataset), each process saves the
            contributions of the global batches it has done to its own file beside it
            (``<stem>.rank<r><suffix>``), and a later call with the same model, images and settings,
            with any number of processes, computes only the batches none of those files holds; rank 0
            removes them once the result is complete. The fingerprint covers the weights, the settings,
            the selected image indices and the first batch's pixels and labels.
        context: the process group (:func:`freqtail.distributed.init_distributed`); with several
            processes every rank calls this with the same arguments, measures its share of the images
            (module docstring) and returns the same full result. None: one process.

    Returns:
        a :class:`SensitivityResult` (``world_size`` records the processes).

    Raises:
        InputError: bad arguments or data; under torchrun on every rank when any rank failed.

    Example:
        >>> result = frequency_sensitivity(model, (images, labels), n=256)
        >>> result.hfc_energy_share, result.top_hfc_share
    """
    context = context if context is not None else DistContext()
    n = check_optional_int(n, "The number of images n", minimum=1)
    batch_size = check_int(batch_size, "The batch size", minimum=1)
    accumulator = SensitivityAccumulator(rank_fractions, top_fraction, ranking)
    measure_spectrum = boundary_band is None
    device = model_device(model)
    selection = select_images(data, n, subset_seed)
    partial = Path(partial_path) if partial_path is not None else None
    plan = None
    if selection.indices is not None:  # a pair or a dataset: its global batches are known before the pass
        settings = (PARTIAL_FORMAT, batch_size, accumulator.ranking, rank_fractions, top_fraction, ratio)
        plan = _plan_batches(data, n, batch_size, selection, accumulator, measure_spectrum)
        fingerprint = run_fingerprint(model, plan.sample, (*settings, measure_spectrum)) if partial else ""
        plan.values, plan.agreed = resume_units(partial, fingerprint, plan.values, context)
        numbers = owned_units(np.flatnonzero(~plan.agreed), context.rank, context.world_size)
        writer = PartialWriter(
            rank_partial_path(partial, context.rank) if partial is not None else None,
            fingerprint,
            plan.values,
            PARTIAL_FORMAT,
        )
    else:
        numbers, writer = None, PartialWriter(None, "", UnitValues.empty(0, {}), PARTIAL_FORMAT)
    own: dict[int, dict[str, np.ndarray]] = {}  # this rank's units, by global batch number
    failure: Exception | None = None
    try:
        batches = shard_batches(data, n, batch_size, selection, context, numbers)
        if context.is_main:
            total = None if numbers is None else len(numbers)
            batches = progress_bar(
                batches, desc="sensitivity", unit="batch", total=total, leave=False, enabled=progress
            )
        try:
            with eval_mode(model):
                for number, _, images, labels in batches:
                    start = time.perf_counter()
                    images, labels = images.to(device), labels.to(device)
                    contribution = accumulator.contribution(input_gradients(model, images, labels))
                    spectrum = (
                        SpectrumAccumulator(ratio=ratio).update(images.detach()) if measure_spectrum else None
                    )
                    own[number] = _unit(contribution, spectrum, batch_size)
                    if plan is not None:
                        plan.values.set_unit(number, **own[number])
                        writer.unit_done(time.perf_counter() - start)
            if context.distributed:  # another rank may fail in the sums below: keep this share
                writer.flush()
        except BaseException:
            with contextlib.suppress(OutputError):  # keep what is done, but report the first error
                writer.flush()
            raise
    except Exception as err:
        if not context.distributed:
            raise
        failure = err  # told to the other ranks first, so that none waits for it in the sums below
    raise_together(failure, context)
    if plan is None:  # an iterable of batches: every rank read it all and knows its own batches only
        plan = _plan_after_pass(own, batch_size, accumulator, measure_spectrum, context)
    contributes = np.zeros(plan.values.units, dtype=bool)
    contributes[list(own)] = True
    units = plan.values.gather(contributes | (plan.agreed & context.is_main), context, "sensitivity")
    if partial is not None and context.is_main:
        remove_partials(partial)
    joined = SensitivityAccumulator(rank_fractions, top_fraction, ranking)
    summary = _join_units(units, plan.image_size, batch_size, joined, ratio if measure_spectrum else None)
    if summary is not None:
        # The sums are the same on every rank, but one boundary must hold everywhere: rank 0's.
        boundary_band = broadcast_json(summary.boundary_band, context)
    result = joined.result(boundary_band)
    result.spectrum = summary
    result.selection = selection
    result.world_size = context.world_size
    return result


@dataclass
class _BatchPlan:
    """The global batches of a pass as units of :mod:`freqtail.analysis._partials`.

    Attributes:
        image_size: (H, W) of the images.
        values: every batch's contribution (:func:`_unit_layout`), those known so far marked done.
        agreed: (U,) bool, the batches every rank read from partial files (skipped).
        sample: what the fingerprint covers besides the model and settings: the first global batch's
            images and labels and the selected image indices.
    """

    image_size: tuple[int, int]
    values: UnitValues
    agreed: np.ndarray
    sample: tuple[torch.Tensor, ...] = ()


def _unit_layout(
    accumulator: SensitivityAccumulator, image_size: tuple[int, int], batch_size: int, measure_spectrum: bool
) -> dict[str, tuple[tuple[int, ...], type]]:
    """The arrays of one global batch's unit (a :class:`BatchContribution` padded to ``batch_size``
    images, their count, and the batch's spectrum sums when the boundary is measured)."""
    h, w = image_size
    ranked = coefficient_ranking(accumulator.ranking, h, w, accumulator._given_fractions)
    bands = conjugate_half_plane(h, w).num_bands
    layout: dict[str, tuple[tuple[int, ...], type]] = {
        "images": ((), np.int64),
        "used": ((batch_size,), bool),
        "rank_sum": ((ranked.size,), np.float64),
        "band_energy_sum": ((bands,), np.float64),
        "top_counts": ((bands,), np.int64),
        "rank_indices": ((len(ranked.positions), batch_size), np.int64),
    }
    if measure_spectrum:
        spectrum_bands = num_bands(h, w)
        layout["pi_sum"] = ((spectrum_bands,), np.float64)
        layout["boundary_hist"] = ((spectrum_bands + 1,), np.int64)
        layout["spectrum_counts"] = ((4,), np.int64)
    return layout


def _unit(contribution: BatchContribution, spectrum: SpectrumAccumulator | None, batch_size: int) -> dict:
    """One batch's unit values (:func:`_unit_layout`)."""
    count = int(contribution.used.size)
    used = np.zeros(batch_size, dtype=bool)
    used[:count] = contribution.used
    indices = np.zeros((contribution.rank_indices.shape[0], batch_size), dtype=np.int64)
    indices[:, :count] = contribution.rank_indices
    unit = {
        "images": count,
        "used": used,
        "rank_sum": contribution.rank_sum,
        "band_energy_sum": contribution.band_energy_sum,
        "top_counts": contribution.top_counts,
        "rank_indices": indices,
    }
    if spectrum is not None:
        sums = spectrum.sums()
        unit.update(
            pi_sum=sums["pi_sum"], boundary_hist=sums["boundary_hist"], spectrum_counts=sums["counts"]
        )
    return unit


def _plan_batches(
    data: Any,
    n: int | None,
    batch_size: int,
    selection: Selection,
    accumulator: SensitivityAccumulator,
    measure_spectrum: bool,
) -> _BatchPlan:
    """The units of a pair's or a dataset's global batches, none done; reads the first batch (for
    the image size and the fingerprint)."""
    head = Selection(selection.indices[:batch_size], selection.rule, selection.seed, selection.n_requested)
    images, labels = next(iter(labelled_batches(data, n, batch_size, head)))
    size = (int(images.shape[-2]), int(images.shape[-1]))
    units = -(-int(selection.indices.size) // batch_size)
    values = UnitValues.empty(units, _unit_layout(accumulator, size, batch_size, measure_spectrum))
    sample = (images, labels, torch.from_numpy(np.asarray(selection.indices, dtype=np.int64)))
    return _BatchPlan(size, values, np.zeros(units, dtype=bool), sample)


def _plan_after_pass(
    own: dict[int, dict],
    batch_size: int,
    accumulator: SensitivityAccumulator,
    measure_spectrum: bool,
    context,
) -> _BatchPlan:
    """The units of an iterable's batches after the pass (no partial files): every batch is one
    rank's (round robin), so their number is the sum of every rank's count.

    Raises:
        InputError: on every rank, if no rank saw an image, or the ranks saw different sizes.
    """
    units = int(all_reduce_counts([len(own)], context)[0])
    size = shared_image_size(accumulator.image_size, context)
    if size is None:
        raise InputError("No images were given, so there is no sensitivity to measure.")
    values = UnitValues.empty(units, _unit_layout(accumulator, size, batch_size, measure_spectrum))
    for number, unit in own.items():
        values.set_unit(number, **unit)
    return _BatchPlan(size, values, np.zeros(units, dtype=bool))


def _join_units(
    units: UnitValues,
    image_size: tuple[int, int],
    batch_size: int,
    joined: SensitivityAccumulator,
    ratio: float | None,
) -> SpectrumSummary | None:
    """Add every batch's unit to ``joined`` (a fresh accumulator) in batch order, on the CPU, so the
    sums do not depend on which process computed which batch; the spectrum summary of the batches'
    spectrum sums when ``ratio`` is given (the boundary measured), else None."""
    joined._start(*image_size, torch.device("cpu"))
    spectrum = SpectrumAccumulator(ratio=ratio) if ratio is not None else None
    for number in range(units.units):
        unit = {name: array[number] for name, array in units.arrays.items()}
        count = int(unit["images"])
        contribution = BatchContribution(
            used=unit["used"][:count],
            rank_sum=unit["rank_sum"],
            band_energy_sum=unit["band_energy_sum"],
            top_counts=unit["top_counts"],
            rank_indices=unit["rank_indices"][:, :count],
        )
        joined.add(contribution, number * batch_size)  # positions only order the images
        if spectrum is not None:
            sums = {
                "pi_sum": unit["pi_sum"],
                "boundary_hist": unit["boundary_hist"],
                "counts": unit["spectrum_counts"],
            }
            spectrum.add_sums(image_size, sums)
    return spectrum.result() if spectrum is not None else None
