"""``freqtail evaluate``: clean, PGD-20, CW, AutoAttack and corruption accuracy of a trained run,
under every threat model that applies, into ``results.json`` and ``results.md`` of the run folder."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from freqtail.commands._common import (
    add_execution_arguments,
    add_parser,
    add_robustbench_arguments,
    any_int,
    check_run_argument,
    execution_options,
    open_run,
    print_json,
)
from freqtail.errors import ConfigError

EXAMPLE = (
    "freqtail evaluate runs/demo/erm-bass --suite clean,pgd20,cw --threat-model both --n 500\n"
    "  freqtail evaluate --robustbench Carmon2019Unlabeled --dataset cifar10 --data-root ~/data "
    "--model-dir models"
)


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "evaluate",
        help="clean / PGD-20 / CW / AutoAttack / corruption accuracy of a run, labelled by threat model",
        example=EXAMPLE,
        description=(
            "Evaluate a trained run (or checkpoint) and merge the numbers into RUN/results.json, with "
            "their exact settings, and RUN/results.md (tables in the paper's layout). Models trained on "
            "BaSS data (bass=dataset) are evaluated under two threat models: 'domain' (the paper's "
            "protocol: BaSS-converted test set, attacks in the BaSS domain) and 'end-to-end' (raw "
            "images, differentiable BaSS inside the model, eps on raw pixels). Other models, including "
            "bass=augment and AugMix+BaSS runs, have one threat model: 'standard' (raw images). "
            "Robust suites include a gradient-masking check on a class-stratified subset of the evaluated "
            "images; each robust number stores that check's verdict. Runs under torchrun split the images "
            "across processes and sum exact counts."
        ),
    )
    parser.add_argument(
        "path", metavar="RUN_DIR_OR_CHECKPOINT", nargs="?", help="run folder or checkpoint file/folder"
    )
    parser.add_argument(
        "--suite",
        default="clean,pgd20",
        metavar="LIST",
        help="comma-separated suites: clean, pgd20, pgd20-lfc, pgd20-hfc, cw, aa, aa-fast, corruptions, all "
        "(default clean,pgd20); pgd20-lfc / pgd20-hfc: PGD-20 perturbing only the bands below / at or above "
        "the boundary band b (--band-boundary); aliases: pgd-20 = pgd20, pgd-20-lfc = pgd20-lfc, "
        "pgd-20-hfc = pgd20-hfc, autoattack = aa, aafast = aa-fast ('pgd' alone is refused: say pgd20)",
    )
    parser.add_argument(
        "--band-boundary",
        type=any_int,
        metavar="B",
        help="boundary band b of the pgd20-lfc / pgd20-hfc suites, 0 .. K + 1 (default: each threat "
        "model's 80/20 boundary over the corner bands, measured on its evaluated test images, the "
        "BaSS-converted ones for domain)",
    )
    parser.add_argument(
        "--threat-model",
        default="auto",
        metavar="NAME",
        help="auto (default: every one that applies), both, standard, domain or end-to-end",
    )
    parser.add_argument(
        "--n",
        "--num-images",
        dest="n",
        type=any_int,
        metavar="N",
        help="evaluate N test images: a seeded subset stratified across classes, the same images the "
        "sensitivity / landscape / heatmap commands take for the same N and seed (default: all)",
    )
    parser.add_argument("--eps", metavar="EPS", help="L-inf budget, e.g. 8/255 (default: run config / paper)")
    parser.add_argument("--step-size", metavar="STEP", help="PGD step (default: eps/4 or the run config's)")
    parser.add_argument("--batch-size", type=any_int, help="images per batch (default 128)")
    parser.add_argument("--seed", type=any_int, help="attack seed (default 0)")
    parser.add_argument(
        "--subset-seed",
        type=any_int,
        help="seed of the --n subset and of the masking check's (default 0)",
    )
    parser.add_argument(
        "--which", choices=("best", "last"), default="best", help="checkpoint of a run folder"
    )
    parser.add_argument("--dataset", metavar="NAME", help="dataset to evaluate on (default: the run's)")
    parser.add_argument("--data-root", metavar="DIR", help="dataset folder (default: the run's)")
    parser.add_argument(
        "--c-root", metavar="DIR", help="-C folder (CIFAR-10-C / CIFAR-100-C or freqtail corrupt)"
    )
    parser.add_argument(
        "--bc-root",
        metavar="DIR",
        help="BaSS-then-corrupt folder (freqtail corrupt --bass dataset), for the domain threat model",
    )
    parser.add_argument(
        "--generate-c",
        action="store_true",
        help="generate missing -C sets from the evaluated images into RUN/eval-cache/ (resumable)",
    )
    parser.add_argument(
        "--corruptions", metavar="LIST", help="corruption names and/or categories (default: all present)"
    )
    parser.add_argument(
        "--severities", metavar="LIST", help="severities, e.g. 1-5 or 3 (default: all present)"
    )
    parser.add_argument(
        "--masking-n",
        type=any_int,
        metavar="N",
        help="images for the gradient-masking check of robust suites, drawn class-stratified from the "
        "evaluated images (default 100; 0 skips it)",
    )
    parser.add_argument(
        "--masking-min",
        type=any_int,
        metavar="M",
        help="fewest correctly classified images the masking check judges on; with fewer it says 'too few "
        "images to judge' (default: freqtail.attacks.masking_verdicts.MIN_JUDGED_IMAGES, 50)",
    )
    parser.add_argument(
        "--masking-queries", type=any_int, metavar="Q", help="Square queries of that check (default 1000)"
    )
    parser.add_argument("--model", metavar="NAME", help="architecture of a foreign .pt/.safetensors file")
    parser.add_argument(
        "--normalize", metavar="PRESET", help="normalisation of a foreign file's model (cifar10, ..., none)"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    add_execution_arguments(parser)
    parser.add_argument(
        "--num-workers", type=any_int, help="data-loader workers (folder datasets; default 0)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="folder for results.json / results.md (default: the run)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip numbers already in results.json with identical settings"
    )
    parser.add_argument(
        "--allow-training",
        action="store_true",
        help="evaluate although the run is being trained (its checkpoint will be replaced; refused "
        "otherwise)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the new records as JSON on stdout")
    add_robustbench_arguments(parser)
    parser.set_defaults(func=run)


def _summary_line(record: dict[str, Any]) -> str:
    from freqtail.attacks.masking_verdicts import STATE_TOO_FEW, VERDICT_WORDS
    from freqtail.evaluate.records import RecordId
    from freqtail.formatting import percent

    if record["metric"] == "gradient-masking":
        state = record.get("state")
        judged = (record.get("report") or {}).get("considered")
        line = (
            f"{record['threat_model']:<11} gradient-masking check on {record['data']['n']} images "
            f"({judged} correctly classified judged): {VERDICT_WORDS.get(state, state)}"
        )
        if state == STATE_TOO_FEW:
            line += " (raise --masking-n, or --n, for a verdict)"
        return line
    variant = RecordId.of(record).variant
    n = record["data"].get("n")
    if record["metric"] == "corruptions":
        cats = " ".join(f"{k} {percent(v)}" for k, v in record["categories"].items())
        return (
            f"{record['threat_model']:<11} corruptions ({record['order']}): mean {percent(record['mean'])}% "
            f"[{cats}] over {record['cells']} cells x {n} images"
        )
    label = f"{record['metric']} {variant}".strip()
    return (
        f"{record['threat_model']:<11} {label:<28} {percent(record['accuracy'])}% "
        f"({record['correct']}/{record['total']})"
    )


def _request(args: argparse.Namespace):
    """The :class:`freqtail.evaluate.EvaluationRequest` of the options, checked before anything is
    loaded (and before torch is imported); options left out take the request's defaults."""
    from freqtail.evaluate.request import EvaluationRequest

    given = {
        "suites": args.suite,
        "threat_model": args.threat_model,
        "n": args.n,
        "eps": args.eps,
        "step_size": args.step_size,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "subset_seed": args.subset_seed,
        "masking_n": args.masking_n,
        "masking_queries": args.masking_queries,
        "masking_min": args.masking_min,
        "c_root": args.c_root,
        "bc_root": args.bc_root,
        "generate_c": args.generate_c,
        "corruptions": args.corruptions,
        "severities": args.severities,
        "band_boundary": args.band_boundary,
        "num_workers": args.num_workers,
        "execution": execution_options(args),
        "resume": args.resume,
    }
    return EvaluationRequest.of(**{key: value for key, value in given.items() if value is not None})


def _check_cuda(device: str) -> None:
    """Refuse ``--device cuda[:N]`` where PyTorch sees no GPU (the one check that needs torch)."""
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device} was given, but PyTorch sees no CUDA GPU here; use --device cpu."
            )


def run(args: argparse.Namespace) -> int:
    check_run_argument(args, args.path)
    request = _request(args)
    _check_cuda(args.device)
    from freqtail.distributed import process_group

    with process_group(args.device) as context:
        return _evaluate(args, context, request)


def _evaluate(args: argparse.Namespace, context, request) -> int:
    from freqtail.environment import measured_with
    from freqtail.workflows import evaluate_run

    run = open_run(args, args.path, which=args.which, model_name=args.model, normalize=args.normalize)
    outcome = evaluate_run(
        run, request, context=context, progress=not args.no_progress, allow_training=args.allow_training
    )
    if not context.is_main:
        return 0
    for message in outcome.warnings:
        print(f"freqtail evaluate: warning: {message}", file=sys.stderr)
    if args.json:
        print_json(outcome.records)
        return 0
    for record in outcome.records:
        print(_summary_line(record))
    skipped = " (everything asked for was already there: --resume)" if outcome.resumed else ""
    print(f"Results: {outcome.results} and {outcome.markdown}{skipped}.", file=sys.stdout)
    if outcome.records:
        print(measured_with(outcome.records))
    return 0
