"""``freqtail evaluate``: clean, PGD-20, CW, AutoAttack and corruption accuracy of a trained run,
under every threat model that applies, into ``results.json`` and ``results.md`` of the run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from freqtail.commands._common import add_parser, print_json
from freqtail.errors import CheckpointError, ConfigError, InputError

EXAMPLE = "freqtail evaluate runs/demo --suite clean,pgd20,cw --threat-model both --n 500"
FOREIGN_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
WORK_DIR = "eval-cache"


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
    parser.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT", help="run folder or checkpoint file/folder")
    parser.add_argument(
        "--suite",
        default="clean,pgd20",
        metavar="LIST",
        help="comma-separated suites: clean, pgd20, cw, aa, aa-fast, corruptions, all (default clean,pgd20); "
        "aliases: pgd-20 = pgd20, autoattack = aa, aafast = aa-fast ('pgd' alone is refused: say pgd20)",
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
        type=int,
        metavar="N",
        help="evaluate N test images: a seeded subset stratified across classes, the same images the "
        "sensitivity / landscape / heatmap commands take for the same N and seed (default: all)",
    )
    parser.add_argument("--eps", metavar="EPS", help="L-inf budget, e.g. 8/255 (default: run config / paper)")
    parser.add_argument("--step-size", metavar="STEP", help="PGD step (default: eps/4 or the run config's)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="attack seed (default 0)")
    parser.add_argument(
        "--subset-seed",
        type=int,
        default=0,
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
        type=int,
        default=100,
        metavar="N",
        help="images for the gradient-masking check of robust suites, drawn class-stratified from the "
        "evaluated images (default 100; 0 skips it)",
    )
    parser.add_argument(
        "--masking-min",
        type=int,
        metavar="M",
        help="fewest correctly classified images the masking check judges on; with fewer it says 'too few "
        "images to judge' (default: freqtail.attacks.masking.MIN_JUDGED_IMAGES, 50)",
    )
    parser.add_argument(
        "--masking-queries", type=int, default=1000, metavar="Q", help="Square queries of that check"
    )
    parser.add_argument("--model", metavar="NAME", help="architecture of a foreign .pt/.safetensors file")
    parser.add_argument(
        "--normalize", metavar="PRESET", help="normalisation of a foreign file's model (cifar10, ..., none)"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loader workers (folder datasets)")
    parser.add_argument(
        "--out", metavar="DIR", help="folder for results.json / results.md (default: the run)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip numbers already in results.json with identical settings"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the new records as JSON on stdout")
    parser.set_defaults(func=run)


def _run_folder(path: Path, info: dict[str, Any]) -> Path:
    """The run folder a checkpoint belongs to (where results go), else the checkpoint's own folder."""
    if path.is_dir() and ((path / "checkpoints").is_dir() or (path / "config.yaml").is_file()):
        return path
    folder = Path(info.get("path") or path)
    for candidate in (folder, *folder.parents):
        if candidate.name == "checkpoints":
            return candidate.parent
    return path.parent if path.is_file() else path


def _state_digest(model) -> str:
    """SHA-256 of the model's state dict (names and raw bytes, sorted by name)."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(str(flat.dtype).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _foreign_spec(args: argparse.Namespace, path: Path):
    from freqtail.data import dataset_info
    from freqtail.models import model_spec

    if not args.model or not args.dataset:
        raise CheckpointError(
            f"The file {path} holds bare weights; say which architecture and dataset with --model NAME "
            "--dataset NAME."
        )
    info = dataset_info(args.dataset)
    normalize = None if args.normalize in (None, "none") else args.normalize
    return model_spec(args.model, info.num_classes, image_size=info.image_size[0], normalize=normalize)


def _load(args: argparse.Namespace):
    from freqtail.train import load_model_from_run

    path = Path(args.path).expanduser()
    spec = None
    if path.is_file() and path.suffix in FOREIGN_SUFFIXES and not (path.parent / "checkpoint.json").exists():
        if args.model is not None or path.suffix != ".safetensors":
            spec = _foreign_spec(args, path)
    model, info = load_model_from_run(path, args.which, device="cpu", with_front=False, spec=spec)
    return path, model, info


def _check_architecture(spec: dict[str, Any], dataset: str) -> None:
    from freqtail.data import dataset_info

    data = dataset_info(dataset)
    size = tuple(data.image_size)
    trained = (int(spec.get("image_size", size[0])), int(spec.get("num_classes", data.num_classes)))
    if trained[1] != data.num_classes or trained[0] != size[0]:
        raise CheckpointError(
            f"The checkpoint's {spec.get('name')} was built for {trained[0]}x{trained[0]} images and "
            f"{trained[1]} classes, but {dataset} has {size[0]}x{size[1]} images and {data.num_classes} "
            "classes; evaluate it on the dataset it was trained on."
        )


def _checkpoint_facts(info: dict[str, Any], spec: dict[str, Any], digest: str) -> dict[str, Any]:
    config = info.get("config") or {}
    data = info.get("data") or {}
    objective = info.get("objective")
    return {
        "path": str(Path(info["path"]).resolve()) if info.get("path") else None,
        "which": info.get("which"),
        "format": info.get("format"),
        "epoch": info.get("epoch"),
        "global_step": info.get("global_step"),
        "model": spec.get("name"),
        "num_classes": spec.get("num_classes"),
        "objective": objective,
        "bass": data.get("bass"),
        "gamma": data.get("gamma") if data.get("bass") == "augment" else None,
        "bass_strength": data.get("bass_strength"),
        "bass_branch": bool(objective == "augmix-bass" or config.get("bass_branch")),
        "digest": digest,
        "selected_on": info.get("selected_on"),
    }


def _checkpoint_tag(info: dict[str, Any], path: Path) -> str:
    if info.get("which"):
        return str(info["which"])
    if info.get("path"):
        return Path(info["path"]).name if info.get("format") != "foreign" else Path(info["path"]).stem
    return path.stem


def _parse_list_options(args: argparse.Namespace) -> tuple[list[str] | None, list[int] | None]:
    from freqtail.commands.corrupt import parse_corruptions, parse_severities

    corruptions = None if args.corruptions is None else parse_corruptions(args.corruptions)
    severities = None if args.severities is None else parse_severities(args.severities)
    return corruptions, severities


def _summary_line(record: dict[str, Any]) -> str:
    from freqtail.attacks.masking import STATE_TOO_FEW, VERDICT_WORDS
    from freqtail.evaluate.tables import pct

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
    variant = str(record["id"]).split("|")[3]
    n = record["data"].get("n")
    if record["metric"] == "corruptions":
        cats = " ".join(f"{k} {pct(v)}" for k, v in record["categories"].items())
        return (
            f"{record['threat_model']:<11} corruptions ({record['order']}): mean {pct(record['mean'])}% "
            f"[{cats}] over {record['cells']} cells x {n} images"
        )
    label = f"{record['metric']} {variant}".strip()
    return (
        f"{record['threat_model']:<11} {label:<28} {pct(record['accuracy'])}% "
        f"({record['correct']}/{record['total']})"
    )


def _masking_min(args: argparse.Namespace) -> int:
    from freqtail.attacks.masking import MIN_JUDGED_IMAGES

    return MIN_JUDGED_IMAGES if args.masking_min is None else args.masking_min


def _first_set(*values: Any, default: Any) -> Any:
    """The first value that is set: None means "not set"; 0 (a BaSS strength of 0) is a value."""
    return next((value for value in values if value is not None), default)


def _check_options(args: argparse.Namespace) -> tuple[list[str] | None, list[int] | None]:
    """Refuse bad options before anything is loaded; return the parsed corruption lists."""
    from freqtail.evaluate import parse_suites

    parse_suites(args.suite)
    for name, value, minimum in (
        ("--n", args.n, 1),
        ("--masking-n", args.masking_n, 0),
        ("--masking-min", args.masking_min, 1),  # None: the library's minimum
        ("--num-workers", args.num_workers, 0),
        ("--batch-size", args.batch_size, 1),
    ):
        if value is not None and value < minimum:
            kind = "a positive" if minimum == 1 else "a non-negative"
            raise InputError(f"{name} must be {kind} integer, not {value}.")
    if str(args.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {args.device} was given, but PyTorch sees no CUDA GPU here; use --device cpu."
            )
    return _parse_list_options(args)


def run(args: argparse.Namespace) -> int:
    from freqtail.evaluate import init_distributed

    corruptions, severities = _check_options(args)
    context = init_distributed(args.device)
    try:
        return _evaluate(args, context, corruptions, severities)
    finally:
        if context.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _evaluate(args: argparse.Namespace, context, corruptions, severities) -> int:
    from freqtail.data import canonical_name
    from freqtail.evaluate import plan_evaluation, resolve_threat_models, run_evaluation
    from freqtail.evaluate.results import RESULTS_FILE, RESULTS_MD, load_results, write_results
    from freqtail.evaluate.tables import results_markdown
    from freqtail.io import atomic_write_text

    path, model, info = _load(args)
    spec = info.get("model_spec") or {}
    data = info.get("data") or {}
    dataset = args.dataset or data.get("dataset")
    if dataset is None:
        raise ConfigError(
            f"The checkpoint {path} does not say which dataset it was trained on; give --dataset NAME."
        )
    dataset = canonical_name(dataset)
    _check_architecture(spec, dataset)
    training_bass = data.get("bass")
    front = spec.get("bass_front")
    strength = _first_set(data.get("bass_strength"), (front or {}).get("strength"), default=1.0)
    resolve_threat_models(args.threat_model, training_bass, front is not None)
    out = Path(args.out) if args.out else _run_folder(path, info)
    results_path = out / RESULTS_FILE
    existing = load_results(results_path)["results"] if results_path.exists() else []
    plan = plan_evaluation(
        dataset=dataset,
        suites=args.suite,
        threat_model=args.threat_model,
        training_bass=training_bass,
        has_front=front is not None,
        bass_strength=float(strength),
        data_root=args.data_root or data.get("data_root"),
        eps=args.eps,
        step_size=args.step_size,
        run_config=info.get("config"),
        n=args.n,
        batch_size=args.batch_size,
        seed=args.seed,
        subset_seed=args.subset_seed,
        masking_n=args.masking_n,
        masking_queries=args.masking_queries,
        masking_min=_masking_min(args),
        c_root=args.c_root,
        bc_root=args.bc_root,
        generate_c=args.generate_c,
        corruptions=corruptions,
        severities=severities,
        work_dir=out / WORK_DIR,
        checkpoint=_checkpoint_facts(info, spec, _state_digest(model)),
        checkpoint_tag=_checkpoint_tag(info, path),
        model_classes=spec.get("num_classes"),
        num_workers=args.num_workers,
    )
    done = {r.get("id"): r.get("fingerprint") for r in existing}

    def skip(record_id: str, fingerprint: str) -> bool:
        return bool(args.resume) and done.get(record_id) == fingerprint

    replaced: list[str] = []

    def save(record: dict[str, Any]) -> None:
        merged = write_results(results_path, [record], warn=replaced.append)
        atomic_write_text(out / RESULTS_MD, results_markdown(merged, title=f"Evaluation results: {out.name}"))

    records = run_evaluation(
        plan, model, context=context, progress=not args.no_progress, on_record=save, skip=skip
    )
    if not context.is_main:
        return 0
    for message in replaced:
        print(f"freqtail evaluate: warning: {message}", file=sys.stderr)
    if args.json:
        print_json(records)
        return 0
    for record in records:
        print(_summary_line(record))
    skipped = "" if records or not args.resume else " (everything asked for was already there: --resume)"
    print(f"Results: {results_path} and {out / RESULTS_MD}{skipped}.", file=sys.stdout)
    return 0
