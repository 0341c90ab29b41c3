"""``freqtail download``: fetch a public dataset into ``--data-root`` with torchvision's downloader.

Nothing in freqtail downloads on its own; this command is the explicit way to do it where the network
allows (CIFAR-10, CIFAR-100, Tiny-ImageNet). ImageNet must be obtained from image-net.org.
"""

from __future__ import annotations

from freqtail.commands._common import add_parser, print_json

DOWNLOADABLE = ("cifar10", "cifar100", "tiny-imagenet")


def register(subparsers) -> None:
    parser = add_parser(
        subparsers,
        "download",
        help="download CIFAR-10, CIFAR-100 or Tiny-ImageNet into a data root (needs network access)",
        example="freqtail download cifar10 --data-root ~/data",
    )
    parser.add_argument("dataset", help=f"one of {', '.join(DOWNLOADABLE)}")
    parser.add_argument("--data-root", metavar="DIR", required=True, help="folder to download into")
    parser.add_argument("--json", action="store_true", help="print what was found as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from freqtail.data.catalog import canonical_name
    from freqtail.errors import ConfigError, DatasetNotFoundError

    name = canonical_name(args.dataset)
    if name not in DOWNLOADABLE:
        raise ConfigError(
            f"freqtail can download {', '.join(DOWNLOADABLE)}, not {args.dataset!r}; "
            "ImageNet and Restricted-ImageNet must come from https://image-net.org."
        )
    from freqtail.data import build_dataset

    sizes = {}
    for split in ("train", "test"):
        try:
            sizes[split] = len(build_dataset(name, split, args.data_root, download=True))
        except (OSError, RuntimeError) as err:  # network refused, checksum mismatch, disk full
            raise DatasetNotFoundError(
                f"Downloading {name} into {args.data_root} failed ({err}); check the network or download "
                "the archive by hand as docs/guides/data.md describes."
            ) from None
    if args.json:
        print_json({"dataset": name, "data_root": str(args.data_root), "images": sizes})
    else:
        print(f"{name} is ready in {args.data_root}: {sizes['train']} train and {sizes['test']} test images.")
    return 0
