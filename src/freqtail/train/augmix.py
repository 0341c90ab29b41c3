"""AugMix (Hendrycks et al., ICLR 2020) on torchvision's operations, and the dataset that feeds
the JSD objective its three branches — optionally with BaSS on one branch (paper §4.4).

The operations and their severity scaling follow the AugMix CIFAR code: autocontrast, equalize,
posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y (the ``augmentations``
list, without the operations that overlap the corruption benchmark). An operation's level is drawn
uniformly in ``[0.1, severity]`` and scaled to its range at level 10:

=============  ===========================================  =======================
operation      parameter at level l                          severity 3 gives
=============  ===========================================  =======================
posterize      keep ``4 - int(l * 4 / 10)`` bits             4 or 3 bits
rotate         ``± int(l * 30 / 10)`` degrees, bilinear      0-8 degrees
solarize       invert pixels ``>= 256 - int(l * 256 / 10)``  threshold 180-256
shear_x/y      factor ``± l * 0.3 / 10``, bilinear           up to 0.09
translate_x/y  ``± int(l * (side / 3) / 10)`` pixels         0-3 px at 32 px
=============  ===========================================  =======================

One mixed image: ``w ~ Dirichlet(alpha, ..., alpha)`` (``width`` chains), ``m ~ Beta(alpha, alpha)``;
chain ``i`` applies ``depth`` random operations (``depth = 0``: 1-3 at random) to the image;
``mixed = (1 - m) * x + m * sum_i w_i * chain_i(x)``, computed on [0, 1] floats (the published code
mixes after a per-channel affine normalisation, which commutes with this convex combination).

All random draws use torch's global RNG, which the trainer seeds per sample (seed, epoch, index).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from freqtail.errors import ConfigError

AUGMIX_OPERATIONS = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)


def _sample_level(severity: float) -> float:
    """Uniform in [0.1, severity] (the published ``sample_level``)."""
    return 0.1 + (float(severity) - 0.1) * float(torch.rand(()))


def _int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def _float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10


def _random_sign(value: float) -> float:
    return -value if float(torch.rand(())) > 0.5 else value


def apply_operation(name: str, image: torch.Tensor, level: float, sign: float = 1.0) -> torch.Tensor:
    """One AugMix operation at a given ``level`` in [0, 10] and ``sign`` (+1 / -1) on uint8 (C, H, W).

    Deterministic given its arguments (the random choices are made by :func:`random_operation`).
    Geometric operations pivot on the top-left corner and fill with black, as PIL's do.
    """
    bilinear = InterpolationMode.BILINEAR
    height, width = image.shape[-2:]
    if name == "autocontrast":
        return TF.autocontrast(image)
    if name == "equalize":
        return TF.equalize(image)
    if name == "posterize":
        return TF.posterize(image, 4 - _int_parameter(level, 4))
    if name == "solarize":
        threshold = 256 - _int_parameter(level, 256)
        return image if threshold > 255 else TF.solarize(image, threshold)
    if name == "rotate":
        return TF.rotate(image, sign * _int_parameter(level, 30), interpolation=bilinear)
    if name in ("shear_x", "shear_y"):
        # torchvision's shear angle s maps to PIL's affine factor tan(s).
        angle = math.degrees(math.atan(sign * _float_parameter(level, 0.3)))
        shear = [angle, 0.0] if name == "shear_x" else [0.0, angle]
        return TF.affine(image, 0.0, [0, 0], 1.0, shear, interpolation=bilinear, center=[0, 0])
    if name in ("translate_x", "translate_y"):
        side = width if name == "translate_x" else height
        pixels = sign * _int_parameter(level, side / 3)
        shift = [-pixels, 0] if name == "translate_x" else [0, -pixels]
        return TF.affine(image, 0.0, shift, 1.0, [0.0, 0.0], interpolation=bilinear)
    raise ConfigError(f"Unknown AugMix operation {name!r}; valid: {', '.join(AUGMIX_OPERATIONS)}.")


def random_operation(image: torch.Tensor, severity: int) -> torch.Tensor:
    """A uniformly chosen operation with a random level in [0.1, severity] and a random sign."""
    name = AUGMIX_OPERATIONS[int(torch.randint(len(AUGMIX_OPERATIONS), ()))]
    level = _sample_level(severity)
    sign = _random_sign(1.0)
    return apply_operation(name, image, level, sign)


def augmix_image(
    image: torch.Tensor, *, width: int = 3, depth: int = 0, severity: int = 3, alpha: float = 1.0
) -> torch.Tensor:
    """AugMix one uint8 (C, H, W) image -> float32 (C, H, W) in [0, 1] (see the module docstring).

    ``depth = 0`` draws 1-3 operations per chain.
    """
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ConfigError(f"AugMix takes one uint8 (C, H, W) image, not {image.dtype} {tuple(image.shape)}.")
    weights = torch.distributions.Dirichlet(torch.full((width,), float(alpha))).sample()
    m = float(torch.distributions.Beta(float(alpha), float(alpha)).sample())
    mix = torch.zeros(image.shape, dtype=torch.float32)
    for chain in range(width):
        augmented = image
        chain_depth = depth if depth > 0 else int(torch.randint(1, 4, ()))
        for _ in range(chain_depth):
            augmented = random_operation(augmented, severity)
        mix.add_(augmented.to(torch.float32).div_(255.0), alpha=float(weights[chain]))
    return image.to(torch.float32).div_(255.0).mul_(1.0 - m).add_(mix, alpha=m)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (C, H, W) in [0, 1] that came from uint8 -> the same uint8 image (exact)."""
    if x.dtype == torch.uint8:
        return x
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class AugMixDataset(Dataset):
    """Items ``((x, x_augmix1, x_augmix2), label)`` for the JSD objective, from any freqtail dataset.

    ``x`` is the base item (after the base dataset's own augmentation: crop + flip), float (C, H, W)
    in [0, 1]; each ``x_augmix`` mixes independent AugMix chains of ``x``.

    With ``bass_base`` (paper §4.4), the first branch is ``AugMix(crop_flip(BaSS(image)))``: BaSS is
    applied to the whole stored image (``bass_base`` is the same dataset converted once with BaSS,
    ``build_dataset(..., bass="dataset")``, like :class:`freqtail.train.data.BaSSMixture`), and the
    crop and flip are **the clean image's**: ``bass_base[index]`` is drawn from the same RNG state
    as ``base[index]``, so the two transforms draw the same parameters. AugMix's reference code
    shares the crop and flip between all three branches too (they are applied before the AugMix
    chains). BaSS therefore never sees the crop's padding, and padded pixels stay exactly as the
    crop made them. The clean and second branches are untouched: the consistency of
    (x, AugMix(BaSS(x)), AugMix(x)).

    Args:
        base: dataset of ``(float (C, H, W) in [0, 1], int)`` whose images are uint8-valued.
        width, depth, severity, alpha: AugMix settings (:func:`augmix_image`).
        bass_base: the BaSS-converted twin of ``base`` (same length, same transform), or None.
        mixer: replaces :func:`augmix_image` (uint8 (C, H, W) -> float (C, H, W)); for tests.
    """

    def __init__(
        self,
        base: Dataset,
        *,
        width: int = 3,
        depth: int = 0,
        severity: int = 3,
        alpha: float = 1.0,
        bass_base: Dataset | None = None,
        mixer: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if bass_base is not None and len(bass_base) != len(base):
            raise ConfigError(
                f"The BaSS twin of the AugMix dataset has {len(bass_base)} items, not {len(base)}."
            )
        self.base = base
        self.bass_base = bass_base
        self.mixer = mixer or partial(augmix_image, width=width, depth=depth, severity=severity, alpha=alpha)
        for attribute in ("classes", "num_classes", "image_size", "name"):
            if hasattr(base, attribute):
                setattr(self, attribute, getattr(base, attribute))

    @property
    def bass_branch(self) -> bool:
        return self.bass_base is not None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], int]:
        before = torch.get_rng_state() if self.bass_base is not None else None
        x, label = self.base[index]
        image = _to_uint8(x)
        first = image
        if self.bass_base is not None:
            after = torch.get_rng_state()
            torch.set_rng_state(before)  # the same crop and flip as the clean image
            first = _to_uint8(self.bass_base[index][0])
            torch.set_rng_state(after)
        clean = x if x.dtype != torch.uint8 else x.to(torch.float32).div_(255.0)
        return (clean, self.mixer(first), self.mixer(image)), label
