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
pass: frequencies are taken in *blocks* of ``max(1, batch_size // N)`` consecutive frequencies
(N images), each block's pairs in passes of at most ``batch_size`` perturbed images (a block of one
frequency of more than ``batch_size`` images in several). Signs come from a seeded generator.

Under torchrun (``context``) the blocks are sharded: block ``b`` on rank ``b % world_size``, each
rank evaluating whole frequencies on all images, with the same signs (every rank draws the full sign
tensor from the seeded generator and indexes it by frequency and image). The blocks and their passes
do not depend on the number of processes, and the error counts are summed exactly (int64), so the
map equals one process's bit for bit.

With ``partial_path`` every rank keeps the error counts of the frequencies it has done in its own
file beside it (``heatmap.partial.rank<r>.npz``; :mod:`freqtail.analysis._partials`, whose units are
the frequencies), and a rerun with the same weights, images and settings, with any number of
processes, evaluates only the blocks none of those files holds (dealt out like the blocks of a fresh
run): integer counts, so the resumed map equals the uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from freqtail.analysis._data import (
    SUBSET_SEED,
    check_logits,
    collect,
    eval_mode,
    model_device,
    select_images,
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
from freqtail.analysis.constants import DEFAULT_EPS, DEFAULT_SIGN, SIGN_MODES, check_heatmap_eps
from freqtail.analysis.fourier import conjugate_half_plane, fourier_basis
from freqtail.analysis.sensitivity import _load_npz
from freqtail.checks import check_choice, check_int, check_optional_int
from freqtail.distributed import DistContext, all_reduce_counts, global_batches, raise_together, rank_batches
from freqtail.errors import InputError, OutputError
from freqtail.io import atomic_write
from freqtail.progress import progress_bar

__all__ = ["DEFAULT_EPS", "SIGN_MODES", "HeatmapResult", "fourier_heatmap"]

#: Version of the heat map's partial-file layout (part of the fingerprint).
PARTIAL_FORMAT = 1


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
    world_size: int = 1  # processes that measured it (torchrun)

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
            "world_size": int(self.world_size),
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
            "world_size": np.int64(self.world_size),
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
                world_size=int(data.get("world_size", 1)),  # files written before it was recorded: 1
            )
        except KeyError as err:
            raise InputError(f"The file {path} is not a freqtail Fourier heat map (no {err}).") from None


def frequency_blocks(num_frequencies: int, num_images: int, batch_size: int) -> list[np.ndarray]:
    """The blocks of consecutive frequency numbers a heat map evaluates together: ``max(1, batch_size
    // num_images)`` frequencies each (the last may be shorter), so that a block's pairs fill at most
    ``batch_size`` perturbed images when the images fit in one pass."""
    return global_batches(np.arange(num_frequencies), max(1, batch_size // num_images))


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
    partial_path: str | os.PathLike | None = None,
    context: DistContext | None = None,
) -> HeatmapResult:
    """Error rate of the model under every single-frequency Fourier-basis perturbation of norm ``eps``.

    Args:
        model: classifier mapping float (B, C, H, W) in [0, 1] to logits (evaluated in eval mode).
        data: ``(images, labels)``, a dataset or an iterable of batches (the first ``n`` images are held
            in memory, on every rank).
        eps: L2 norm of the perturbation per channel, [0, 1] scale.
        n: number of images (default all; of a pair or dataset, the seeded class-stratified subset of
            :func:`freqtail.data.subsets.stratified_subset`, recorded in ``result.selection``). Cost:
            ``n * M`` forward passes, M ~ H * W / 2 frequencies.
        batch_size: perturbed images per forward pass (module docstring: frequency blocks).
        sign: ``"channel"`` (default, Yin et al.: one random sign per channel, image and frequency) or
            ``"image"`` (one sign shared by the image's channels).
        seed: seeds the signs: ``torch.randint(0, 2, (M, N, C), generator=torch.Generator().manual_seed(seed))
            * 2 - 1`` (last axis 1 for ``sign="image"``), M frequencies in
            :func:`~freqtail.analysis.fourier.conjugate_half_plane` order, N images in subset order.
        progress: tqdm bar on stderr (rank 0).
        subset_seed: seed of the ``n``-image subset (not of the signs: that is ``seed``).
        partial_path: if given, each process saves the error counts of the frequencies it has done to
            its own file beside it (``<stem>.rank<r><suffix>``), and a later call with the same model,
            images and settings, with any number of processes, evaluates only the blocks none of those
            files holds; rank 0 removes them once the map is complete.
        context: the process group (:func:`freqtail.distributed.init_distributed`); with several
            processes every rank calls this with the same arguments, evaluates its frequency blocks and
            returns the same full result. None: one process.

    Returns:
        a :class:`HeatmapResult` with the (H, W) error map, mirrored across conjugate frequencies.

    Raises:
        InputError: bad arguments or data; under torchrun on every rank when any rank failed.
    """
    context = context if context is not None else DistContext()
    eps = check_heatmap_eps(eps)
    n = check_optional_int(n, "The number of images n", minimum=1)
    batch_size = check_int(batch_size, "The batch size", minimum=1)
    check_choice(sign, SIGN_MODES, "The sign mode")
    seed = check_int(seed, "The heat-map seed")
    selection = select_images(data, n, subset_seed)
    images, labels = collect(data, n, batch_size, selection)
    count, channels, h, w = images.shape
    plane = conjugate_half_plane(h, w)
    partial = Path(partial_path) if partial_path is not None else None
    fingerprint = ""
    if partial is not None:
        settings = (PARTIAL_FORMAT, eps, sign, int(seed), batch_size)
        fingerprint = run_fingerprint(model, (images, labels), settings)
    template = UnitValues.empty(plane.size, {"errors": ((), np.int64)})
    local, agreed = resume_units(partial, fingerprint, template, context)
    device = model_device(model)
    images, labels = images.to(device), labels.to(device)
    generator = torch.Generator().manual_seed(int(seed))
    sign_shape = (plane.size, count, channels if sign == "channel" else 1)
    # +-1 as int8 on the CPU: an eighth of the draw's memory; each block's signs go to the device.
    signs = (torch.randint(0, 2, sign_shape, generator=generator) * 2 - 1).to(torch.int8)
    all_blocks = frequency_blocks(plane.size, count, batch_size)
    pending = [number for number, block in enumerate(all_blocks) if not agreed[block].all()]
    blocks = [all_blocks[number] for number in owned_units(pending, context.rank, context.world_size)]
    images_per_pass = count if count <= batch_size else batch_size
    computed = np.zeros(plane.size, dtype=bool)
    writer = PartialWriter(
        rank_partial_path(partial, context.rank) if partial is not None else None,
        fingerprint,
        local,
        PARTIAL_FORMAT,
    )
    clean_wrong = 0
    failure: Exception | None = None
    try:
        with eval_mode(model), torch.no_grad():
            for _, batch in rank_batches(global_batches(np.arange(count), batch_size), context):
                chosen = torch.from_numpy(batch).to(device)
                logits = check_logits(model(images[chosen]), labels[chosen])
                clean_wrong += int((logits.argmax(1) != labels[chosen]).sum())
            shown = (
                progress_bar(blocks, desc="heatmap", unit="block", leave=False, enabled=progress)
                if context.is_main
                else blocks
            )
            try:
                for frequencies in shown:
                    start = time.perf_counter()
                    local.arrays["errors"][frequencies] = _block_errors(
                        model, images, labels, eps, signs, plane, frequencies, images_per_pass
                    )
                    local.done[frequencies] = True
                    computed[frequencies[~agreed[frequencies]]] = True
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
    errors = local.gather(computed | (agreed & context.is_main), context, "Fourier heat map").arrays["errors"]
    summed = np.concatenate([all_reduce_counts([clean_wrong], context), errors])
    if partial is not None and context.is_main:
        remove_partials(partial)
    rate = summed[1:] / count
    grid = np.zeros(h * w)
    grid[plane.index] = rate
    grid[plane.conjugate_index] = rate
    return HeatmapResult(
        error_rate=grid.reshape(h, w),
        clean_error=int(summed[0]) / count,
        eps=eps,
        sign=sign,
        seed=int(seed),
        num_images=int(count),
        selection=selection,
        world_size=context.world_size,
    )


def _block_errors(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    signs: torch.Tensor,
    plane: Any,
    frequencies: np.ndarray,
    images_per_pass: int,
) -> np.ndarray:
    """Misclassified images (int64 (k,)) under each of a block's k frequencies, on all N images.

    Args:
        images: float (N, C, H, W) on the model's device; labels: int64 (N,).
        signs: int8 (M, N, C or 1) of +-1; plane: the conjugate half plane (M frequencies).
        frequencies: the block's frequency numbers; images_per_pass: images of each frequency per
            forward pass (N when the block's k * N pairs fit in one pass).
    """
    count, _, h, w = images.shape
    device = images.device
    # Only the block's basis images are built (all M would take M * H * W floats: 5 GB at 224 x 224).
    basis = fourier_basis(h, w, plane.du[frequencies], plane.dv[frequencies]).to(device)  # (k, H, W)
    block_signs = signs[torch.from_numpy(frequencies)].to(device=device, dtype=torch.float32)
    wrong = torch.zeros(len(frequencies), dtype=torch.int64, device=device)
    for start in range(0, count, images_per_pass):
        part = slice(start, start + images_per_pass)
        # x = image + (eps * sign) * basis, (k, n, C, H, W), in one pass without a delta tensor
        x = torch.addcmul(images[None, part], eps * block_signs[:, part, :, None, None], basis[:, None, None])
        x = x.clamp_(0.0, 1.0).flatten(0, 1)
        y = labels[part].repeat(len(frequencies))
        misses = (check_logits(model(x), y).argmax(1) != y).view(len(frequencies), -1)
        wrong += misses.sum(1)
    return wrong.cpu().numpy()
