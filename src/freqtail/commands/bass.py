"""``freqtail bass``: Balanced Spectrum Sampling of an image array file or of a whole dataset."""

from __future__ import annotations

from freqtail.commands._common import add_parser, positive_int, print_json, unit_interval
from freqtail.errors import InputError

EXAMPLE = "freqtail bass --input train_images.npy --output train_images_bass.npy"


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "bass",
        help="apply Balanced Spectrum Sampling (BaSS, paper Eq. 4) to a uint8 image array or a dataset",
        example=EXAMPLE,
        description=(
            "Apply Balanced Spectrum Sampling (BaSS, paper §4.1, Eq. 4) exactly as published: "
            "uint8 images in, uint8 images out. As in the published code the rule is decided per "
            "channel: a channel whose spectrum makes Eq. 4 undefined (flat, black or near-black) is "
            "copied unchanged and the image's other channels are converted; images of at most 3x3 "
            "pixels are copied whole. Images with such a channel are counted as degenerate."
        ),
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--input",
        metavar="IN.npy",
        help="uint8 image array (N, H, W, C) or (H, W, C), C = 1 or 3, saved with numpy.save",
    )
    mode.add_argument(
        "--dataset",
        metavar="NAME",
        help=(
            "a registered dataset to convert (e.g. cifar10), written in its own format; folder datasets "
            "are converted at their working resolution (Tiny-ImageNet 64x64, ImageNet shorter side 256, "
            "Restricted-ImageNet 128x128): resized first, then BaSS, as in training"
        ),
    )
    parser.add_argument(
        "--output", metavar="OUT.npy", help="where to write the converted array (with --input)"
    )
    parser.add_argument("--data-root", metavar="DIR", help="folder holding the dataset (with --dataset)")
    parser.add_argument(
        "--out", metavar="DIR", help="folder to write the converted dataset to (with --dataset)"
    )
    parser.add_argument(
        "--strength",
        type=unit_interval,
        default=1.0,
        help="exponent in [0, 1] applied to the BaSS weights; 1 = published BaSS (default), 0 = identity",
    )
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=None,
        help="images converted at a time; bounds memory (default 256)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


def _convert_file(args) -> dict:
    if not args.output:  # the options before torch is imported
        raise InputError("Give --output OUT.npy to say where the converted images go.")
    if args.out or args.data_root:
        raise InputError("--out and --data-root belong to --dataset; with --input give --output OUT.npy.")
    from freqtail.bass import convert_uint8_images
    from freqtail.bass.convert import DEFAULT_CHUNK_SIZE
    from freqtail.images import check_uint8_images
    from freqtail.io import atomic_save_npy, check_writable_file, load_npy

    images = load_npy(args.input, "image array", mmap=True)
    check_writable_file(args.output, "output file")
    check_uint8_images(images, f"images in {args.input}")
    converted, n_degenerate, n_channels = convert_uint8_images(
        images,
        strength=args.strength,
        chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
        progress=True,
        count_channels=True,
    )
    atomic_save_npy(args.output, converted)
    count = 1 if converted.ndim == 3 else int(converted.shape[0])
    return {
        "input": str(args.input),
        "output": str(args.output),
        "images": count,
        "degenerate": n_degenerate,
        "degenerate_channels": n_channels,
        "strength": args.strength,
    }


def _convert_dataset(args) -> dict:
    if not args.out:
        raise InputError("Give --out DIR to say where the converted dataset goes.")
    if args.output:
        raise InputError("--output belongs to --input; with --dataset give --out DIR.")
    from freqtail.data.catalog import canonical_name
    from freqtail.io import check_writable_folder

    canonical_name(args.dataset)  # before torch is imported
    check_writable_folder(args.out, "output folder")
    from freqtail.data.bass_copies import write_bass_dataset

    result = write_bass_dataset(args.dataset, args.data_root, args.out, strength=args.strength, progress=True)
    return dict(result)


def run(args) -> int:
    result = _convert_file(args) if args.input is not None else _convert_dataset(args)
    if args.json:
        print_json(result)
    elif args.input is not None:
        print(
            f"Converted {result['images']} images with BaSS (strength {result['strength']:g}); "
            f"{result['degenerate']} had a channel that hit the degenerate rule "
            f"({result['degenerate_channels']} channels copied unchanged); wrote {result['output']}."
        )
    else:
        images, degenerate = result.get("images", "all"), result.get("degenerate", "an unknown number of")
        print(
            f"Converted {images} images of dataset {args.dataset} with BaSS (strength {args.strength:g}); "
            f"{degenerate} had a channel that hit the degenerate rule (copied unchanged); "
            f"wrote {args.out}."
        )
    return 0
