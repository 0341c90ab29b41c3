"""``freqtail spectrum``: measure the frequency long tail of a set of images (paper §2, §3.3)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from freqtail.checks import check_int
from freqtail.commands._common import add_figure_format_argument, add_parser, print_json
from freqtail.errors import InputError
from freqtail.report.figure_formats import check_figure_formats

SAMPLE_CROP_SIZE = 64
SAMPLE_CROPS_PER_PHOTO = 16
SAMPLE_SEED = 0


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "spectrum",
        help="measure the frequency long tail of images: 80/20 boundary, power law, spectral entropy",
        example="freqtail spectrum --images my_images.npy --plot long_tail.png --figure-format png,pdf",
        description="Measure the frequency long tail of a set of images (paper §2 and §3.3): the 80/20 "
        "boundary band between low and high frequencies, the LFC power share, the power-law exponent "
        "alpha and the spectral entropy. Without --images or --dataset it measures deterministic crops "
        "of photographs bundled with scikit-image, so it runs with no data.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--images",
        metavar="FILE.npy",
        help="uint8 images (N, H, W, C) or (H, W, C), C = 1 or 3, in a .npy file (read memory-mapped)",
    )
    source.add_argument("--dataset", metavar="NAME", help="a dataset known to freqtail.data (e.g. cifar10)")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset (with --dataset)")
    parser.add_argument(
        "--split",
        choices=("train", "test"),
        default=None,
        help="dataset split (with --dataset; default train)",
    )
    parser.add_argument(
        "--ratio",
        type=float,
        default=0.8,
        help="share of the non-DC power below the boundary, strictly between 0 and 1 "
        "(default 0.8, the 80/20 rule)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--plot",
        metavar="OUT.png",
        help="write the long-tail figure under this name, once per --figure-format (OUT.png, OUT.pdf, "
        "OUT.svg by default)",
    )
    add_figure_format_argument(parser)
    parser.add_argument("--batch-size", type=int, default=512, help="images per FFT batch (default 512)")
    parser.add_argument("--device", default="cpu", help="where the FFTs run: cpu or cuda (default cpu)")
    parser.set_defaults(func=run)


def _check_source(args: argparse.Namespace) -> None:
    """Refuse source options that do not go together, or an unknown dataset, before anything loads."""
    from freqtail.data.catalog import canonical_name

    if args.dataset is None and (args.data_root is not None or args.split is not None):
        raise InputError("--data-root and --split only apply together with --dataset NAME.")
    if args.dataset is not None:
        canonical_name(args.dataset)


def _image_source(args: argparse.Namespace) -> tuple[Any, str]:
    """Return (images or iterable of uint8 batches, a sentence naming the source)."""
    if args.images is not None:
        from freqtail.io import load_npy

        images = load_npy(args.images, what="image array", mmap=True)
        return images, f"{args.images}"
    if args.dataset is not None:
        try:
            from freqtail.data import iter_uint8_batches
        except ImportError:
            raise InputError(
                "This freqtail installation cannot load datasets yet (freqtail.data.iter_uint8_batches "
                "is missing); give the images as a .npy file with --images."
            ) from None
        split = args.split or "train"
        batches = iter_uint8_batches(
            args.dataset, split=split, root=args.data_root, batch_size=args.batch_size
        )
        return batches, f"dataset {args.dataset} ({split} split)"
    from freqtail.sample_photos import photo_crops

    images = photo_crops(SAMPLE_CROP_SIZE, SAMPLE_CROPS_PER_PHOTO, seed=SAMPLE_SEED)
    return images, (
        f"{len(images)} deterministic {SAMPLE_CROP_SIZE}x{SAMPLE_CROP_SIZE} crops of the photographs bundled "
        "with scikit-image (no --images or --dataset given)"
    )


def _progress(batches: Iterable[Any], total: int | None) -> Iterable[Any]:
    """A tqdm bar on stderr when there are several batches (or an unknown number); else none."""
    if total is not None and total <= 1:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, total=total, desc="spectrum", unit="batch", leave=False, disable=None)


def _device(name: str):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"Unknown device {name!r}; use cpu or cuda.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu.")
    return device


def _inscribed_lines(summary, percent: int) -> list[str]:
    """The boundary over the inscribed bands (the paper's range, up to min(H, W) / 2), two lines."""
    m = summary.inscribed_max_band
    head = (
        f"  inscribed bands only (k <= {m} = min(H, W) // 2, the paper's range; "
        f"{100 * summary.inscribed_power_share:.1f}% of the non-DC power):"
    )
    b = summary.boundary_band_inscribed
    if b is None:
        return [head, "    no boundary: these bands carry no power"]
    return [
        head,
        f"    {percent}/{100 - percent} boundary band b = {b} = "
        f"{summary.boundary_fraction_nyquist_inscribed:.3f} of the Nyquist radius; "
        f"LFC power share {100 * summary.lfc_power_share_inscribed:.1f}% of that power",
    ]


def format_summary(summary, source: str) -> str:
    """The human-readable long-tail summary printed by ``freqtail spectrum``."""
    h, w = summary.image_size
    b = summary.boundary_band
    dist = summary.per_image_boundary
    percent = round(100 * summary.ratio)
    used = summary.num_images - summary.num_skipped_constant
    lines = [
        f"Frequency long tail of {summary.num_images} images of {h}x{w} pixels",
        f"  source: {source}",
        f"  bands: 0 .. {summary.num_bands - 1} (band = floor of the radius; band 0 = DC, excluded)",
        f"  {percent}/{100 - percent} boundary band b = {b}: low frequencies (LFC) = bands < {b}, "
        f"high (HFC) = bands >= {b}",
        f"    = {summary.boundary_fraction_nyquist:.3f} of the Nyquist radius ({summary.nyquist_radius:g}), "
        f"{summary.boundary_fraction_corner:.3f} of the corner radius ({summary.corner_radius:.2f})",
        f"  LFC power share: {100 * summary.lfc_power_share:.1f}% of the non-DC power "
        f"(HFC: {100 * (1 - summary.lfc_power_share):.1f}%)",
        *_inscribed_lines(summary, percent),
    ]
    if summary.alpha is None:
        lines.append("  power-law tail: not fitted (fewer than 2 bands carry power)")
    else:
        lines.append(
            f"  power-law tail pi[k] ~ k^-alpha: alpha = {summary.alpha:.3f} (R^2 = {summary.alpha_r2:.3f}) "
            "over all bands k >= 1"
        )
    if summary.alpha_rings is not None:
        lines.append(
            f"    over the full rings only (k <= {summary.full_ring_max_band}): "
            f"alpha = {summary.alpha_rings:.3f} (R^2 = {summary.alpha_rings_r2:.3f})"
        )
    lines += [
        f"  spectral entropy: {summary.entropy:.3f} nats "
        f"(normalised by log of {summary.num_bands - 1} bands: {summary.entropy_normalized:.3f})",
        f"  per-image boundary over {dist.count} images: min {dist.min}, p10 {dist.p10}, "
        f"median {dist.median}, p90 {dist.p90}, max {dist.max} (mean {dist.mean:.2f})",
        f"  images used: {used}; skipped constant images: {summary.num_skipped_constant}"
        f" (constant channels skipped: {summary.num_skipped_channels})",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from freqtail.spectrum.ratio import check_ratio

    # the options that need no torch first: a mistake is one sentence before torch is imported
    ratio = check_ratio(args.ratio)
    check_int(args.batch_size, "--batch-size", minimum=1)
    formats = check_figure_formats(args.figure_format, "The figure formats --figure-format")
    if args.plot is not None:
        from freqtail.io import check_writable_file
        from freqtail.report.figure_formats import figure_files

        for file in figure_files(args.plot, formats):
            check_writable_file(file, "plot file")
    _check_source(args)
    device = _device(args.device)
    from freqtail.spectrum import summarize

    images, source = _image_source(args)
    summary = summarize(images, ratio=ratio, batch_size=args.batch_size, device=device, progress=_progress)
    plots = []
    if args.plot is not None:
        from freqtail.report.spectrum_figures import plot_long_tail

        plots = plot_long_tail(summary, args.plot, formats=formats)
    if args.json:
        result = summary.to_dict()
        result["source"] = source
        if plots:
            result["plot"] = str(plots[0])
            result["plots"] = [str(file) for file in plots]
        print_json(result)
    else:
        print(format_summary(summary, source))
        if plots:
            print(f"  figure: {', '.join(str(file) for file in plots)}")
    return 0
