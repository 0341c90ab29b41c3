"""``freqtail grid``: run an experiment grid from a YAML spec (``run``), show where its cells stand
(``status``), write its table beside the paper's numbers (``table``) and its HTML report with the
figure of measured against published accuracy (``report``)."""

from __future__ import annotations

import sys
import time

from freqtail.commands._common import add_parser, positive_float, print_json
from freqtail.commands._launch import add_launch_arguments
from freqtail.runs.existence import check_grid_folder

EXAMPLE = (
    "freqtail grid run grid.yaml --out grids/lr --scale smoke\n"
    "  freqtail grid run grid.yaml --out grids/lr --only '*seed=1*' --jobs 2\n"
    "  freqtail grid run grid.yaml --out grids/lr --log tensorboard && tensorboard --logdir grids/lr\n"
    "  freqtail grid run grid.yaml --out grids/lr --launcher slurm --slurm-partition gpu\n"
    "  freqtail grid run grid.yaml --out grids/lr --gpus 0,1,2,3 --nproc-per-cell 2\n"
    "  freqtail grid status grids/lr --json\n"
    "  freqtail grid table grids/lr\n"
    "  freqtail grid report grids/lr"
)
RUN_EXAMPLE = (
    "freqtail grid run grid.yaml --out grids/lr --jobs 2\n"
    "  freqtail grid run grid.yaml --out grids/lr --log tensorboard && tensorboard --logdir grids/lr\n"
    "  freqtail grid run grid.yaml --out grids/lr --launcher slurm --slurm-time 600 --slurm-gpus-per-task 1\n"
    "  freqtail grid run grid.yaml --out grids/lr --gpus 0,1,2,3 --nproc-per-cell 2"
)
STATUS_EXAMPLE = "freqtail grid status grids/lr --watch 30"
TABLE_EXAMPLE = "freqtail grid table grids/t1"
REPORT_EXAMPLE = "freqtail grid report grids/t1"
#: Seconds between two refreshes of ``grid status --watch`` without a value.
WATCH_SECONDS = 10.0
#: ANSI "cursor home, clear screen": a watched status redraws in place on a terminal.
CLEAR_SCREEN = "\033[H\033[J"


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "grid",
        help="run an experiment grid (a YAML spec of cells) and show where its cells stand",
        example=EXAMPLE,
        description=(
            "A grid is a base configuration, axes (a product over config keys) and explicit cells, "
            "each cell one training run, its evaluation and the analyses the spec lists (eps sweeps, "
            "sensitivity, landscape, heat map; docs/guides/reproduce.md). 'grid run' "
            "trains and evaluates every cell into GRID/<cell>/ and records each cell's state in "
            "GRID/grid.json; rerunning it skips done cells, resumes partial ones and retries failed ones."
        ),
    )
    actions = parser.add_subparsers(dest="grid_command", metavar="ACTION")
    run_parser = add_parser(
        actions,
        "run",
        help="train and evaluate every cell of a grid spec (resumable; --jobs N launchers, --gpus, or Slurm)",
        example=RUN_EXAMPLE,
    )
    run_parser.add_argument(
        "spec", metavar="SPEC.yaml", help="the grid spec (keys base, set, axes, cells, ...)"
    )
    add_launch_arguments(run_parser)
    run_parser.set_defaults(func=run)
    status_parser = add_parser(
        actions,
        "status",
        help="one line per cell: state, where it runs, since, attempts, why, epoch and test accuracy",
        example=STATUS_EXAMPLE,
    )
    status_parser.add_argument("folder", metavar="DIR", help="a grid folder (the --out of grid run)")
    status_parser.add_argument(
        "--json", action="store_true", help="print the status as one JSON object (one line per refresh)"
    )
    status_parser.add_argument(
        "--watch",
        nargs="?",
        const=WATCH_SECONDS,
        type=positive_float,
        metavar="SECONDS",
        help=f"print the status again every SECONDS (default {WATCH_SECONDS:g}) until every cell is done or "
        "failed; Ctrl-C stops watching",
    )
    status_parser.set_defaults(func=status)
    table_parser = add_parser(
        actions,
        "table",
        help="the grid's table beside the paper's: measured vs published, n, 95%% intervals, paired tests",
        example=TABLE_EXAMPLE,
        description=(
            "Write GRID/table.md, table.csv and table.tex (booktabs) from the grid's finished cells and "
            "print the Markdown: per cell the measured number beside the published one, n and a 95% "
            "Wilson interval; per BaSS row the measured and published deltas with an exact McNemar "
            "p-value and a 95% interval of the paired difference on the same test images; mean and sd "
            "over seeds. Running, pending and failed cells show as such. Also writes the HTML report "
            "(see 'grid report'). 'grid run' rewrites the table and the report after every cell."
        ),
    )
    table_parser.add_argument("folder", metavar="DIR", help="a grid folder (the --out of grid run)")
    table_parser.set_defaults(func=table)
    report_parser = add_parser(
        actions,
        "report",
        help="the grid's HTML report: the table and a figure of measured against published accuracy",
        example=REPORT_EXAMPLE,
        description=(
            "Write GRID/grid-report.html, one self-contained page (open it offline): the grid folder, what "
            "it was built from, the cells per state, the table against the paper (the numbers of "
            "table.csv), the BaSS gains with McNemar p-values and paired intervals, mean ± sd over "
            "seeds, and one figure of measured (y) against published (x) accuracy with 95% Wilson "
            "intervals and the diagonal y = x, also written as GRID/measured-vs-published.png and .svg. "
            "Cells running, pending or failed are listed under the figure with why, never plotted as "
            "zeros. Prints the page's path."
        ),
    )
    report_parser.add_argument("folder", metavar="DIR", help="a grid folder (the --out of grid run)")
    report_parser.set_defaults(func=report)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser) -> int:
    parser.print_help()
    return 2


def run(args) -> int:
    from freqtail.commands._launch import check_launch_arguments

    launcher = check_launch_arguments(args)  # before the spec: its cells' configs import torch when checked
    from freqtail.workflows.grid_scale import scale_spec
    from freqtail.workflows.grid_spec import GridSpec

    spec = scale_spec(GridSpec.from_yaml(args.spec), args.scale)
    from freqtail.commands._launch import launch

    return launch(spec, args, ["grid", "run", args.spec], launcher)


def status(args) -> int:
    check_grid_folder(args.folder)  # before the library (and torch) is imported
    from freqtail.workflows.grid_status import grid_status

    while True:
        view = grid_status(args.folder)
        if args.watch is not None and not args.json and sys.stdout.isatty():
            print(CLEAR_SCREEN, end="")
        if args.json:
            print_json(view.to_json(), indent=None if args.watch is not None else 2)
        else:
            for cell in view.cells:
                print(cell.line())
            print(view.totals_line(), flush=True)
        if args.watch is None or view.settled:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 130
        if not args.json:
            print()


def table(args) -> int:
    check_grid_folder(args.folder)  # before the library (and torch) is imported
    from freqtail.workflows.grid_report import write_grid_report
    from freqtail.workflows.grid_table import write_grid_table

    markdown, csv_path, tex_path = write_grid_table(args.folder)
    print(markdown.read_text(encoding="utf-8").rstrip())
    print(f"\nWrote {markdown}, {csv_path} and {tex_path}.")
    written = write_grid_report(args.folder)
    print(f"Wrote the report {written.html} (figure {written.figure_png}, {written.figure_svg}).")
    return 0


def report(args) -> int:
    check_grid_folder(args.folder)  # before the library (and torch) is imported
    from freqtail.workflows.grid_report import write_grid_report

    written = write_grid_report(args.folder)
    print(
        f"Wrote {written.html}: {len(written.figure.points)} measured numbers beside the paper's in the "
        f"figure ({written.figure_png}, {written.figure_svg}); {len(written.figure.unplotted)} entries "
        "without a point are listed under it."
    )
    return 0
