"""``freqtail heatmap``: Fourier heat map of a trained model (Yin et al. 2019)."""

from __future__ import annotations

import argparse

from freqtail.checks import seed_argument
from freqtail.commands._common import add_parser, check_run_argument, print_json

EXAMPLE = "freqtail heatmap runs/demo/erm --eps 4.0 --n 100"


def register(subparsers) -> None:
    from freqtail.analysis.constants import (
        DEFAULT_EPS,
        DEFAULT_SIGN,
        HEATMAP_BATCH,
        HEATMAP_IMAGES,
        SIGN_MODES,
    )
    from freqtail.commands._common import add_run_arguments

    parser = add_parser(
        subparsers,
        "heatmap",
        help="Fourier heat map: error rate under single-frequency perturbations of a trained model",
        example=EXAMPLE,
        description="Measure a trained model's error rate on test images perturbed by one real Fourier basis "
        "image of L2 norm eps (per channel, [0, 1] scale; random sign), for every frequency of the spectrum "
        "(Yin et al. 2019). Writes heatmap.npz, heatmap.json and figures/heatmap.* (each --figure-format). "
        "Cost: about n * H * W / 2 forward passes.",
    )
    add_run_arguments(parser, default_n=HEATMAP_IMAGES, default_batch=HEATMAP_BATCH)
    parser.add_argument(
        "--eps",
        type=float,
        default=DEFAULT_EPS,
        help=f"perturbation L2 norm per channel (default {DEFAULT_EPS:g})",
    )
    parser.add_argument(
        "--sign",
        choices=SIGN_MODES,
        default=DEFAULT_SIGN,
        help="channel (default: one random sign per channel, as Yin et al. define the heat map) or image "
        "(one sign shared by the image's channels)",
    )
    parser.add_argument(
        "--seed", type=seed_argument(), default=0, help="seed of the random signs (default 0)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_run_argument(args, args.run)
    from freqtail.commands._common import run_explanation
    from freqtail.workflows.explain_options import HeatmapOptions

    options = HeatmapOptions(eps=args.eps, sign=args.sign, seed=args.seed)
    return run_explanation(args, options, lambda explained: _show(args, options, explained))


def _show(args: argparse.Namespace, options, explained) -> None:
    """Print the finished analysis (rank 0): the summary, or one JSON object with --json."""
    eps = options.eps
    result, data = explained.result, explained.data
    if args.json:
        summary = {k: v for k, v in data.items() if k != "error_rate"}
        summary["files"] = [str(path) for path in explained.files[:2]]
        print_json(summary)
        return
    h, w = result.image_size
    du, dv = data["max_error_frequency"]
    print(
        f"Fourier heat map of {args.run}: eps {eps:g}, sign per {result.sign}, on {result.num_images} images "
        f"of {h}x{w} "
        f"({data['source']})"
    )
    print(
        f"  clean error {100 * result.clean_error:.1f}%; "
        f"mean error over frequencies {100 * data['mean_error']:.1f}%"
    )
    print(f"  worst frequency (du, dv) = ({du}, {dv}): error {100 * data['max_error']:.1f}%")
    print(f"  wrote {', '.join(str(path) for path in explained.files)}")
