"""``freqtail grid``: run an experiment grid from a YAML spec (``run``), show where its cells stand
(``status``) and write its table beside the paper's numbers (``table``)."""

from __future__ import annotations

from freqtail.commands._common import add_parser, print_json
from freqtail.commands._launch import add_launch_arguments

EXAMPLE = (
    "freqtail grid run grid.yaml --out grids/lr --scale smoke\n"
    "  freqtail grid run grid.yaml --out grids/lr --only '*seed=1*' --jobs 2\n"
    "  freqtail grid run grid.yaml --out grids/lr --gpus 0,1,2,3 --nproc-per-cell 2\n"
    "  freqtail grid status grids/lr --json\n"
    "  freqtail grid table grids/lr"
)
RUN_EXAMPLE = (
    "freqtail grid run grid.yaml --out grids/lr --jobs 2\n"
    "  freqtail grid run grid.yaml --out grids/lr --gpus 0,1,2,3 --nproc-per-cell 2"
)
STATUS_EXAMPLE = "freqtail grid status grids/lr"
TABLE_EXAMPLE = "freqtail grid table grids/t1"


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "grid",
        help="run an experiment grid (a YAML spec of cells) and show where its cells stand",
        example=EXAMPLE,
        description=(
            "A grid is a base configuration, axes (a product over config keys) and explicit cells, "
            "each cell one training run and its evaluation (docs/guides/reproduce.md). 'grid run' "
            "trains and evaluates every cell into GRID/<cell>/ and records each cell's state in "
            "GRID/grid.json; rerunning it skips done cells, resumes partial ones and retries failed ones."
        ),
    )
    actions = parser.add_subparsers(dest="grid_command", metavar="ACTION")
    run_parser = add_parser(
        actions,
        "run",
        help="train and evaluate every cell of a grid spec (resumable; --jobs N launchers, --gpus)",
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
    status_parser.add_argument("--json", action="store_true", help="print the status as one JSON object")
    status_parser.set_defaults(func=status)
    table_parser = add_parser(
        actions,
        "table",
        help="the grid's table beside the paper's: measured vs published, n, 95% intervals, paired tests",
        example=TABLE_EXAMPLE,
        description=(
            "Write GRID/table.md, table.csv and table.tex (booktabs) from the grid's finished cells and "
            "print the Markdown: per cell the measured number beside the published one, n and a 95% "
            "Wilson interval; per BaSS row the measured and published deltas with an exact McNemar "
            "p-value and a 95% interval of the paired difference on the same test images; mean and sd "
            "over seeds. Running, pending and failed cells show as such. 'grid run' rewrites the table "
            "after every cell."
        ),
    )
    table_parser.add_argument("folder", metavar="DIR", help="a grid folder (the --out of grid run)")
    table_parser.set_defaults(func=table)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser) -> int:
    parser.print_help()
    return 2


def run(args) -> int:
    from freqtail.commands._launch import launch
    from freqtail.workflows.grid_scale import scale_spec
    from freqtail.workflows.grid_spec import GridSpec

    spec = scale_spec(GridSpec.from_yaml(args.spec), args.scale)
    return launch(spec, args, ["grid", "run", args.spec])


def status(args) -> int:
    from freqtail.workflows.grid_status import grid_status

    view = grid_status(args.folder)
    if args.json:
        print_json(view.to_json())
        return 0
    for cell in view.cells:
        print(cell.line())
    print(view.totals_line())
    return 0


def table(args) -> int:
    from freqtail.workflows.grid_table import write_grid_table

    markdown, csv_path, tex_path = write_grid_table(args.folder)
    print(markdown.read_text(encoding="utf-8").rstrip())
    print(f"\nWrote {markdown}, {csv_path} and {tex_path}.")
    return 0
