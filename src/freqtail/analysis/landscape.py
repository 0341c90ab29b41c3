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
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
from freqtail.analysis.sensitivity import _load_npz
from freqtail.checks import check_int, check_number, check_optional_int
from freqtail.errors import InputError
from freqtail.io import atomic_write
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
        boundary, seed, span (reload with :meth:`load`, redraw with
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
            )
        except KeyError as err:
            raise InputError(f"The file {path} is not a freqtail loss landscape (no {err}).") from None


def check_grid(grid: Any) -> int:
    """The number of landscape grid points per axis, a positive integer."""
    return check_int(grid, "The landscape grid (points per axis)", minimum=1)


def check_span(span: Any) -> float:
    """The half-width of the landscape grid, a positive number: the grid covers [-span, span]^2."""
    return check_number(span, "The landscape span", minimum=0, open_min=True)


def _fingerprint(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, settings: tuple) -> str:
    """A digest of the weights, data and settings: a partial grid is resumed only if all match."""
    digest = hashlib.sha256(repr(settings).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(images.numpy().tobytes())
    digest.update(labels.numpy().tobytes())
    return digest.hexdigest()


def _evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model on CPU-held images (evaluated in batches)."""
    loss_sum, correct = 0.0, 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        logits = check_logits(model(x), y).double()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return loss_sum / images.shape[0], correct / images.shape[0]


def _read_partial(path: Path, fingerprint: str, grid: int) -> dict[str, np.ndarray] | None:
    """The completed rows of an earlier, interrupted run with the same fingerprint, or None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError):
        return None
    if str(data.get("fingerprint", "")) != fingerprint or data.get("loss_lfc", np.zeros(0)).shape != (
        grid,
        grid,
    ):
        return None
    return data


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
) -> LandscapeResult:
    """Loss and accuracy of the model around its weights on the LFC-only and HFC-only data.

    Args:
        model: classifier mapping float (B, C, H, W) in [0, 1] to logits.
        data: ``(images, labels)``, a dataset or an iterable of batches (the first ``n`` images are held
            in memory, with their LFC and HFC versions: 3 copies).
        boundary_band: where to split; None measures the 80/20 boundary of the same images.
        ratio: the 80/20 ratio when the boundary is measured here.
        grid: points per axis (odd grids contain the trained point alpha = beta = 0 exactly).
        span: the grid covers ``[-span, span]`` on both axes, in units of the filter-normalised directions.
        seed: seeds the two directions (drawn on the CPU: same directions on every device).
        n: number of images (default all; of a pair or dataset, the seeded class-stratified subset of
            :func:`freqtail.data.subsets.stratified_subset`, recorded in ``result.selection``).
        batch_size: images per forward pass.
        partial_path: if given, completed rows are saved there after each row, and a later call with the
            same model, data and settings resumes from them; the file is removed on completion.
        progress: tqdm bar over grid rows on stderr.
        subset_seed: seed of the ``n``-image subset (not of the directions: that is ``seed``).

    Cost: ``grid ** 2 * 2 * n`` image forward passes; linear in the number of grid points.
    """
    grid = check_grid(grid)
    span = check_span(span)
    seed = check_int(seed, "The landscape seed")
    n = check_optional_int(n, "The number of images n", minimum=1)
    batch_size = check_int(batch_size, "The batch size", minimum=1)
    selection = select_images(data, n, subset_seed)
    images, labels = collect(data, n, batch_size, selection)
    if boundary_band is None:
        boundary_band = summarize(images, ratio=ratio, batch_size=batch_size).boundary_band
    lfc, hfc = split_frequencies(images, boundary_band)
    lfc, hfc = lfc.float(), hfc.float()
    alphas = grid_coordinates(grid, span)
    betas = alphas.copy()
    device = model_device(model)

    generator = torch.Generator().manual_seed(int(seed))
    first = filter_normalized_direction(model, generator)
    second = filter_normalized_direction(model, generator)
    parameters = dict(model.named_parameters())
    original = {name: p.detach().clone() for name, p in parameters.items()}

    shape = (grid, grid)
    losses = {"lfc": np.zeros(shape), "hfc": np.zeros(shape)}
    accuracies = {"lfc": np.zeros(shape), "hfc": np.zeros(shape)}
    start_row = 0
    partial = Path(partial_path) if partial_path is not None else None
    fingerprint = ""
    if partial is not None:
        settings = (LANDSCAPE_FORMAT, grid, span, int(seed), int(boundary_band), batch_size)
        fingerprint = _fingerprint(model, images, labels, settings)
        previous = _read_partial(partial, fingerprint, grid)
        if previous is not None:
            start_row = int(previous["rows_done"])
            for part in ("lfc", "hfc"):
                losses[part][:start_row] = previous[f"loss_{part}"][:start_row]
                accuracies[part][:start_row] = previous[f"acc_{part}"][:start_row]

    rows = range(start_row, grid)
    if progress:
        rows = tqdm(rows, desc="landscape", unit="row", total=grid - start_row, leave=False, disable=None)
    try:
        with eval_mode(model), torch.no_grad():
            for i in rows:
                for j in range(grid):
                    a, b = float(alphas[i]), float(betas[j])
                    for name, p in parameters.items():
                        p.copy_(original[name] + a * first[name] + b * second[name])
                    for part, x in (("lfc", lfc), ("hfc", hfc)):
                        losses[part][i, j], accuracies[part][i, j] = _evaluate(
                            model, x, labels, batch_size, device
                        )
                if partial is not None:
                    _write_partial(partial, fingerprint, i + 1, losses, accuracies)
    finally:
        with torch.no_grad():
            for name, p in parameters.items():
                p.copy_(original[name])
    if partial is not None and partial.exists():
        partial.unlink()

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
    )


def _write_partial(path: Path, fingerprint: str, rows_done: int, losses: dict, accuracies: dict) -> None:
    arrays = {
        "fingerprint": np.asarray(fingerprint),
        "rows_done": np.int64(rows_done),
        "loss_lfc": losses["lfc"],
        "loss_hfc": losses["hfc"],
        "acc_lfc": accuracies["lfc"],
        "acc_hfc": accuracies["hfc"],
    }
    atomic_write(path, lambda handle: np.savez(handle, **arrays))
