"""``freqtail compare``: several evaluated runs side by side, with the deltas of BaSS (paper Tables 1, 4)."""

from __future__ import annotations

import argparse
import sys

from freqtail.commands._common import add_parser, print_json
from freqtail.errors import InputError
from freqtail.runs.existence import results_file

EXAMPLE = (
    "freqtail compare runs/demo/pgd-at runs/demo/pgd-at-bass runs/demo/erm runs/demo/erm-bass --out table.md"
)


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "compare",
        help="put evaluated runs side by side with the deltas of BaSS (Markdown or JSON)",
        example=EXAMPLE,
        description=(
            "Read the results.json of each run (written by `freqtail evaluate`) and print one table per "
            "kind of number — Clean / PGD-20 / CW-20 / AA, and Clean / Noise / Blur / Weather / Digital / "
            "Mean — with a row per run and threat model. Each run trained with BaSS gets a Δ row: its "
            "accuracy minus that of the nearest run before it trained without BaSS (else the first run), "
            "in percentage points; --baseline picks one run for all. A row whose numbers come from different "
            "numbers of images shows n in every cell; each robust number keeps the mark and note of its own "
            "gradient-masking check (possible masking, or too few images to judge)."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or results.json files)")
    parser.add_argument(
        "--labels", metavar="LIST", help="comma-separated names for the runs (default: folder names)"
    )
    parser.add_argument(
        "--baseline", metavar="RUN", help="compare every run with this one (label, path or number)"
    )
    parser.add_argument(
        "--checkpoint", metavar="TAG", help="which checkpoint's numbers: best (default), last, ..."
    )
    parser.add_argument("--out", metavar="FILE.md", help="also write the Markdown to this file")
    parser.add_argument(
        "--json", action="store_true", help="print the comparison as JSON instead of Markdown"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        raise InputError("Give at least two runs to compare.")
    for path in args.runs:  # before the library (and torch) is imported
        results_file(path)
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.runs):
        raise InputError(f"--labels names {len(labels)} runs but {len(args.runs)} runs were given.")
    from freqtail.evaluate import compare_markdown, compare_runs, load_run_results
    from freqtail.io import atomic_write_text
    from freqtail.train.staleness import with_staleness

    runs = [
        with_staleness(load_run_results(path, labels[i] if labels else None))
        for i, path in enumerate(args.runs)
    ]
    if len({run.label for run in runs}) != len(runs):
        raise InputError("Two runs have the same label; name them apart with --labels.")
    baseline = args.baseline
    if baseline is not None and baseline.isdigit():
        baseline = int(baseline)
    comparison = compare_runs(runs, baseline=baseline, checkpoint=args.checkpoint)
    markdown = compare_markdown(comparison)
    if args.out:
        atomic_write_text(args.out, markdown)
    if args.json:
        print_json(comparison)
    else:
        sys.stdout.write(markdown)
    return 0
