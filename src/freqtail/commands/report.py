"""``freqtail report``: one self-contained HTML page (and Markdown) from one or several run folders."""

from __future__ import annotations

import argparse

from freqtail.commands._common import add_parser, print_json
from freqtail.runs.existence import check_folder

EXAMPLE = (
    "freqtail report runs/demo    # or: freqtail report runs/demo/erm runs/demo/erm-bass --out runs/compare"
)


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "report",
        help="write report.html (self-contained) and report.md from run folders: figures, tables, comparison",
        example=EXAMPLE,
        description=(
            "Gather every figure and table the run folders hold — config, training curves (metrics.jsonl), "
            "evaluation tables per threat model (results.json), corruption tables, long tail, BaSS examples, "
            "frequency sensitivity, loss landscape, Fourier heat map — into report.html (figures embedded, "
            "readable offline) and report.md (figures by relative path). Missing parts are listed, not "
            "errors. Several folders (or a folder of runs) give one comparison page with deltas."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, or a folder of runs")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default: the run folder; needed for several folders)"
    )
    parser.add_argument("--title", metavar="T", help="page title (default: from the folders)")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for folder in args.runs:  # before the library (and torch) is imported
        check_folder(folder)
    from freqtail.report.build import build_report

    result = build_report(args.runs, out=args.out, title=args.title)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"Report on {len(result.runs)} folder(s): {', '.join(result.runs)}")
    print(f"  sections: {', '.join(result.sections)}")
    for sentence in result.omitted:
        print(f"  left out: {sentence}")
    print(f"  wrote {result.html} (self-contained: open it in any browser) and {result.markdown}")
    return 0
