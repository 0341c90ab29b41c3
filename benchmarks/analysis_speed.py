"""How much do the model explanations cost?

Prints, for a model (default ``small-cnn`` width 32) on natural-image crops of 32x32 (and, with
``--size``, other sizes), single-threaded on the CPU unless ``--device cuda``:

* the frequency-sensitivity pass (:func:`freqtail.analysis.frequency_sensitivity`, boundary given,
  and with the boundary measured in the same pass) in milliseconds per image, next to one plain
  forward + backward pass per image (cross-entropy, ``loss.backward()`` into the parameters, eval
  mode) on the same batches, and their ratio (goal: about 1x);
* the loss landscape (:func:`freqtail.analysis.loss_landscape`) per grid point for two grid sizes,
  and the ratio of total times against the ratio of point counts (linear growth: equal ratios);
* the Fourier heat map (:func:`freqtail.analysis.fourier_heatmap`) in perturbed images per second,
  next to plain forward passes per second on batches of the same size.

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

from freqtail.analysis import conjugate_half_plane, fourier_heatmap, frequency_sensitivity, loss_landscape
from freqtail.models import FreqtailModel, create_model
from freqtail.sample_photos import photo_crops


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
        for start in range(0, n, batch):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(images[start : start + batch]), labels[start : start + batch]).backward()
        model.zero_grad(set_to_none=True)

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
    print(f"  forward+backward (parameters' gradients): {per_image['forward_backward']:.3f} ms/image")
    print(
        f"  sensitivity pass, boundary given:         {per_image['sensitivity']:.3f} ms/image "
        f"({times['sensitivity'] / times['forward_backward']:.2f}x forward+backward)"
    )
    print(
        f"  sensitivity pass, boundary measured too:  {per_image['sensitivity_with_boundary']:.3f} ms/image "
        f"({times['sensitivity_with_boundary'] / times['forward_backward']:.2f}x forward+backward)"
    )

    land_n = min(n, 128)
    grids = (3, 5) if args.quick else (5, 9)

    def landscape(grid: int):
        return lambda: loss_landscape(
            model, (images[:land_n], labels[:land_n]), boundary_band=5, grid=grid, batch_size=batch
        )

    land = best_seconds({g: landscape(g) for g in grids}, max(1, args.repeats - 1))
    per_point = {g: land[g] / g**2 for g in grids}
    small, large = grids
    print(f"  loss landscape on {land_n} images (x2: LFC and HFC):")
    for g in grids:
        print(f"    {g}x{g} grid: {land[g]:.2f} s total, {1e3 * per_point[g]:.1f} ms per grid point")
    print(
        f"    time ratio {land[large] / land[small]:.2f} for a point-count ratio {large**2 / small**2:.2f} "
        "(linear growth: equal)"
    )

    heat_n = 4 if args.quick else 16
    heat_batch = 512

    def heatmap() -> None:
        fourier_heatmap(model, (images[:heat_n], labels[:heat_n]), batch_size=heat_batch)

    probe = images[:1].expand(heat_batch, -1, -1, -1).contiguous()

    def forwards() -> None:
        with torch.no_grad():
            model(probe)

    pairs = heat_n * conjugate_half_plane(args.size, args.size).size  # (image, frequency) pairs
    heat = best_seconds({"heatmap": heatmap, "forward": forwards}, max(1, args.repeats - 1))
    print(
        f"  Fourier heat map, {heat_n} images: {pairs / heat['heatmap']:.0f} perturbed images/s "
        f"(plain forward: {heat_batch / heat['forward']:.0f} images/s)"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "ms_per_image": per_image,
                    "sensitivity_ratio": times["sensitivity"] / times["forward_backward"],
                    "landscape_seconds": {str(g): land[g] for g in grids},
                    "landscape_ms_per_point": {str(g): 1e3 * per_point[g] for g in grids},
                    "heatmap_images_per_second": pairs / heat["heatmap"],
                    "forward_images_per_second": heat_batch / heat["forward"],
                }
            )
        )


if __name__ == "__main__":
    main()
