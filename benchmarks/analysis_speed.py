"""How much do the model explanations cost?

Prints, for a model (default ``small-cnn`` width 32) on natural-image crops of 32x32 (and, with
``--size``, other sizes), single-threaded on the CPU unless ``--device cuda``:

* the frequency-sensitivity pass (:func:`freqtail.analysis.frequency_sensitivity`, boundary given,
  and with the boundary measured in the same pass) in milliseconds per image, next to one plain
  forward + input-gradient backward per image (cross-entropy, ``torch.autograd.grad`` with respect to
  the images, eval mode) on the same batches, and their ratio (goal <= 1.2x);
* the loss landscape (:func:`freqtail.analysis.loss_landscape`) per grid point for two grid sizes,
  and the ratio of total times against the ratio of point counts (linear growth: equal ratios); one
  grid point next to one evaluation pass over the same images (a point evaluates the LFC and the HFC
  copy: two passes; goal <= 1.1x); and next to Li et al.'s loop (below);
* the Fourier heat map (:func:`freqtail.analysis.fourier_heatmap`) in perturbed images per second,
  next to plain forward passes per second on batches of the same size (goal <= 1.2x per image), and
  next to FourierHeatmap's loop (below).

The reference loops are written here, plainly, from the published descriptions of the two
reference implementations, on the same model, images, directions and frequencies (never shipped in
the library):

* Li et al. ("Visualizing the loss landscape of neural nets", loss-landscape repository): for every
  grid point, the weights are set to ``theta + a d1 + b d2`` parameter by parameter and the whole data
  loader is run through the model (a ``DataLoader`` over the images, cross-entropy summed over its
  batches), once for the LFC and once for the HFC data;
* FourierHeatmap (Yin et al.'s heat map as the widely used FourierHeatmap repository computes it): one
  basis at a time, a fresh pass over the data loader per basis, the noise added to each image by the
  loader's transform with a random sign per channel, then batched forward passes. Both run with the
  same batches (all the images under one basis per pass): on a CPU a small CNN's forward pass is
  faster per image in batches of tens than of hundreds (cache), which would otherwise decide the
  comparison rather than the loops.

Functions are timed in turn within every repeat (best of ``--repeats``), so that all of them see
the same background load on a shared machine.

Run: ``OMP_NUM_THREADS=1 python benchmarks/analysis_speed.py`` (``--quick`` for a shorter run).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from freqtail.analysis import conjugate_half_plane, fourier_heatmap, frequency_sensitivity, loss_landscape
from freqtail.analysis.fourier import fourier_basis
from freqtail.analysis.landscape import filter_normalized_direction, grid_coordinates
from freqtail.models import FreqtailModel, create_model
from freqtail.sample_photos import photo_crops
from freqtail.spectrum import split_frequencies


def best_seconds(fns: dict, repeats: int) -> dict:
    """Best-of-``repeats`` wall time of each function, timed in turn within every repeat."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def li_et_al_landscape(model, images, labels, boundary_band: int, grid: int, batch: int) -> None:
    """Li et al.'s loop (module docstring): weights set per point, the whole loader per point and part."""
    lfc, hfc = (part.float() for part in split_frequencies(images, boundary_band))
    generator = torch.Generator().manual_seed(0)
    first = filter_normalized_direction(model, generator)
    second = filter_normalized_direction(model, generator)
    weights = [p.detach().clone() for p in model.parameters()]
    directions = list(zip(first.values(), second.values(), strict=True))
    coordinates = grid_coordinates(grid, 1.0)
    loaders = [DataLoader(TensorDataset(x, labels), batch_size=batch, shuffle=False) for x in (lfc, hfc)]
    model.eval()
    with torch.no_grad():
        for a in coordinates:
            for b in coordinates:
                for p, w, (d1, d2) in zip(model.parameters(), weights, directions, strict=True):
                    p.data = w + float(a) * d1 + float(b) * d2
                for loader in loaders:
                    loss, correct, total = 0.0, 0, 0
                    for x, y in loader:
                        logits = model(x)
                        loss += float(F.cross_entropy(logits, y)) * y.shape[0]
                        correct += int((logits.argmax(1) == y).sum())
                        total += y.shape[0]
        for p, w in zip(model.parameters(), weights, strict=True):
            p.data = w


class _FourierNoised(Dataset):
    """The reference's transform: one scaled basis added to every image, a random sign per channel."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, basis: torch.Tensor, generator) -> None:
        self.images, self.labels, self.basis, self.generator = images, labels, basis, generator

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        x = self.images[index]
        signs = torch.randint(0, 2, (x.shape[0], 1, 1), generator=self.generator).float() * 2 - 1
        return (x + signs * self.basis).clamp(0.0, 1.0), self.labels[index]


def fourier_heatmap_reference(model, images, labels, eps: float, batch: int) -> None:
    """FourierHeatmap's loop (module docstring): one basis at a time, a fresh loader pass per basis."""
    h, w = images.shape[-2:]
    plane = conjugate_half_plane(h, w)
    generator = torch.Generator().manual_seed(0)
    model.eval()
    with torch.no_grad():
        for du, dv in zip(plane.du, plane.dv, strict=True):
            basis = eps * fourier_basis(h, w, [du], [dv])[0]
            loader = DataLoader(_FourierNoised(images, labels, basis, generator), batch_size=batch)
            wrong = 0
            for x, y in loader:
                wrong += int((model(x).argmax(1) != y).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small-cnn", help="architecture (default small-cnn)")
    parser.add_argument("--width", type=int, default=32, help="small-cnn width (default 32)")
    parser.add_argument("--size", type=int, default=32, help="image side (default 32)")
    parser.add_argument("--n", type=int, default=512, help="images for the sensitivity pass (default 512)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per pass (default 128)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 128, 2

    device = torch.device(args.device)
    torch.manual_seed(0)
    options = {"width": args.width} if args.model == "small-cnn" else {}
    backbone = create_model(args.model, 10, image_size=args.size, **options)
    model = FreqtailModel(backbone, normalize="cifar10").to(device).eval()
    crops = photo_crops(args.size, max(1, -(-args.n // 8)), seed=0)[: args.n]
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).contiguous().to(device)
    labels = (torch.arange(images.shape[0]) % 10).to(device)
    n = images.shape[0]
    batch = args.batch_size

    def forward_backward() -> None:
        """One forward and the input-gradient backward per image: the work sensitivity cannot avoid."""
        for start in range(0, n, batch):
            x = images[start : start + batch].clone().requires_grad_(True)
            loss = F.cross_entropy(model(x), labels[start : start + batch], reduction="sum")
            torch.autograd.grad(loss, x)

    def sensitivity_given_boundary() -> None:
        frequency_sensitivity(model, (images, labels), boundary_band=5, batch_size=batch)

    def sensitivity_measured_boundary() -> None:
        frequency_sensitivity(model, (images, labels), batch_size=batch)

    times = best_seconds(
        {
            "forward_backward": forward_backward,
            "sensitivity": sensitivity_given_boundary,
            "sensitivity_with_boundary": sensitivity_measured_boundary,
        },
        args.repeats,
    )
    per_image = {k: 1e3 * v / n for k, v in times.items()}
    print(
        f"{args.model} on {n} images of {args.size}x{args.size}, batch {batch}, {device}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print(f"  forward + input-gradient backward:        {per_image['forward_backward']:.3f} ms/image")
    print(
        f"  sensitivity pass, boundary given:         {per_image['sensitivity']:.3f} ms/image "
        f"({times['sensitivity'] / times['forward_backward']:.2f}x that; goal <= 1.2x)"
    )
    print(
        f"  sensitivity pass, boundary measured too:  {per_image['sensitivity_with_boundary']:.3f} ms/image "
        f"({times['sensitivity_with_boundary'] / times['forward_backward']:.2f}x)"
    )

    land_n = min(n, 128)
    grids = (3, 5) if args.quick else (5, 9)
    land_images, land_labels = images[:land_n], labels[:land_n]
    lfc = split_frequencies(land_images, 5)[0].float()

    def landscape(grid: int):
        return lambda: loss_landscape(
            model, (land_images, land_labels), boundary_band=5, grid=grid, batch_size=batch
        )

    def evaluation_pass() -> None:
        with torch.no_grad():
            for start in range(0, land_n, batch):
                y = land_labels[start : start + batch]
                logits = model(lfc[start : start + batch])
                float(F.cross_entropy(logits, y, reduction="sum")), int((logits.argmax(1) == y).sum())

    small, large = grids
    land = best_seconds(
        {
            **{g: landscape(g) for g in grids},
            "eval": evaluation_pass,
            "li": lambda: li_et_al_landscape(model, land_images, land_labels, 5, small, batch),
        },
        max(1, args.repeats - 1),
    )
    per_point = {g: land[g] / g**2 for g in grids}
    point_ratio = per_point[large] / (2 * land["eval"])
    li_ratio = land[small] / land["li"]
    print(f"  loss landscape on {land_n} images (x2: LFC and HFC):")
    for g in grids:
        print(f"    {g}x{g} grid: {land[g]:.2f} s total, {1e3 * per_point[g]:.1f} ms per grid point")
    print(
        f"    time ratio {land[large] / land[small]:.2f} for a point-count ratio {large**2 / small**2:.2f} "
        "(linear growth: equal)"
    )
    print(
        f"    one grid point = {point_ratio:.2f}x two evaluation passes ({1e3 * land['eval']:.1f} ms each; "
        "goal <= 1.1x)"
    )
    print(
        f"    Li et al.'s loop, {small}x{small} grid: {land['li']:.2f} s; freqtail {li_ratio:.2f}x its time "
        "(goal <= 1x)"
    )

    heat_n = 4 if args.quick else 16
    heat_batch = 512
    heat_images, heat_labels = images[:heat_n], labels[:heat_n]

    def heatmap() -> None:
        fourier_heatmap(model, (heat_images, heat_labels), batch_size=heat_batch)

    probe = images[:1].expand(heat_batch, -1, -1, -1).contiguous()

    def forwards() -> None:
        with torch.no_grad():
            model(probe)

    pairs = heat_n * conjugate_half_plane(args.size, args.size).size  # (image, frequency) pairs
    heat = best_seconds(
        {
            "heatmap": heatmap,
            "forward": forwards,
            # both with the reference's batches: one basis on all heat_n images per pass
            "one_basis": lambda: fourier_heatmap(model, (heat_images, heat_labels), batch_size=heat_n),
            "reference": lambda: fourier_heatmap_reference(model, heat_images, heat_labels, 4.0, heat_n),
        },
        max(1, args.repeats - 1),
    )
    heat_rate, forward_rate = pairs / heat["heatmap"], heat_batch / heat["forward"]
    print(
        f"  Fourier heat map, {heat_n} images: {heat_rate:.0f} perturbed images/s (plain forward: "
        f"{forward_rate:.0f} images/s: {forward_rate / heat_rate:.2f}x the time per image; goal <= 1.2x)"
    )
    reference_rate, same_batches = pairs / heat["reference"], heat["one_basis"] / heat["reference"]
    print(
        f"    FourierHeatmap's loop (batches of {heat_n}: one basis per pass): {reference_rate:.0f} "
        f"perturbed images/s; freqtail with the same batches {same_batches:.2f}x its time (goal <= 1x)"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "ms_per_image": per_image,
                    "sensitivity_ratio": times["sensitivity"] / times["forward_backward"],
                    "landscape_seconds": {str(g): land[g] for g in grids},
                    "landscape_ms_per_point": {str(g): 1e3 * per_point[g] for g in grids},
                    "landscape_point_vs_two_passes": point_ratio,
                    "landscape_vs_li_et_al": li_ratio,
                    "heatmap_images_per_second": heat_rate,
                    "forward_images_per_second": forward_rate,
                    "heatmap_vs_fourierheatmap": heat["one_basis"] / heat["reference"],
                }
            )
        )


if __name__ == "__main__":
    main()
