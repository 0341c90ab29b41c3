"""Loss landscapes on the low- and high-frequency components of the data (paper §3.1, Fig. 1 and 4).

Following Li et al., "Visualizing the loss landscape of neural nets" (NeurIPS 2018): two random
directions ``d1, d2`` in weight space, each **filter-normalised** (every filter of a direction, i.e.
every slice along the first axis of a weight tensor with two or more dimensions, is rescaled to the
norm of the corresponding filter of the trained weights); parameters with at most one dimension
(biases, batch-norm scales and shifts) get a zero direction. That is Li et al.'s function default
(``ignore="biasbn"``) and the recipe of their figures (``--xignore biasbn``), not the default of their
command line (which perturbs biases and batch-norm parameters too). The loss surface is
``L(theta + alpha d1 + beta d2)`` on a grid of ``(alpha, beta)`` in ``[-span, span]^2``, evaluated on
the low-pass-only and the high-pass-only version of the data (:func:`freqtail.spectrum.split_frequencies`
at the data's 80/20 boundary).

The model is evaluated in **eval mode**: batch norm normalises with the running statistics of the
trained model (buffers are not perturbed), so every grid point sees the same normalisation and the
surface reflects the weights only. The original weights are restored bit for bit afterwards (also
on error or Ctrl-C).

Under torchrun the grid points are dealt out among the processes (each evaluates whole points on
all the images) and every process returns the whole landscape; with ``partial_path`` every process
keeps the points it has done in its own file, and a rerun with any number of processes skips them
(:mod:`freqtail.analysis._landscape_points`).
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
import torch.nn.functional as F
from torch import nn

from freqtail.analysis._data import (
    SUBSET_SEED,
    check_logits,
    collect,
    eval_mode,
    model_device,
    select_images,
)
from freqtail.analysis._landscape_points import (
    PARTIAL_FORMAT,
    PointValues,
    owned_points,
    rank_partial_path,
    remove_partials,
)
from freqtail.analysis._partials import PartialWriter, resume_units, run_fingerprint
from freqtail.analysis.constants import check_grid, check_span
from freqtail.analysis.sensitivity import _load_npz
from freqtail.checks import check_int, check_optional_int
from freqtail.distributed import DistContext, any_rank, broadcast_json
from freqtail.errors import FreqtailError, InputError, OutputError
from freqtail.io import atomic_write
from freqtail.progress import progress_bar, silent
from freqtail.spectrum import DEFAULT_RATIO, split_frequencies, summarize

#: Version of the landscape file layout (``landscape.npz``).
LANDSCAPE_FORMAT = 1

__all__ = [
    "LANDSCAPE_FORMAT",
    "LandscapeResult",
    "filter_normalized_direction",
    "grid_coordinates",
    "loss_landscape",
]


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One random filter-normalised direction for the model's parameters (Li et al. 2018).

    For every parameter ``w`` with two or more dimensions: a standard normal tensor ``d`` (drawn on the
    CPU from ``generator``, so a seed gives the same direction on any device), each filter
    ``d[i]`` rescaled to ``||w[i]|| / ||d[i]||`` times itself. Parameters with at most one dimension
    (biases, batch-norm weights and biases) get zeros.

    Returns:
        ``{name: tensor}`` shaped, typed and placed like ``model.named_parameters()``.
    """
    direction = {}
    for name, weight in model.named_parameters():
        w = weight.detach()
        if w.ndim <= 1:
            direction[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        w64 = w.to(device="cpu", dtype=torch.float64)
        filter_norm = w64.flatten(1).norm(dim=1)
        d_norm = d.flatten(1).norm(dim=1)
        d = d * (filter_norm / d_norm.clamp_min(1e-300)).reshape(-1, *([1] * (w.ndim - 1)))
        direction[name] = d.to(device=w.device, dtype=w.dtype)
    return direction


def grid_coordinates(grid: int, span: float) -> np.ndarray:
    """``grid`` evenly spaced values from ``-span`` to ``span``; the middle one is exactly 0 for odd grids."""
    half = (grid - 1) / 2
    return span * (np.arange(grid, dtype=np.float64) - half) / half if grid > 1 else np.zeros(1)


@dataclass
class LandscapeResult:
    """Loss and accuracy grids around the trained weights; ``loss_lfc[i, j]`` is at ``(alphas[i], betas[j])``.

    Grid points whose loss was not finite (a diverged far point) hold the largest finite loss of
    their grid and are marked in ``nonfinite_lfc`` / ``nonfinite_hfc``.
    """

    alphas: np.ndarray  # (G,)
    betas: np.ndarray  # (G,)
    loss_lfc: np.ndarray  # (G, G) mean cross-entropy on the low-pass data
    loss_hfc: np.ndarray  # (G, G) on the high-pass data
    acc_lfc: np.ndarray  # (G, G) accuracy in [0, 1]
    acc_hfc: np.ndarray
    nonfinite_lfc: np.ndarray  # (G, G) bool
    nonfinite_hfc: np.ndarray
    boundary_band: int
    seed: int
    span: float
    num_images: int
    image_size: tuple[int, int]
    selection: Any = field(default=None, repr=False)  # analysis._data.Selection: which images were used
    world_size: int = 1  # the number of processes that computed it

    @property
    def grid(self) -> int:
        return int(self.alphas.size)

    def center(self) -> dict[str, float] | None:
        """Loss and accuracy at the trained weights (alpha = beta = 0), if that is a grid point."""
        i = np.flatnonzero(self.alphas == 0)
        j = np.flatnonzero(self.betas == 0)
        if not (i.size and j.size):
            return None
        i, j = int(i[0]), int(j[0])
        return {
            "loss_lfc": float(self.loss_lfc[i, j]),
            "loss_hfc": float(self.loss_hfc[i, j]),
            "acc_lfc": float(self.acc_lfc[i, j]),
            "acc_hfc": float(self.acc_hfc[i, j]),
        }

    def to_dict(self, grids: bool = False) -> dict[str, Any]:
        """JSON-safe summary (with the images used: ``indices``, ``subset``, ``subset_seed``);
        ``grids=True`` adds the loss and accuracy grids as nested lists."""
        out: dict[str, Any] = {
            "grid": self.grid,
            "span": float(self.span),
            "seed": int(self.seed),
            "boundary_band": int(self.boundary_band),
            "num_images": int(self.num_images),
            "image_size": [int(v) for v in self.image_size],
            "center": self.center(),
            "loss_lfc_range": [float(self.loss_lfc.min()), float(self.loss_lfc.max())],
            "loss_hfc_range": [float(self.loss_hfc.min()), float(self.loss_hfc.max())],
            "nonfinite_points": int(self.nonfinite_lfc.sum() + self.nonfinite_hfc.sum()),
            "world_size": int(self.world_size),
        }
        if self.selection is not None:
            out.update(self.selection.to_dict())
        if grids:
            out["alphas"] = [float(v) for v in self.alphas]
            out["betas"] = [float(v) for v in self.betas]
            for key in ("loss_lfc", "loss_hfc", "acc_lfc", "acc_hfc"):
                out[key] = getattr(self, key).tolist()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``landscape.npz`` atomically: alphas, betas, losses and accuracies for lfc/hfc,
        boundary, seed, span, world_size (reload with :meth:`load`, redraw with
        :func:`freqtail.report.analysis_figures.plot_landscape`)."""
        arrays = {
            "format": np.int64(LANDSCAPE_FORMAT),
            "alphas": self.alphas,
            "betas": self.betas,
            "loss_lfc": self.loss_lfc,
            "loss_hfc": self.loss_hfc,
            "acc_lfc": self.acc_lfc,
            "acc_hfc": self.acc_hfc,
            "nonfinite_lfc": self.nonfinite_lfc,
            "nonfinite_hfc": self.nonfinite_hfc,
            "boundary_band": np.int64(self.boundary_band),
            "seed": np.int64(self.seed),
            "span": np.float64(self.span),
            "num_images": np.int64(self.num_images),
            "image_size": np.asarray(self.image_size, dtype=np.int64),
            "world_size": np.int64(self.world_size),
        }
        if self.selection is not None and self.selection.indices is not None:
            arrays["indices"] = np.asarray(self.selection.indices, dtype=np.int64)
        return atomic_write(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LandscapeResult:
        """Read a ``landscape.npz`` (no pickle).

        Raises:
            InputError: missing file or not a landscape.
        """
        data = _load_npz(path, "loss landscape")
        try:
            return cls(
                alphas=data["alphas"],
                betas=data["betas"],
                loss_lfc=data["loss_lfc"],
                loss_hfc=data["loss_hfc"],
                acc_lfc=data["acc_lfc"],
                acc_hfc=data["acc_hfc"],
                nonfinite_lfc=data["nonfinite_lfc"].astype(bool),
                nonfinite_hfc=data["nonfinite_hfc"].astype(bool),
                boundary_band=int(data["boundary_band"]),
                seed=int(data["seed"]),
                span=float(data["span"]),
                num_images=int(data["num_images"]),
                image_size=tuple(int(v) for v in data["image_size"]),
                world_size=int(data["world_size"]) if "world_size" in data else 1,  # older files: one process
            )
        except KeyError as err:
            raise InputError(f"The file {path} is not a freqtail loss landscape (no {err}).") from None


def _check_same_on_every_rank(fingerprint: str, context: DistContext) -> None:
    """Refuse to shard when the ranks hold different weights, images or settings (the boundary band
    included): their points would not form one landscape.

    Raises:
        InputError: on every rank, if any rank's fingerprint differs from rank 0's.
    """
    reference = broadcast_json(fingerprint, context)
    if any_rank(fingerprint != reference, context):
        raise InputError(
            "The processes do not hold the same model weights, images and landscape settings "
            "(their fingerprints differ from rank 0's), so their points would not form one landscape; "
            "give every process the same run, data and options."
        )


class _GridPoints:
    """Moves the model's parameters to grid points ``theta + a d1 + b d2`` and evaluates them.

    Every point is set from the saved ``theta`` with the same three multi-tensor operations (never
    from the previous point's weights), and evaluated on the same batches in the same order with
    float64 sums, so a point's values do not depend on which points were computed before it, by this
    process or another: that makes a sharded or resumed landscape equal an uninterrupted one bit for
    bit (on the same kind of device and torch build).
    """

    def __init__(
        self,
        model: nn.Module,
        directions: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
        parts: dict[str, torch.Tensor],
        labels: torch.Tensor,
        batch_size: int,
        device: torch.device,
    ):
        named = dict(model.named_parameters())
        self.model = model
        self.parameters = list(named.values())
        self.theta = [p.detach().clone() for p in self.parameters]
        self.first = [directions[0][name] for name in named]
        self.second = [directions[1][name] for name in named]
        self.count = int(labels.shape[0])
        # The images go to the device once, not once per point: (x, labels there, labels on the CPU
        # for the label check, which then needs no device synchronisation).
        self.batches = {
            part: [
                (
                    images[start : start + batch_size].to(device),
                    labels[start : start + batch_size].to(device),
                    labels[start : start + batch_size],
                )
                for start in range(0, self.count, batch_size)
            ]
            for part, images in parts.items()
        }
        self.device = device

    def move_to(self, a: float, b: float) -> None:
        """Set the parameters to ``theta + a d1 + b d2`` in place (no allocation)."""
        if not self.parameters:  # the foreach operations refuse empty lists
            return
        torch._foreach_copy_(self.parameters, self.theta)
        torch._foreach_add_(self.parameters, self.first, alpha=a)
        torch._foreach_add_(self.parameters, self.second, alpha=b)

    def restore(self) -> None:
        """The trained parameters back, bit for bit."""
        if self.parameters:
            torch._foreach_copy_(self.parameters, self.theta)

    def evaluate(self) -> dict[str, tuple[float, float]]:
        """``{part: (mean cross-entropy, accuracy)}`` at the current weights; one device synchronisation."""
        sums = []
        for batches in self.batches.values():
            loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
            correct = torch.zeros((), dtype=torch.int64, device=self.device)
            for x, y, y_cpu in batches:
                logits = check_logits(self.model(x), y_cpu).double()
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                correct += (logits.argmax(1) == y).sum()
            sums.append((loss_sum, correct))
        loss_sums = torch.stack([loss for loss, _ in sums]).tolist()
        corrects = torch.stack([hits for _, hits in sums]).tolist()
        return {
            part: (loss / self.count, hits / self.count)
            for part, loss, hits in zip(self.batches, loss_sums, corrects, strict=True)
        }


def loss_landscape(
    model: nn.Module,
    data: Any,
    *,
    boundary_band: int | None = None,
    ratio: float = DEFAULT_RATIO,
    grid: int = 21,
    span: float = 1.0,
    seed: int = 0,
    n: int | None = None,
    batch_size: int = 256,
    partial_path: str | os.PathLike | None = None,
    progress: bool = False,
    subset_seed: int = SUBSET_SEED,
    context: DistContext | None = None,
) -> LandscapeResult:
    """Loss and accuracy of the model around its weights on the LFC-only and HFC-only data.

    Args:
        model: classifier mapping float (B, C, H, W) in [0, 1] to logits.
        data: ``(images, labels)``, a dataset or an iterable of batches (the first ``n`` images are held
            in memory, with their LFC and HFC versions: 3 copies; the LFC and HFC copies also on the
            model's device).
        boundary_band: where to split; None measures the 80/20 boundary of the same images.
        ratio: the 80/20 ratio when the boundary is measured here.
        grid: points per axis (odd grids contain the trained point alpha = beta = 0 exactly).
        span: the grid covers ``[-span, span]`` on both axes, in units of the filter-normalised directions.
        seed: seeds the two directions (drawn on the CPU: same directions on every device and rank).
        n: number of images (default all; of a pair or dataset, the seeded class-stratified subset of
            :func:`freqtail.data.subsets.stratified_subset`, recorded in ``result.selection``).
        batch_size: images per forward pass.
        partial_path: if given, each process saves the points it has done to its own file beside it
            (``<stem>.rank<r><suffix>``, see :mod:`freqtail.analysis._landscape_points`), and a later
            call with the same model, data and settings, with any number of processes, skips every
            point any of those files holds; rank 0 removes them once the landscape is complete.
        progress: tqdm bar over this process's grid points on stderr (rank 0 only).
        subset_seed: seed of the ``n``-image subset (not of the directions: that is ``seed``).
        context: the process group (:func:`freqtail.distributed.init_distributed`); with several
            processes the grid points are dealt out among them (:func:`owned_points`: each evaluates
            whole points on all the images) and every process returns the whole landscape. Every
            process must hold the same model and data (checked).

    Cost: ``grid ** 2 * 2 * n`` image forward passes, shared among the processes.

    Raises:
        InputError: bad settings or data, or processes that hold different weights or images.
        FreqtailError: another process failed while computing its points.
    """
    context = context if context is not None else DistContext()
    grid = check_grid(grid)
    span = check_span(span)
    seed = check_int(seed, "The landscape seed")
    n = check_optional_int(n, "The number of images n", minimum=1)
    batch_size = check_int(batch_size, "The batch size", minimum=1)
    selection = select_images(data, n, subset_seed)
    images, labels = collect(data, n, batch_size, selection)
    if boundary_band is None:
        # Every rank measures the same images with the same CPU code: the same band (and the
        # fingerprint check below proves it).
        boundary_band = summarize(images, ratio=ratio, batch_size=batch_size).boundary_band
    lfc, hfc = split_frequencies(images, boundary_band)
    alphas = grid_coordinates(grid, span)
    betas = alphas.copy()
    device = model_device(model)
    generator = torch.Generator().manual_seed(int(seed))
    first = filter_normalized_direction(model, generator)
    directions = (first, filter_normalized_direction(model, generator))

    points = grid * grid
    partial = Path(partial_path) if partial_path is not None else None
    fingerprint = ""
    if partial is not None or context.distributed:
        settings = (LANDSCAPE_FORMAT, PARTIAL_FORMAT, grid, span, int(seed), int(boundary_band), batch_size)
        fingerprint = run_fingerprint(model, (images, labels), settings)
    if context.distributed:
        _check_same_on_every_rank(fingerprint, context)
    local, agreed = resume_units(partial, fingerprint, PointValues.empty(points), context)
    mine = owned_points(np.flatnonzero(~agreed), context.rank, context.world_size)

    computed = np.zeros(points, dtype=bool)
    writer = PartialWriter(
        rank_partial_path(partial, context.rank) if partial is not None else None,
        fingerprint,
        local,
        PARTIAL_FORMAT,
    )
    failure: Exception | None = None
    try:
        with eval_mode(model), torch.no_grad():
            points_of = _GridPoints(
                model, directions, {"lfc": lfc.float(), "hfc": hfc.float()}, labels, batch_size, device
            )
            try:
                bar = (
                    progress_bar(mine, desc="landscape", unit="point", leave=False, enabled=progress)
                    if context.is_main
                    else silent(mine)
                )
                for point in bar:
                    start = time.perf_counter()
                    points_of.move_to(float(alphas[point // grid]), float(betas[point % grid]))
                    values = points_of.evaluate()
                    local.set_point(int(point), *values["lfc"], *values["hfc"])
                    computed[point] = True
                    writer.unit_done(time.perf_counter() - start)
                if context.distributed:  # another rank may fail in the gather: keep this share
                    writer.flush()
            except BaseException:
                with contextlib.suppress(OutputError):  # keep what is done, but report the first error
                    writer.flush()
                raise
            finally:
                points_of.restore()
    except Exception as err:
        if not context.distributed:
            raise
        failure = err  # told to the other ranks first, so that none waits for it in the gather
    if context.distributed and any_rank(failure is not None, context):
        if failure is not None:
            raise failure
        raise FreqtailError(
            "Another process failed while computing the loss landscape (its message is above); "
            "the points done are kept for a rerun."
        )

    values = local.gather(computed | (agreed & context.is_main), context, "loss landscape")
    if partial is not None and context.is_main:
        remove_partials(partial)
    grids = values.grids(grid)
    losses = {part: grids[f"loss_{part}"] for part in ("lfc", "hfc")}
    accuracies = {part: grids[f"acc_{part}"] for part in ("lfc", "hfc")}
    nonfinite = {part: ~np.isfinite(losses[part]) for part in losses}
    for part in losses:
        if nonfinite[part].any():
            finite = losses[part][~nonfinite[part]]
            losses[part][nonfinite[part]] = finite.max() if finite.size else 0.0
    return LandscapeResult(
        alphas=alphas,
        betas=betas,
        loss_lfc=losses["lfc"],
        loss_hfc=losses["hfc"],
        acc_lfc=accuracies["lfc"],
        acc_hfc=accuracies["hfc"],
        nonfinite_lfc=nonfinite["lfc"],
        nonfinite_hfc=nonfinite["hfc"],
        boundary_band=int(boundary_band),
        seed=int(seed),
        span=span,
        num_images=int(images.shape[0]),
        image_size=(int(images.shape[2]), int(images.shape[3])),
        selection=selection,
        world_size=context.world_size,
    )
