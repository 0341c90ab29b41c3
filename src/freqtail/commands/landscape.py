"""``freqtail landscape``: loss landscapes of a trained model on low- and high-frequency data (§3.1)."""

from __future__ import annotations

import argparse

from freqtail.checks import seed_argument
from freqtail.commands._common import add_parser, check_run_argument, print_json

EXAMPLE = "freqtail landscape runs/demo/erm --grid 21 --span 1.0 --n 500"


def register(subparsers) -> None:
    from freqtail.analysis.constants import LANDSCAPE_BATCH, LANDSCAPE_GRID, LANDSCAPE_IMAGES, LANDSCAPE_SPAN
    from freqtail.commands._common import add_run_arguments, positive_int

    parser = add_parser(
        subparsers,
        "landscape",
        help="loss landscape around a trained model on the low- and high-frequency parts of the test data",
        example=EXAMPLE,
        description=(
            "Evaluate the loss around a trained model's weights along two filter-normalised random "
            "directions (Li et al. 2018 with their --xignore biasbn: batch-norm parameters and biases "
            "left fixed; model in eval mode) on the low-pass-only and high-pass-only test images, split "
            "at the data's 80/20 boundary (paper §3.1, Fig. 1 and 4; the paper's surfaces: --span 2 "
            "--boundary 12). Writes landscape.npz (the raw grid), landscape.json and "
            "figures/landscape.* and figures/landscape_3d.* (each --figure-format); an interrupted run "
            "(also one process of several under torchrun, killed) resumes from the grid points it finished "
            "(landscape.partial.rank<r>.npz)."
        ),
    )
    add_run_arguments(parser, default_n=LANDSCAPE_IMAGES, default_batch=LANDSCAPE_BATCH)
    parser.add_argument(
        "--grid",
        type=positive_int,
        default=LANDSCAPE_GRID,
        help=f"grid points per axis (default {LANDSCAPE_GRID})",
    )
    parser.add_argument(
        "--span",
        type=float,
        default=LANDSCAPE_SPAN,
        help=f"the grid covers [-span, span]^2 (default {LANDSCAPE_SPAN})",
    )
    parser.add_argument(
        "--seed", type=seed_argument(), default=0, help="seed of the two random directions (default 0)"
    )
    parser.add_argument(
        "--boundary", type=int, default=None, help="LFC/HFC boundary band (default: 80/20 rule on the images)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_run_argument(args, args.run)
    from freqtail.commands._common import run_explanation
    from freqtail.workflows.explain_options import LandscapeOptions

    options = LandscapeOptions(grid=args.grid, span=args.span, seed=args.seed, boundary_band=args.boundary)
    return run_explanation(args, options, lambda explained: _show(args, options, explained))


def _show(args: argparse.Namespace, options, explained) -> None:
    """Print the finished analysis (rank 0): the summary, or one JSON object with --json."""
    span = options.span
    result, data = explained.result, explained.data
    if args.json:
        print_json({**data, "files": [str(path) for path in explained.files[:2]]})
        return
    h, w = result.image_size
    print(
        f"Loss landscape of {args.run}: {result.grid}x{result.grid} grid over [-{span:g}, {span:g}]^2, seed "
        f"{result.seed}, {result.num_images} images of {h}x{w} ({data['source']}), "
        f"boundary band {result.boundary_band}"
    )
    center = result.center()
    if center is not None:
        print(
            f"  at the trained weights: LFC loss {center['loss_lfc']:.4f} "
            f"(acc {100 * center['acc_lfc']:.1f}%), "
            f"HFC loss {center['loss_hfc']:.4f} (acc {100 * center['acc_hfc']:.1f}%)"
        )
    print(f"  LFC loss range {data['loss_lfc_range'][0]:.4f} .. {data['loss_lfc_range'][1]:.4f}")
    print(f"  HFC loss range {data['loss_hfc_range'][0]:.4f} .. {data['loss_hfc_range'][1]:.4f}")
    if data["nonfinite_points"]:
        print(f"  {data['nonfinite_points']} grid points had a non-finite loss (marked in the figure)")
    print(f"  wrote {', '.join(str(path) for path in explained.files)}")
