"""What freqtail knows about each dataset before loading it: names, classes, image size, default
augmentation preset, mean and std, kind and source (:class:`DatasetInfo`), and the one reading of a
dataset name (:func:`canonical_name`); :mod:`freqtail.data.registry` builds the datasets.

Nothing here imports NumPy or torch: the command line checks a ``--dataset`` name with it before the
library loads (docs/design.md, "Option checks before torch").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from freqtail.errors import ConfigError

BASS_MODES = ("dataset", "augment")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a registered dataset.

    Attributes:
        name: canonical name.
        num_classes: number of classes.
        image_size: (H, W) of the items.
        preset: default augmentation preset (:mod:`freqtail.data.augment`); with ``image_size`` it
            fixes the working resolution (the image BaSS sees).
        mean, std: per-channel RGB mean and standard deviation of the train images in [0, 1], for
            optional model-side normalisation.
        kind: "array" (held in memory) or "folder" (image files read on demand).
        source: where the data comes from / how to get it.
    """

    name: str
    num_classes: int
    image_size: tuple[int, int]
    preset: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str
    source: str

    def as_dict(self) -> dict:
        return asdict(self)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

#: Every registered dataset by canonical name, in listing order.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        # embedded mean/std: measured on the v1 train split (tests check them against a fresh build)
        DatasetInfo(
            "embedded",
            16,
            (32, 32),
            "crop-flip",
            (0.4659, 0.3977, 0.3747),
            (0.2542, 0.2251, 0.2299),
            "array",
            "built from photographs bundled with scikit-image (no download)",
        ),
        DatasetInfo(
            "cifar10",
            10,
            (32, 32),
            "crop-flip",
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            "array",
            "cifar-10-batches-py/ from https://www.cs.toronto.edu/~kriz/cifar.html",
        ),
        DatasetInfo(
            "cifar100",
            100,
            (32, 32),
            "crop-flip",
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
            "array",
            "cifar-100-python/ from https://www.cs.toronto.edu/~kriz/cifar.html",
        ),
        DatasetInfo(
            "tiny-imagenet",
            200,
            (64, 64),
            "crop-flip",
            (0.4802, 0.4481, 0.3975),
            (0.2770, 0.2691, 0.2821),
            "folder",
            "tiny-imagenet-200/ from http://cs231n.stanford.edu/",
        ),
        DatasetInfo(
            "imagenet",
            1000,
            (224, 224),
            "resized-crop-flip",
            _IMAGENET_MEAN,
            _IMAGENET_STD,
            "folder",
            "ILSVRC2012 train/ and val/ class folders from https://image-net.org",
        ),
        # the authors' BaSS_imagenet.py: Resize((128, 128)) -> BaSS -> flip, jitter, lighting
        DatasetInfo(
            "restricted-imagenet",
            9,
            (128, 128),
            "flip-jitter-lighting",
            (0.4717, 0.4499, 0.3837),
            (0.2600, 0.2516, 0.2575),
            "folder",
            "the ImageNet train/ and val/ class folders",
        ),
    )
}
#: Datasets whose split ``val`` is accepted as another name of their test split (ImageNet's).
IMAGENET_LIKE = ("tiny-imagenet", "imagenet", "restricted-imagenet")


def dataset_names() -> list[str]:
    """Canonical names of the registered datasets."""
    return list(DATASETS)


def canonical_name(name: str) -> str:
    """Canonical dataset name; case, '-' and '_' are ignored ("CIFAR-10" -> "cifar10").

    Raises:
        ConfigError: unknown name (the sentence lists the valid ones).
    """

    def squash(text: str) -> str:
        return text.lower().replace("-", "").replace("_", "").replace(" ", "")

    if isinstance(name, str):
        for canonical in DATASETS:
            if squash(name) == squash(canonical):
                return canonical
    raise ConfigError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")


def dataset_info(name: str) -> DatasetInfo:
    """Number of classes, image size, default augmentation preset and standard mean/std of ``name``."""
    return DATASETS[canonical_name(name)]
