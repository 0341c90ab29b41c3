"""Dataset statistics of the long tail, streamed in constant memory.

:class:`SpectrumAccumulator` takes batches of images and keeps only sums and a histogram;
:func:`summarize` is its one-call front end. Both produce a :class:`~freqtail.spectrum.SpectrumSummary`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from freqtail.checks import check_int
from freqtail.distributed import DistContext, all_reduce_counts, all_reduce_sum, any_rank, broadcast_json
from freqtail.errors import InputError
from freqtail.images import check_float_images, check_uint8_images, uint8_to_float
from freqtail.spectrum.bands import (
    corner_radius,
    full_ring_max_band,
    inscribed_max_band,
    num_bands,
    nyquist_radius,
)
from freqtail.spectrum.boundary import DEFAULT_RATIO, boundary_fractions, check_ratio, lfc_boundary, truncate
from freqtail.spectrum.power import band_power, band_proportions, has_signal
from freqtail.spectrum.summary import BoundaryDistribution, SpectrumSummary
from freqtail.spectrum.tail import power_law_fit, spectral_entropy

# A dataset summary reports no inscribed boundary when the inscribed bands hold at most this share of the
# non-DC power: float32 FFT rounding leaks a little power into empty bands (5e-16 of it for one 8x8
# cosine beyond the inscribed circle), and a boundary of that noise would mean nothing.
INSCRIBED_MIN_SHARE = 1e-9


class SpectrumAccumulator:
    """Streams images and accumulates the dataset's frequency long tail in constant memory.

    Per docs/design.md: the dataset pi is the mean over images and channels of the per-channel pi (DC
    excluded); channels without non-DC power (constant) are skipped and counted, and so are images whose
    channels are all constant. The dataset boundary comes from the mean pi; each usable image's own
    boundary (from the mean pi of its usable channels) goes into a histogram reported beside it. The
    dataset boundary is also computed over the inscribed bands alone (``k <= min(H, W) // 2``, the
    paper's range), from the same mean pi renormalised over them. Only sums and a histogram are kept,
    so memory does not grow with the number of images.

    Args:
        ratio: the 80/20 ratio (strictly between 0 and 1).
        device: where FFTs run (default: CPU for numpy input, the tensor's device for torch input).
        chunk_size: images per FFT call inside :meth:`update` (bounds peak memory for big arrays).
    """

    def __init__(
        self, ratio: float = DEFAULT_RATIO, device: torch.device | str | None = None, chunk_size=256
    ):
        self.ratio = check_ratio(ratio)
        self.device = None if device is None else torch.device(device)
        self.chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
        self.image_size: tuple[int, int] | None = None
        self.num_images = 0
        self.num_skipped_constant = 0
        self.num_skipped_channels = 0
        self._pi_sum: torch.Tensor | None = None  # float64 (K + 1,)
        self._channels_used = 0
        self._boundary_hist: torch.Tensor | None = None  # int64 (K + 2,)

    def _as_batch(self, images: Any) -> torch.Tensor:
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8:
                raise InputError(
                    f"Image arrays must be uint8 (N, H, W, C) or (H, W, C), not dtype {images.dtype}; "
                    "pass float images as a torch tensor (N, C, H, W) in [0, 1]."
                )
            return check_uint8_images(images)
        if isinstance(images, torch.Tensor):
            return check_float_images(images)
        raise InputError(
            "Images must be a uint8 numpy array (N, H, W, C) or a float torch tensor (N, C, H, W), "
            f"not {type(images).__name__}."
        )

    def update(self, images: Any) -> SpectrumAccumulator:
        """Add a batch: uint8 numpy (N, H, W, C) / (H, W, C), or float torch (N, C, H, W) in [0, 1].

        Every batch must have the same H x W. Returns self.

        Raises:
            InputError: bad dtype/rank/channels, empty, non-finite, 1x1 images, or a size change.
        """
        batch = self._as_batch(images)
        is_numpy = isinstance(batch, np.ndarray)
        h, w = (batch.shape[1], batch.shape[2]) if is_numpy else (batch.shape[2], batch.shape[3])
        if h * w == 1:
            raise InputError("Images of 1x1 pixels have no frequency beyond DC, so they have no long tail.")
        if self.image_size is None:
            self.image_size = (int(h), int(w))
            k1 = num_bands(h, w)
            self._pi_sum = torch.zeros(k1, dtype=torch.float64)
            self._boundary_hist = torch.zeros(k1 + 1, dtype=torch.int64)
        elif (h, w) != self.image_size:
            raise InputError(
                f"All images must share one size, but a batch of {h}x{w} images followed "
                f"{self.image_size[0]}x{self.image_size[1]} ones; resize them or analyse each size apart."
            )
        for start in range(0, batch.shape[0], self.chunk_size):
            chunk = batch[start : start + self.chunk_size]
            if is_numpy:
                # A read-only memory map is copied chunk by chunk (torch needs writable memory).
                x = uint8_to_float(np.require(chunk, requirements=["C", "W"]), device=self.device)
            else:
                x = chunk.detach().to(self.device) if self.device is not None else chunk.detach()
            self._add(x)
        return self

    def _add(self, x: torch.Tensor) -> None:
        power = band_power(x).double()  # (n, C, K + 1)
        valid = has_signal(power)  # (n, C)
        pi = band_proportions(power)  # zero rows where not valid
        self._pi_sum += pi.sum(dim=(0, 1)).cpu()
        channels = valid.sum(1)  # (n,)
        self._channels_used += int(channels.sum())
        self.num_skipped_channels += int((~valid).sum())
        usable = channels > 0
        self.num_images += int(x.shape[0])
        self.num_skipped_constant += int((~usable).sum())
        if bool(usable.any()):
            image_pi = pi[usable].sum(1) / channels[usable, None]
            b = lfc_boundary(image_pi, self.ratio)
            self._boundary_hist += torch.bincount(b.cpu(), minlength=self._boundary_hist.numel())

    def sums(self) -> dict[str, np.ndarray]:
        """Everything accumulated, as arrays (for :meth:`add_sums` elsewhere, e.g. a partial file):
        ``pi_sum`` float64 (K + 1,), ``boundary_hist`` int64 (K + 2,), ``counts`` int64 (4,) (images,
        constant images, constant channels, channels used). Requires at least one :meth:`update`."""
        if self._pi_sum is None or self._boundary_hist is None:
            raise InputError("No images were given, so there are no spectrum sums.")
        counts = [self.num_images, self.num_skipped_constant, self.num_skipped_channels, self._channels_used]
        return {
            "pi_sum": self._pi_sum.numpy().copy(),
            "boundary_hist": self._boundary_hist.numpy().copy(),
            "counts": np.asarray(counts, dtype=np.int64),
        }

    def add_sums(self, image_size: tuple[int, int], sums: dict[str, np.ndarray]) -> SpectrumAccumulator:
        """Add the :meth:`sums` of another accumulator of ``image_size`` images; returns self.

        Raises:
            InputError: a size other than the images seen so far.
        """
        if self.image_size is None:
            self.image_size = (int(image_size[0]), int(image_size[1]))
            self._pi_sum = torch.zeros(num_bands(*self.image_size), dtype=torch.float64)
            self._boundary_hist = torch.zeros(num_bands(*self.image_size) + 1, dtype=torch.int64)
        elif tuple(image_size) != self.image_size:
            raise InputError(
                f"Spectrum sums of {image_size[0]}x{image_size[1]} images cannot join {self.image_size}."
            )
        self._pi_sum += torch.from_numpy(np.asarray(sums["pi_sum"], dtype=np.float64))
        self._boundary_hist += torch.from_numpy(np.asarray(sums["boundary_hist"], dtype=np.int64))
        images, constant, channels, used = (int(v) for v in sums["counts"])
        self.num_images += images
        self.num_skipped_constant += constant
        self.num_skipped_channels += channels
        self._channels_used += used
        return self

    def all_reduce(self, context: DistContext) -> SpectrumAccumulator:
        """Sum every rank's statistics into this accumulator, in place, on every rank; returns self.

        Afterwards each rank's :meth:`result` summarises the images of all ranks: the counts and the
        histogram exactly (int64), the sum of ``pi`` to float64 rounding of the order of the sums.
        Every rank must call it (a collective); a rank that saw no images takes rank 0's image size.
        With one process nothing changes.

        Raises:
            InputError: on every rank, if the ranks saw images of different sizes.
        """
        if not context.distributed:
            return self
        size = shared_image_size(self.image_size, context)
        if size is None:
            return self
        if self.image_size is None:
            self.image_size = size
            self._pi_sum = torch.zeros(num_bands(*size), dtype=torch.float64)
            self._boundary_hist = torch.zeros(num_bands(*size) + 1, dtype=torch.int64)
        self._pi_sum = torch.tensor(all_reduce_sum(self._pi_sum.tolist(), context), dtype=torch.float64)
        counts = [self.num_images, self.num_skipped_constant, self.num_skipped_channels, self._channels_used]
        counts = all_reduce_counts(np.concatenate([counts, self._boundary_hist.numpy()]), context)
        self.num_images, self.num_skipped_constant, self.num_skipped_channels, self._channels_used = (
            int(v) for v in counts[:4]
        )
        self._boundary_hist = torch.from_numpy(counts[4:].copy())
        return self

    def result(self) -> SpectrumSummary:
        """Summarise everything seen so far.

        Raises:
            InputError: no images, or all images constant (no non-DC power: the long tail is undefined).
        """
        if self.image_size is None or self._pi_sum is None or self._boundary_hist is None:
            raise InputError("No images were given, so there is no spectrum to summarise.")
        if self._channels_used == 0:
            raise InputError(
                f"All {self.num_images} images are constant (no power outside DC), so their frequency "
                "long tail is undefined."
            )
        h, w = self.image_size
        pi = self._pi_sum / self._channels_used
        pi = pi / pi.sum()  # remove rounding drift; pi[0] stays 0
        b = int(lfc_boundary(pi, self.ratio))
        frac_nyquist, frac_corner = boundary_fractions(b, h, w)
        inscribed = _inscribed_fields(pi, self.ratio, h, w)
        entropy = spectral_entropy(pi)
        alpha, r2, intercept = _optional_fit(pi, None)
        alpha_rings, rings_r2, rings_intercept = _optional_fit(pi, full_ring_max_band(h, w))
        return SpectrumSummary(
            boundary_band=b,
            boundary_fraction_nyquist=float(frac_nyquist),
            boundary_fraction_corner=float(frac_corner),
            lfc_power_share=float(pi[:b].sum()),
            alpha=alpha,
            alpha_r2=r2,
            alpha_intercept=intercept,
            alpha_rings=alpha_rings,
            alpha_rings_r2=rings_r2,
            alpha_rings_intercept=rings_intercept,
            entropy=float(entropy.total),
            entropy_normalized=float(entropy.normalized),
            entropy_per_band=entropy.per_band.numpy(),
            pi=pi.numpy(),
            num_images=self.num_images,
            num_skipped_constant=self.num_skipped_constant,
            num_skipped_channels=self.num_skipped_channels,
            image_size=(h, w),
            ratio=self.ratio,
            per_image_boundary=BoundaryDistribution.from_histogram(self._boundary_hist.numpy()),
            nyquist_radius=nyquist_radius(h, w),
            corner_radius=corner_radius(h, w),
            **inscribed,
        )


def shared_image_size(size: tuple[int, int] | None, context: DistContext) -> tuple[int, int] | None:
    """Rank 0's image size ``(H, W)`` on every rank (None: rank 0 saw no images), for accumulators
    whose ranks saw different images (a collective: every rank calls it).

    Raises:
        InputError: on every rank, if some rank's size differs from rank 0's.
    """
    shared = broadcast_json(None if size is None else [int(v) for v in size], context)
    shared = None if shared is None else (int(shared[0]), int(shared[1]))
    if any_rank(size is not None and tuple(size) != shared, context):
        raise InputError(
            "All images must share one size, but the processes saw images of different sizes; "
            "resize them or analyse each size apart."
        )
    return shared


def _inscribed_fields(pi: torch.Tensor, ratio: float, h: int, w: int) -> dict[str, Any]:
    """The ``*_inscribed`` fields of :class:`SpectrumSummary` from the dataset pi (K + 1,)."""
    m = inscribed_max_band(h, w)
    share = float(pi[: m + 1].sum())
    if share <= INSCRIBED_MIN_SHARE:
        return {
            "boundary_band_inscribed": None,
            "boundary_fraction_nyquist_inscribed": None,
            "lfc_power_share_inscribed": None,
            "inscribed_power_share": share,
        }
    kept = truncate(pi, m)
    b = int(lfc_boundary(kept, ratio))
    return {
        "boundary_band_inscribed": b,
        "boundary_fraction_nyquist_inscribed": b / nyquist_radius(h, w),
        "lfc_power_share_inscribed": float(kept[:b].sum()),
        "inscribed_power_share": share,
    }


def _optional_fit(pi: torch.Tensor, max_band: int | None) -> tuple[float | None, ...]:
    """(alpha, r2, intercept) as floats, or three Nones when fewer than 2 bands can be fitted."""
    k = torch.arange(pi.numel())
    usable = (k >= 1) & (pi > 0)
    if max_band is not None:
        usable &= k <= max_band
    if int(usable.sum()) < 2:
        return None, None, None
    return tuple(float(v) for v in power_law_fit(pi, max_band))


def _batches(images: Any, batch_size: int) -> tuple[Iterable[Any], int | None]:
    """Split one array/tensor into batches, or pass an iterable of batches through (len if known)."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        n = int(images.shape[0]) if images.ndim >= 1 else 0
        if n == 0:
            return [images], 1  # let the accumulator reject it with its own sentence
        return (images[i : i + batch_size] for i in range(0, n, batch_size)), math.ceil(n / batch_size)
    if isinstance(images, Iterable) and not isinstance(images, (str, bytes)):
        return images, (len(images) if hasattr(images, "__len__") else None)
    raise InputError(
        "Images must be a uint8 numpy array, a float torch tensor, or an iterable of such batches, "
        f"not {type(images).__name__}."
    )


def summarize(
    images: Any,
    ratio: float = DEFAULT_RATIO,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool | Callable[[Iterable[Any], int | None], Iterable[Any]] = False,
) -> SpectrumSummary:
    """The frequency long tail of a set of images in one call (streams through batches).

    Args:
        images: uint8 numpy (N, H, W, C) / (H, W, C) (a memory map is fine), a float torch tensor
            (N, C, H, W), or an iterable of such batches (e.g. ``freqtail.data.iter_uint8_batches``).
        ratio: the 80/20 ratio.
        batch_size: images per batch when splitting one array.
        device: where the FFTs run ("cuda" for speed).
        progress: True for a tqdm bar on stderr, or a callable ``(iterable, total) -> iterable``.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    accumulator = SpectrumAccumulator(ratio=ratio, device=device, chunk_size=batch_size)
    batches, total = _batches(images, batch_size)
    if progress is True:
        batches = tqdm(batches, total=total, desc="spectrum", unit="batch", leave=False, disable=None)
    elif callable(progress):
        batches = progress(batches, total)
    for batch in batches:
        accumulator.update(batch)
    return accumulator.result()
