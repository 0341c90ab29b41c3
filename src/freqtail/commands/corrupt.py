"""``freqtail corrupt``: write a CIFAR-10-C style corrupted copy of a dataset's test split."""

from __future__ import annotations

import argparse
import contextlib
import sys

from freqtail.checks import check_optional_int, seed_argument
from freqtail.commands._common import add_parser, print_json
from freqtail.errors import InputError

CLEAN_FILE = "clean.npy"
EXAMPLE = "freqtail corrupt --dataset embedded --out runs/embedded-C --severities 1-5"


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "corrupt",
        help="write a CIFAR-10-C style corrupted test set (19 corruptions x 5 severities) for any dataset",
        example=EXAMPLE,
        description=(
            "Corrupt the test split of a dataset with the 19 CIFAR-10-C corruptions (Hendrycks & "
            "Dietterich 2019; CIFAR parameters) and write it in the CIFAR-10-C layout: "
            "OUT/<corruption>.npy (severity blocks of the N test images), OUT/labels.npy, OUT/meta.json, "
            "plus OUT/clean.npy (the uncorrupted source images). With --bass dataset the test split "
            "is converted with BaSS first (the paper's CIFAR10-B-C). Re-running the same command "
            "resumes and skips finished corruptions."
        ),
    )
    parser.add_argument(
        "--dataset", required=True, metavar="NAME", help="a registered dataset, e.g. embedded, cifar10"
    )
    parser.add_argument(
        "--data-root", metavar="DIR", help="folder holding the dataset (not needed for embedded)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the corrupted set to")
    parser.add_argument(
        "--severities",
        default="1-5",
        metavar="LIST",
        help="severities to write: 1-5 (default), 1,3,5, 2, ...",
    )
    parser.add_argument(
        "--corruptions",
        metavar="LIST",
        help="comma-separated names and/or categories (noise, blur, weather, digital); default all 19",
    )
    parser.add_argument(
        "--bass",
        choices=("none", "dataset"),
        default="none",
        help="'dataset': apply BaSS to the test images before corrupting them (CIFAR10-B-C); default none",
    )
    parser.add_argument(
        "--seed", type=seed_argument(), default=0, help="corruption seed, a non-negative integer (default 0)"
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="use only the first N test images (a quick trial set)"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


@contextlib.contextmanager
def _clean_source(args: argparse.Namespace, bass: str | None, folder):
    """Stream the (BaSS-converted) test images into a temporary ``folder``/clean.npy.

    Yields ``(memory-mapped images, labels, classes)``; the file replaces ``folder``/clean.npy only if
    the block finishes, so a refused or failed run leaves an existing set untouched. Under torchrun
    rank 0 writes OUT/clean.npy and every other rank a private copy of its own (the same images).
    """
    from pathlib import Path

    import numpy as np

    from freqtail.data import build_dataset, iter_uint8_batches
    from freqtail.io import atomic_path, load_npy, reserved_npy_memmap

    dataset = build_dataset(args.dataset, "test", args.data_root, bass=bass)
    labels = np.asarray(dataset.labels if hasattr(dataset, "labels") else dataset.targets)
    count = len(labels) if args.limit is None else min(args.limit, len(labels))
    labels = labels[:count].astype(np.int64)
    h, w = dataset.image_size
    with atomic_path(Path(folder) / CLEAN_FILE) as tmp:
        target = reserved_npy_memmap(tmp, np.uint8, (count, h, w, 3))  # a full disk: a sentence, no SIGBUS
        filled = 0
        for batch in iter_uint8_batches(args.dataset, "test", args.data_root, batch_size=512, bass=bass):
            take = min(len(batch), count - filled)
            if batch.shape[-1] == 1:
                batch = np.repeat(batch, 3, axis=-1)
            target[filled : filled + take] = batch[:take]
            filled += take
            if filled >= count:
                break
        target.flush()
        del target
        if filled != count:
            raise InputError(f"The {args.dataset} test split yielded {filled} images but has {count} labels.")
        yield load_npy(tmp, "clean images", mmap=True), labels, list(dataset.classes)


def run(args: argparse.Namespace) -> int:
    from freqtail.data.catalog import canonical_name
    from freqtail.data.corruptions.names import parse_corruptions, parse_severities
    from freqtail.io import check_writable_folder

    # every option first: a mistake is one sentence before torch is imported
    severities = parse_severities(args.severities)
    corruptions = parse_corruptions(args.corruptions)
    check_optional_int(args.limit, "--limit", minimum=1)
    canonical_name(args.dataset)
    check_writable_folder(args.out, "output folder")
    from freqtail.distributed import process_group

    with process_group("cpu") as context:  # corruptions run on the CPU; under torchrun the ranks share them
        result = _write(args, severities, corruptions, context)
    if not context.is_main:
        return 0
    if args.json:
        print_json(result)
    else:
        shared = f" by {context.world_size} processes" if context.distributed else ""
        print(
            f"Wrote {len(result['written'])} corruption(s), skipped {len(result['skipped'])} already done, "
            f"{result['num_images']} images x severities {','.join(map(str, severities))} "
            f"in {result['seconds']:.1f} s{shared} to {result['out_dir']}.",
            file=sys.stdout,
        )
    return 0


def _write(args: argparse.Namespace, severities, corruptions, context) -> dict:
    """Every rank: the clean source (rank 0's in OUT), then its share of the corrupted set."""
    import tempfile
    from pathlib import Path

    from freqtail.data.corrupted_sets import write_corrupted_set

    bass = None if args.bass == "none" else args.bass
    with contextlib.ExitStack() as stack:
        folder = args.out if context.is_main else stack.enter_context(tempfile.TemporaryDirectory())
        images, labels, classes = stack.enter_context(_clean_source(args, bass, folder))
        meta = {
            "dataset": args.dataset,
            # absolute, for the command a refusal of a damaged file names (freqtail corrupt ... again)
            "data_root": None if args.data_root is None else str(Path(args.data_root).expanduser().resolve()),
            "split": "test",
            "bass": bass,
            "bass_strength": 1.0 if bass else None,
            "limit": args.limit,
            "classes": classes,
        }
        result = write_corrupted_set(
            images,
            labels,
            args.out,
            corruptions=corruptions,
            severities=severities,
            seed=args.seed,
            progress=not args.no_progress,
            meta=meta,
            context=context,
            source_file=CLEAN_FILE,  # its digest recorded in meta.json with the others
        )
    return {**result, "dataset": args.dataset, "bass": bass}
