"""``freqtail reproduce``: run a paper table or figure as a grid (``t1``, ``t3``, ``t4``, ``fig3``)."""

from __future__ import annotations

from freqtail.commands._common import add_parser
from freqtail.commands._launch import add_launch_arguments

EXAMPLE = (
    "freqtail reproduce t1 --scale smoke --out grids/t1-smoke\n"
    "  freqtail reproduce fig3 --scale smoke --out grids/fig3-smoke --only '*gamma0.5'\n"
    "  freqtail reproduce t1 --out grids/t1 --only '*cifar10-resnet18*'\n"
    "  freqtail reproduce t1 --scale smoke --out grids/t1-seeds --only '*resnet18-pgd-at*' --seeds 0,1,2\n"
    "  freqtail reproduce t1 --out grids/t1 --log tensorboard && tensorboard --logdir grids/t1\n"
    "  freqtail reproduce t1 --out grids/t1 --data-root ~/data --launcher slurm --slurm-gpus-per-task 1\n"
    "  freqtail reproduce t1 --out grids/t1 --data-root ~/data --gpus 0,1,2,3 --nproc-per-cell 2\n"
    "  freqtail grid status grids/t1"
)


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "reproduce",
        help="train and evaluate every run of a paper table (t1, t3, t4) or figure (fig3) as a grid",
        example=EXAMPLE,
        description=(
            "Runs the paper's grid NAME, one cell per preset of configs/NAME-*.yaml, evaluated with the "
            "suites the paper reports: t1 (Table 1, 24 cells) and t3 (Table 3, 4 cells) clean, PGD-20 and "
            "AutoAttack; t4 (Table 4, 16 cells) clean and corruptions; fig3 (Figure 3, 6 cells) clean, "
            "PGD-20 and corruptions, then PGD-20 at eps 1/255, 2/255, 4/255 and 8/255 (an eps sweep). "
            "The same launchers as 'freqtail grid run': resumable, --jobs N launchers, --gpus and "
            "--nproc-per-cell for several GPUs, or --launcher slurm (one job array); 'freqtail grid "
            "status DIR' shows progress (docs/guides/reproduce.md)."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="t1, t3, t4 or fig3")
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="folder holding the data sets (config key data_root of every cell; the smoke scale uses the "
        "embedded data instead)",
    )
    parser.add_argument(
        "--seeds",
        metavar="LIST",
        help="train every cell once per seed, e.g. 0,1,2 (cells <preset>-seed=N; the table gives each "
        "seed's value and the mean and sd over seeds); give the same list again to resume",
    )
    add_launch_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from freqtail.commands._launch import check_launch_arguments, launch

    launcher = check_launch_arguments(args)  # before the spec: its cells' configs import torch when checked
    from freqtail.workflows.grid_scale import scale_spec
    from freqtail.workflows.grid_spec import GridSpec

    overrides = {"data_root": args.data_root} if args.data_root is not None else {}
    spec = scale_spec(GridSpec.family(args.name, overrides=overrides, seeds=args.seeds), args.scale)
    command = ["reproduce", args.name]
    if args.data_root is not None:
        command += ["--data-root", args.data_root]
    if args.seeds is not None:
        command += ["--seeds", args.seeds]
    return launch(spec, args, command, launcher)
