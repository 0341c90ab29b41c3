"""Fourier heat maps (Yin et al., "A Fourier perspective on model robustness", NeurIPS 2019).

For every frequency ``(du, dv)`` of the centred (H, W) spectrum: the error rate of the model on
images perturbed by one real Fourier basis image ``U`` (unit L2 norm, DFT non-zero only at ``(du, dv)``
and its conjugate; see :func:`freqtail.analysis.fourier.fourier_basis`)::

    x' = clip(x + r * eps * U, 0, 1)      U added to every channel

with a random sign ``r`` in {-1, +1} drawn independently for every channel (and image and
frequency) by default: Yin et al. perturb "each channel independently", and the widely used
FourierHeatmap implementation draws the sign per channel. ``sign="image"`` (a named option, not the
reference's recipe) shares one sign between an image's channels, which moves single frequencies'
error rates by up to 0.27 on the embedded test images. ``eps`` is the L2 norm per channel on the
[0, 1] scale (Yin et al. use 4 for CIFAR-10); the whole perturbation has norm ``eps * sqrt(C)``
before clipping.

The basis images of ``(du, dv)`` and ``(-du, -dv)`` are identical, so only the conjugate half plane
is evaluated and the map is mirrored. Many (image, frequency) pairs go through the model per forward
pass (``batch_size`` perturbed images at a time). Signs come from a seeded generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from freqtail.analysis._data import (
    SUBSET_SEED,
    check_logits,
    collect,
    eval_mode,
    model_device,
    select_images,
)
from freqtail.analysis.constants import DEFAULT_EPS, DEFAULT_SIGN, SIGN_MODES
from freqtail.analysis.fourier import conjugate_half_plane, fourier_basis
from freqtail.analysis.sensitivity import _load_npz
from freqtail.checks import check_choice, check_int, check_number, check_optional_int
from freqtail.errors import InputError
from freqtail.io import atomic_write

__all__ = ["DEFAULT_EPS", "SIGN_MODES", "HeatmapResult", "fourier_heatmap"]


@dataclass
class HeatmapResult:
    """Error rate per frequency of a Fourier-basis perturbation, on the centred (H, W) grid.

    ``error_rate[H // 2 + du, W // 2 + dv]`` is the error under the basis of frequency ``(du, dv)``
    (DC at the centre, like ``fftshift``).
    """

    error_rate: np.ndarray  # (H, W) in [0, 1]
    clean_error: float  # error rate without perturbation, same images
    eps: float
    sign: str
    seed: int
    num_images: int
    selection: Any = field(default=None, repr=False)  # analysis._data.Selection: which images were used

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.error_rate.shape[0]), int(self.error_rate.shape[1]))

    def to_dict(self, grid: bool = True) -> dict[str, Any]:
        """JSON-safe summary with the images used (``indices``, ``subset``, ``subset_seed``); ``grid=True``
        adds the error map as nested lists, rows = du."""
        h, w = self.image_size
        peak = np.unravel_index(int(np.argmax(self.error_rate)), self.error_rate.shape)
        out: dict[str, Any] = {
            "image_size": [h, w],
            "eps": float(self.eps),
            "sign": self.sign,
            "seed": int(self.seed),
            "num_images": int(self.num_images),
            "clean_error": float(self.clean_error),
            "mean_error": float(self.error_rate.mean()),
            "max_error": float(self.error_rate.max()),
            "max_error_frequency": [int(peak[0] - h // 2), int(peak[1] - w // 2)],
        }
        if self.selection is not None:
            out.update(self.selection.to_dict())
        if grid:
            out["error_rate"] = self.error_rate.tolist()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``heatmap.npz`` atomically (reload with :meth:`load`)."""
        arrays = {
            "error_rate": self.error_rate,
            "clean_error": np.float64(self.clean_error),
            "eps": np.float64(self.eps),
            "sign": np.asarray(self.sign),
            "seed": np.int64(self.seed),
            "num_images": np.int64(self.num_images),
        }
        if self.selection is not None and self.selection.indices is not None:
            arrays["indices"] = np.asarray(self.selection.indices, dtype=np.int64)
        return atomic_write(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> HeatmapResult:
        """Read a ``heatmap.npz`` (no pickle). Raises InputError if it is not one."""
        data = _load_npz(path, "Fourier heat map")
        try:
            return cls(
                error_rate=data["error_rate"],
                clean_error=float(data["clean_error"]),
                eps=float(data["eps"]),
                sign=str(data["sign"]),
                seed=int(data["seed"]),
                num_images=int(data["num_images"]),
            )
        except KeyError as err:
            raise InputError(f"The file {path} is not a freqtail Fourier heat map (no {err}).") from None


def check_eps(eps: Any) -> float:
    """The L2 norm of each Fourier-basis perturbation, a non-negative number."""
    return check_number(eps, "The perturbation norm eps", minimum=0)


def fourier_heatmap(
    model: nn.Module,
    data: Any,
    *,
    eps: float = DEFAULT_EPS,
    n: int | None = None,
    batch_size: int = 512,
    sign: str = DEFAULT_SIGN,
    seed: int = 0,
    progress: bool = False,
    subset_seed: int = SUBSET_SEED,
) -> HeatmapResult:
    """Error rate of the model under every single-frequency Fourier-basis perturbation of norm ``eps``.

    Args:
        model: classifier mapping float (B, C, H, W) in [0, 1] to logits (evaluated in eval mode).
        data: ``(images, labels)``, a dataset or an iterable of batches (the first ``n`` images are held
            in memory).
        eps: L2 norm of the perturbation per channel, [0, 1] scale.
        n: number of images (default all; of a pair or dataset, the seeded class-stratified subset of
            :func:`freqtail.data.subsets.stratified_subset`, recorded in ``result.selection``). Cost:
            ``n * M`` forward passes, M ~ H * W / 2 frequencies.
        batch_size: perturbed images per forward pass.
        sign: ``"channel"`` (default, Yin et al.: one random sign per channel, image and frequency) or
            ``"image"`` (one sign shared by the image's channels).
        seed: seeds the signs: ``torch.randint(0, 2, (M, N, C), generator=torch.Generator().manual_seed(seed))
            * 2 - 1`` (last axis 1 for ``sign="image"``), M frequencies in
            :func:`~freqtail.analysis.fourier.conjugate_half_plane` order, N images in subset order.
        progress: tqdm bar on stderr.
        subset_seed: seed of the ``n``-image subset (not of the signs: that is ``seed``).

    Returns:
        a :class:`HeatmapResult` with the (H, W) error map, mirrored across conjugate frequencies.
    """
    eps = check_eps(eps)
    n = check_optional_int(n, "The number of images n", minimum=1)
    batch_size = check_int(batch_size, "The batch size", minimum=1)
    check_choice(sign, SIGN_MODES, "The sign mode")
    seed = check_int(seed, "The heat-map seed")
    selection = select_images(data, n, subset_seed)
    images, labels = collect(data, n, batch_size, selection)
    count, channels, h, w = images.shape
    plane = conjugate_half_plane(h, w)
    device = model_device(model)
    images, labels = images.to(device), labels.to(device)
    generator = torch.Generator().manual_seed(int(seed))
    sign_shape = (plane.size, count, channels if sign == "channel" else 1)
    signs = (torch.randint(0, 2, sign_shape, generator=generator).float() * 2 - 1).to(device)
    errors = torch.zeros(plane.size, dtype=torch.float64, device=device)
    total = plane.size * count
    starts = range(0, total, batch_size)
    if progress:
        starts = tqdm(starts, desc="heatmap", unit="batch", leave=False, disable=None)
    with eval_mode(model), torch.no_grad():
        clean_wrong = 0
        for start in range(0, count, batch_size):
            y = labels[start : start + batch_size]
            logits = check_logits(model(images[start : start + batch_size]), y)
            clean_wrong += int((logits.argmax(1) != y).sum())
        for start in starts:
            pair = torch.arange(start, min(start + batch_size, total), device=device)
            frequency, image = pair // count, pair % count  # pair = frequency * count + image
            # Pairs are frequency-major, so a batch spans a contiguous run of frequencies: only their
            # basis images are built (all M of them would take M * H * W floats, 5 GB at 224 x 224).
            first, last = int(frequency[0]), int(frequency[-1]) + 1
            basis = fourier_basis(h, w, plane.du[first:last], plane.dv[first:last]).to(device)
            delta = eps * signs[frequency, image][:, :, None, None] * basis[frequency - first][:, None]
            x = (images[image] + delta).clamp_(0.0, 1.0)
            y = labels[image]
            wrong = (check_logits(model(x), y).argmax(1) != y).double()
            errors.index_add_(0, frequency, wrong)
    rate = (errors / count).cpu().numpy()
    grid = np.zeros(h * w)
    grid[plane.index] = rate
    grid[plane.conjugate_index] = rate
    return HeatmapResult(
        error_rate=grid.reshape(h, w),
        clean_error=clean_wrong / count,
        eps=eps,
        sign=sign,
        seed=int(seed),
        num_images=int(count),
        selection=selection,
    )
