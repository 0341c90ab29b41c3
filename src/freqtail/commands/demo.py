"""``freqtail demo``: the main job end to end on the embedded dataset, with a report at the end."""

from __future__ import annotations

import argparse
import sys

from freqtail.commands._common import add_parser, positive_int

EXAMPLE = "freqtail demo            # about 5 minutes on 2 CPU cores; --quick: under a minute"


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "demo",
        help="run the whole method on the bundled images (no data needed) and write a report",
        example=EXAMPLE,
        description=(
            "Measure the frequency long tail of the embedded dataset, show BaSS, train a small CNN with "
            "ERM and PGD-AT, each without and with BaSS (the paper's CIFAR10-B protocol), evaluate clean, "
            "PGD-20 and corruption accuracy under every threat model (domain and end-to-end for the BaSS "
            "models), explain the ERM models (frequency sensitivity, LFC/HFC loss landscape, Fourier heat "
            "map) and write report.html, report.md and demo-summary.json. The four runs are the cells of one "
            "grid (DIR/grid.json, as 'freqtail grid run' writes): rerunning after Ctrl-C reuses the "
            "finished steps and continues the interrupted run."
        ),
    )
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="demo folder (default runs/demo)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny subsets, 1 epoch, few PGD steps: a smoke test for tests and CI (numbers mean little)",
    )
    parser.add_argument(
        "--force", action="store_true", help="delete what an earlier demo wrote in --out and start over"
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="N|all",
        help="torch threads to compute with (default 1: the numbers and times the README gives; 'all': "
        "every core, faster on an idle machine, numbers a few points apart)",
    )
    parser.set_defaults(func=run)


def _threads(text: str) -> int | str:
    if text == "all":
        return text
    return positive_int(text)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from freqtail.formatting import count
    from freqtail.workflows.demo import FULL, LOG_FILE, QUICK, format_key_numbers, run_demo
    from freqtail.workflows.threads import DEMO_THREADS, use_threads

    settings = QUICK if args.quick else FULL
    threads = use_threads(DEMO_THREADS if args.threads is None else args.threads)
    if args.quick:
        print(
            "freqtail demo --quick: tiny subsets (1,024 training and 64 evaluated images), 1 epoch, "
            "2-step PGD-AT: a smoke test for tests and CI; its numbers show that everything runs, not "
            f"what BaSS does. torch threads: {threads}."
        )
    else:
        print(
            "freqtail demo: small-cnn on the embedded dataset (6,400 training / 1,600 test images, "
            f"16 classes); about 5 minutes on 2 CPU cores with {count(threads, 'torch thread')} "
            f"(--threads). Details go to {Path(args.out) / LOG_FILE}."
        )
    try:
        result = run_demo(args.out, settings=settings, force=args.force)
    except KeyboardInterrupt:
        print(
            f"freqtail demo: interrupted; run the same command again to continue ({args.out} keeps the "
            "finished stages and checkpoints), or add --force to start over.",
            file=sys.stderr,
        )
        return 130
    rows = result.summary["key_numbers"]
    n = sorted({r.get("n") for r in rows if r.get("n") is not None})
    print()
    print(
        f"Key numbers (accuracy on {', '.join(map(str, n)) or '?'} test images; PGD-20 at eps 8/255; "
        "corruptions: mean over the cells evaluated; 95% Wilson intervals; "
        f"torch threads: {result.summary['timings'].get('threads', '?')}):"
    )
    print(format_key_numbers(rows))
    print()
    print(f"Report: {result.report_html} (open it in a browser; self-contained) and {result.report_md}.")
    print(
        f"Numbers with their settings: {result.results}; console output of each stage: {result.out}/demo.log."
    )
    print(f"Total {result.seconds:.0f} s" + (" (--quick)." if args.quick else "."))
    return 0
