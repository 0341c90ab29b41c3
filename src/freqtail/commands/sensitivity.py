"""``freqtail sensitivity``: a trained model's sensitivity to frequency components (paper §3.2.2, Fig. 2)."""

from __future__ import annotations

import argparse

from freqtail.commands._common import add_parser, check_run_argument, print_json

EXAMPLE = "freqtail sensitivity runs/demo/erm --n 1000"


def register(subparsers) -> None:
    from freqtail.analysis.constants import (
        DEFAULT_RANKING,
        DEFAULT_TOP_FRACTION,
        RANKINGS,
        SENSITIVITY_BATCH,
        SENSITIVITY_IMAGES,
    )
    from freqtail.commands._common import add_run_arguments

    parser = add_parser(
        subparsers,
        "sensitivity",
        help="which frequencies a trained model is sensitive to: its input gradients' Fourier coefficients",
        example=EXAMPLE,
        description="Measure a trained model's sensitivity to frequency components (paper §3.2.2, Fig. 2): "
        "the input gradient of each test image's loss, its Fourier coefficients (channel mean, one per "
        "conjugate pair) sorted by magnitude, the mean magnitude per rank, where the coefficients at chosen "
        "ranks lie (kernel densities of their radius) and the share of the gradient in high frequencies "
        "(HFC, beyond the data's 80/20 boundary). Writes figures/sensitivity.*, figures/long_tail.* "
        "(each --figure-format), sensitivity.json and sensitivity.npz into the run folder.",
    )
    add_run_arguments(parser, default_n=SENSITIVITY_IMAGES, default_batch=SENSITIVITY_BATCH)
    parser.add_argument(
        "--top",
        type=float,
        default=DEFAULT_TOP_FRACTION,
        help=f"share of coefficients counted as 'top' for the HFC share (default {DEFAULT_TOP_FRACTION:g})",
    )
    parser.add_argument(
        "--ranking",
        choices=RANKINGS,
        default=DEFAULT_RANKING,
        help="definition (default: one coefficient per conjugate pair, exact radii, ranks at "
        "round(f (M - 1))) or published-notebook (the authors' notebook: 544 coefficients of a 32x32 "
        "gradient, its float row radii, positions 100-400 labelled 20-80%%; 32x32 images only)",
    )
    parser.set_defaults(func=run)


def _compact(data: dict) -> dict:
    """The JSON summary printed by --json: everything but the long arrays."""
    out = {k: v for k, v in data.items() if k not in ("mean_sorted_magnitude", "density_grid", "spectrum")}
    out["ranks"] = [{k: v for k, v in rank.items() if k != "density"} for rank in data["ranks"]]
    if "spectrum" in data:
        out["spectrum"] = {k: data["spectrum"][k] for k in ("boundary_band", "lfc_power_share", "alpha")}
    return out


def run(args: argparse.Namespace) -> int:
    check_run_argument(args, args.run)
    from freqtail.commands._common import run_explanation
    from freqtail.workflows.explain_options import SensitivityOptions

    options = SensitivityOptions(top_fraction=args.top, ranking=args.ranking)
    return run_explanation(args, options, lambda explained: _show(args, options, explained))


def _show(args: argparse.Namespace, options, explained) -> None:
    """Print the finished analysis (rank 0): the summary, or one JSON object with --json."""
    result, data = explained.result, explained.data
    if args.json:
        compact = _compact(data)
        compact["files"] = [str(path) for path in explained.files[:2]]
        print_json(compact)
        return
    h, w = result.image_size
    print(f"Frequency sensitivity of {args.run} on {result.num_images} images of {h}x{w} ({data['source']})")
    if result.num_zero_gradient:
        print(f"  skipped {result.num_zero_gradient} images whose loss gradient is exactly zero")
    ranking = " (the published notebook's ranking)" if result.ranking == "published-notebook" else ""
    print(
        f"  LFC/HFC boundary band {result.boundary_band} (80/20 rule on the same images); "
        f"{result.num_coefficients} coefficients ranked per image{ranking}"
    )
    print(f"  HFC share of the gradient's spectral energy: {100 * result.hfc_energy_share:.1f}%")
    print(
        f"  HFC share of the top {100 * result.top_fraction:g}% coefficients: "
        f"{100 * result.top_hfc_share:.1f}%"
    )
    for rank in data["ranks"]:
        print(
            f"  rank {100 * rank['fraction']:5.1f}%: median radius {rank['median_radius']:.2f}, "
            f"in HFC for {100 * rank['hfc_share']:.1f}% of the images"
        )
    print(f"  wrote {', '.join(str(path) for path in explained.files)}")
