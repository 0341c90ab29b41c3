"""Small helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from freqtail.checks import int_argument, number_argument, seed_argument
from freqtail.report.figure_formats import DEFAULT_FIGURE_FORMATS
from freqtail.runs.existence import check_run_path


def add_parser(subparsers, name: str, help: str, example: str, description: str | None = None):
    """Add a subcommand parser whose ``--help`` ends with a copy-pasteable example."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def print_json(obj: Any, indent: int | None = 2) -> None:
    """Print ``obj`` as JSON on stdout (NaN/Inf are refused: they are bugs, not data); ``indent=None``
    prints it on one line."""
    json.dump(obj, sys.stdout, indent=indent, allow_nan=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


# argparse types, built from freqtail.checks so that options and library arguments agree.
#: Any integer (ASCII digits); the library check that follows gives the verdict on its range.
any_int = int_argument()
#: A seed, 0 .. 2**63 - 1 (:func:`freqtail.checks.check_seed`).
seed_int = seed_argument()
#: A positive integer ("expected a positive integer, got '0'").
positive_int = int_argument(minimum=1)
#: An integer >= 0.
non_negative_int = int_argument(minimum=0)
#: Any integer, also written as a whole float (``1e9``, ``100.0``), as YAML configs allow.
whole_number = int_argument(whole_floats=True)
#: Any finite number (ASCII digits); the library check that follows gives the verdict on its range.
finite_number = number_argument()
#: A finite number > 0 (seconds, factors).
positive_float = number_argument(minimum=0, open_min=True)
#: A finite number in [0, 1].
unit_interval = number_argument(minimum=0, maximum=1)


def add_execution_arguments(parser: argparse.ArgumentParser, *, config_keys: bool = False) -> None:
    """``--channels-last`` and ``--compile``: how the model runs (freqtail.models.execution).

    ``config_keys``: the options set ``freqtail train``'s config keys of the same names (the help says so).
    """
    key = " (config key {}: true)" if config_keys else ""
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="run the model and its inputs in channels-last (NHWC) memory format: faster convolutions on "
        "GPUs with tensor cores and, with oneDNN, on many CPUs; the same numbers up to float rounding"
        + key.format("channels_last"),
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (the first batches compile, CPUs need a C++ compiler); the same "
        "numbers up to float rounding; evaluation records and run configs state the options"
        + key.format("compile"),
    )


def execution_options(args: argparse.Namespace):
    """The :class:`freqtail.models.ExecutionOptions` of ``--channels-last`` / ``--compile``."""
    from freqtail.execution_options import ExecutionOptions

    return ExecutionOptions(channels_last=bool(args.channels_last), compile=bool(args.compile))


def add_run_arguments(parser: argparse.ArgumentParser, default_n: int, default_batch: int) -> None:
    """The options every explanation command takes: RUN, data, size, device, output, threat model."""
    parser.add_argument(
        "run", metavar="RUN", nargs="?", help="a run folder written by 'freqtail train' (runs/NAME)"
    )
    parser.add_argument(
        "--dataset", metavar="NAME", help="dataset to analyse (default: the run's own dataset, test split)"
    )
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset")
    parser.add_argument(
        "--n",
        "--num-images",
        dest="n",
        type=positive_int,
        default=default_n,
        help=f"number of test images (default {default_n}): a seeded subset stratified across classes, the "
        "same images 'freqtail evaluate --n N' uses for the same N and --subset-seed (--num-images: the "
        "same option, for bare torchrun, which reads --n as an abbreviation of its own options)",
    )
    parser.add_argument(
        "--subset-seed",
        type=seed_int,
        default=0,
        help="seed of the --n subset (default 0, as freqtail evaluate's)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=default_batch,
        help=f"images per pass (default {default_batch})",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument(
        "--out", metavar="DIR", help="write results and figures here instead of into the run folder"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="for runs trained on BaSS-converted data: the end-to-end threat model, the model with its "
        "differentiable BaSS front on raw test images (default: the paper's domain protocol, the bare "
        "model on BaSS-converted test images)",
    )
    add_figure_format_argument(parser)
    add_robustbench_arguments(parser)


def add_figure_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--figure-format LIST``: the formats every figure is written in (checked where it is used, by
    :func:`freqtail.report.figure_formats.check_figure_formats`, so a bad list is one sentence, exit 2)."""
    parser.add_argument(
        "--figure-format",
        metavar="LIST",
        default=",".join(DEFAULT_FIGURE_FORMATS),
        help="comma-separated formats of every figure, each written as figures/<kind>.<fmt>: png (embedded "
        "in the report), pdf and svg (vector graphics for a paper) (default "
        f"{','.join(DEFAULT_FIGURE_FORMATS)}; e.g. --figure-format png or --figure-format pdf,svg)",
    )


def explain_request(args: argparse.Namespace):
    """The :class:`freqtail.workflows.explain_options.ExplainRequest` of an explanation command's
    arguments, checked without torch (the device is the name given; the process group resolves it)."""
    from freqtail.workflows.explain_options import ExplainRequest

    return ExplainRequest(
        n=args.n,
        batch_size=args.batch_size,
        threat_model="end-to-end" if args.end_to_end else None,
        subset_seed=args.subset_seed,
        device=args.device,
        progress=True,
        figure_formats=args.figure_format,
    )


def run_explanation(args: argparse.Namespace, options, show: Callable[[Any], None]) -> int:
    """Run the analysis of an explanation command's ``options`` (a checked
    :class:`~freqtail.workflows.explain_options.SensitivityOptions`, ``LandscapeOptions`` or
    ``HeatmapOptions``) on its run, alone or as one process of torchrun.

    The options are checked before torch is imported and before the process group is joined (a bad
    one stops every process with the same sentence before any collective); the run is opened on
    every rank and a failure on one stops all (:func:`freqtail.distributed.run_on_every_rank`);
    :func:`freqtail.workflows.explain.explain` shards the work; ``show(explanation)`` prints on rank
    0 only. The process group is left at the end unless the caller had joined it.
    """
    request = explain_request(args)
    import dataclasses

    from freqtail.distributed import process_group, run_on_every_rank
    from freqtail.environment import environment_text, measurement_environment
    from freqtail.workflows.explain import analysis_of, explain

    analysis = analysis_of(options)
    with process_group(args.device) as context:
        run = run_on_every_rank(lambda: open_run(args, args.run), context)
        explained = explain(run, analysis, dataclasses.replace(request, device=context.device), context)
        if context.is_main:
            show(explained)
            if not getattr(args, "json", False):
                print(f"Measured with {environment_text(measurement_environment(context.device))}.")
        return 0


def add_robustbench_arguments(parser: argparse.ArgumentParser) -> None:
    """``--robustbench NAME`` and its companions: analyse a RobustBench model instead of a run."""
    group = parser.add_argument_group("RobustBench models (pip install 'freqtail[robustbench]')")
    group.add_argument(
        "--robustbench",
        metavar="NAME",
        help="a model of RobustBench's zoo (e.g. Carmon2019Unlabeled) instead of a run folder; its results "
        "go to runs/robustbench-NAME unless --out says otherwise",
    )
    group.add_argument(
        "--robustbench-threat-model",
        default="Linf",
        metavar="TM",
        help="RobustBench leaderboard: Linf (default), L2 or corruptions",
    )
    group.add_argument(
        "--model-dir",
        metavar="DIR",
        help="RobustBench's model folder holding DATASET/TM/NAME.pt (default ./models); "
        "nothing is downloaded",
    )


def check_run_argument(args: argparse.Namespace, path: str | None) -> None:
    """Refuse a run folder or checkpoint that does not exist, before the library (and torch) is
    imported; a RobustBench model (``--robustbench``) is checked when it is opened."""
    if path is not None and not getattr(args, "robustbench", None):
        check_run_path(path)


def open_run(args: argparse.Namespace, path: str | None, **options):
    """The :class:`freqtail.workflows.RunFolder` a command's arguments name: a run or a RobustBench model."""
    from freqtail.errors import InputError
    from freqtail.workflows import RunFolder

    if getattr(args, "robustbench", None):
        if path is not None:
            raise InputError("Give either a run folder or --robustbench NAME, not both.")
        return RunFolder.from_robustbench(
            args.robustbench,
            dataset=args.dataset or "cifar10",
            threat_model=args.robustbench_threat_model,
            model_dir=args.model_dir,
            data_root=args.data_root,
            out=args.out,
        )
    if path is None:
        raise InputError("Give a run folder (or checkpoint), or --robustbench NAME.")
    return RunFolder.open(path, dataset=args.dataset, data_root=args.data_root, out=args.out, **options)
