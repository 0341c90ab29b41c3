"""``freqtail train``: train from a preset (``--config``) or from options; resumable; torchrun-ready."""

from __future__ import annotations

import sys

from freqtail.checks import check_name
from freqtail.commands._common import (
    add_execution_arguments,
    add_parser,
    finite_number,
    print_json,
    whole_number,
)
from freqtail.formatting import count

EXAMPLE = (
    "freqtail train --dataset embedded --model small-cnn --objective erm --epochs 5\n"
    "  freqtail train --config configs/t1-cifar10-resnet18-pgd-at-bass.yaml --data-root ~/data\n"
    "  freqtail train --config configs/t1-cifar10-resnet18-pgd-at.yaml --data-root ~/data --resume\n"
    "  freqtail train --epochs 5 --log tensorboard --out runs/tb && tensorboard --logdir runs/tb\n"
    "  torchrun --nproc_per_node 4 -m freqtail.cli train \\\n"
    "      --config configs/t4-cifar10-wrn-40-2-augmix.yaml --data-root ~/data"
)


#: Named options and the config key each one sets (every other key: --set KEY=VALUE).
NAMED_OPTIONS = {
    "dataset": ("NAME", str),
    "data_root": ("DIR", str),
    "model": ("NAME", str),
    "objective": ("NAME", str),
    "bass": ("MODE", str),
    "gamma": ("G", finite_number),
    "epochs": ("E", whole_number),
    "steps": ("S", whole_number),
    "batch_size": ("B", whole_number),
    "lr": ("LR", finite_number),
    "seed": ("SEED", whole_number),
    "device": ("DEVICE", str),
    "amp": ("MODE", str),
    "num_workers": ("N", whole_number),
    "log": ("MODE", str),
}
#: Switches (add_execution_arguments) that set the boolean config key of the same name to true.
FLAG_OPTIONS = ("channels_last", "compile")


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "train",
        help="train a model (ERM, PGD-AT, TRADES, MART, AugMix; with or without BaSS); resumable",
        example=EXAMPLE,
        description=(
            "Train a model into a run folder runs/NAME/{config.yaml, metrics.jsonl, checkpoints/}. "
            "Settings come from the defaults, then --config FILE, then the named options, then --set "
            "KEY=VALUE (any config key; the value is read as YAML: --set milestones=[100,105], --set "
            "bass=null, --set eps=8/255, --set lr=1e-3, --set model_options={width:16}). 'freqtail train "
            "--list-keys' lists every key. Under torchrun the same command trains with "
            "DistributedDataParallel; batch_size is the global batch ('python -m freqtail.train.torchrun' "
            "takes torchrun's arguments and exits 130 on Ctrl-C, without torchrun's traceback). One "
            "training process per run folder: a second one is refused, naming the first."
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="a preset such as configs/t1-cifar10-resnet18-pgd-at.yaml"
    )
    from freqtail.train.config import key_help

    helps = key_help()
    for key, (metavar, kind) in NAMED_OPTIONS.items():
        default, text = helps[key]
        parser.add_argument(
            "--" + key.replace("_", "-"),
            dest=key,
            metavar=metavar,
            type=kind,
            default=None,
            help=f"{text} (key {key}, default {default!r})",
        )
    add_execution_arguments(parser, config_keys=True)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config key (repeatable), e.g. --set lr=0.05 --set model_options={width:16}",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DIR", help="the run folder (default: RUNS_DIR/NAME)")
    where.add_argument(
        "--name", metavar="NAME", help="run name: the folder is RUNS_DIR/NAME (it must stay under RUNS_DIR)"
    )
    parser.add_argument(
        "--runs-dir", metavar="DIR", default="runs", help="parent of run folders (default: runs)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in the folder from its last checkpoint"
    )
    parser.add_argument("--force", action="store_true", help="replace a different run that is in the folder")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (one line per epoch remains)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument(
        "--list-keys", action="store_true", help="list every config key with its default and exit"
    )
    parser.set_defaults(func=run)


def _default_name(args, config) -> str:
    from pathlib import Path

    if args.config:
        return Path(args.config).stem
    name = f"{config.dataset}-{config.model}-{config.objective}"
    if config.bass:
        name += f"-bass-{config.bass}"
        if config.bass == "augment":
            name += f"-{config.gamma:g}"
    return name


def _list_keys() -> None:
    from freqtail.train.config import key_help

    for key, (default, text) in key_help().items():
        print(f"{key:22s} {default!r:14s} {text}")


def resolve(args):
    """``(config, run_dir)`` from parsed arguments."""
    from pathlib import Path

    from freqtail.train.config import load_config

    overrides = {}
    for key in NAMED_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            overrides[key] = None if (key == "bass" and value.lower() in ("none", "null")) else value
    for key in FLAG_OPTIONS:
        if getattr(args, key):
            overrides[key] = True
    from freqtail.train.config import parse_override

    for text in args.overrides:
        key, value = parse_override(text)
        overrides[key] = value
    if args.no_progress:
        overrides["progress"] = False
    if args.out is not None:
        check_name(args.out, "The run folder --out")
    if args.name is not None:
        check_name(args.name, "The run name --name")
    config = load_config(args.config, overrides)
    if args.out:
        return config, Path(args.out)
    from freqtail.errors import ConfigError
    from freqtail.runs.containment import inside

    name = args.name or _default_name(args, config)
    return config, inside(args.runs_dir, name, "The run folder", error=ConfigError)


def run(args) -> int:
    if args.list_keys:
        _list_keys()
        return 0
    from freqtail.train.config import config_to_yaml

    config, run_dir = resolve(args)
    if args.print_config:
        sys.stdout.write(config_to_yaml(config))
        return 0
    import os

    from freqtail.workflows.training import TrainRequest, train_run

    result = train_run(TrainRequest(config, run_dir, resume=args.resume, force=args.force))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0 if result.status != "interrupted" else 130
    summary = {
        "run_dir": str(result.run_dir),
        "status": result.status,
        "epochs_completed": result.epochs_completed,
        "global_step": result.global_step,
        "best": result.best,
        "last": result.history[-1] if result.history else None,
    }
    if args.json:
        print_json(summary)
    elif result.status == "interrupted":
        print(
            f"Interrupted after {count(result.global_step, 'step')}; "
            "resume with the same command plus --resume."
        )
    else:
        best = result.best
        best_text = (
            f"best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}" if best else "no evaluation"
        )
        print(
            f"Run {result.status} ({count(result.epochs_completed, 'epoch')}): {best_text}; "
            f"run folder {result.run_dir}."
        )
    return 130 if result.status == "interrupted" else 0
