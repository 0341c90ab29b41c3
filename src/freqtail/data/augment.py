"""Augmentation presets of the paper's baselines, on ``torchvision.transforms.v2``.

Presets (all take and return a uint8 (C, H, W) image tensor or PIL image):

* ``"crop-flip"`` (CIFAR-size images, <= 64 px): train = ``RandomCrop(size, padding=4)`` (zero
  padding) + ``RandomHorizontalFlip()``; test = identity (a ``Resize`` first if the stored image has
  another size).
* ``"resized-crop-flip"`` (ImageNet-size images): train = ``RandomResizedCrop(size)`` +
  ``RandomHorizontalFlip()``; test = ``Resize(size * 256 / 224)`` + ``CenterCrop(size)`` (256 / 224
  for 224 px).
* ``"none"``: test transform of the size class for both splits (no randomness).
"""

from __future__ import annotations

from freqtail.errors import ConfigError

#: Largest side (pixels) treated as CIFAR-size.
CIFAR_SIZE_LIMIT = 64
PRESETS = ("crop-flip", "resized-crop-flip", "none")


def default_preset(image_size: tuple[int, int]) -> str:
    """``"crop-flip"`` for images of at most 64 px a side, else ``"resized-crop-flip"``."""
    return "crop-flip" if max(image_size) <= CIFAR_SIZE_LIMIT else "resized-crop-flip"


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if h < 1 or w < 1:
        raise ConfigError(f"The image size must be positive, not {image_size!r}.")
    return int(h), int(w)


def eval_transform(image_size: int | tuple[int, int], resize_small: bool = True):
    """Deterministic transform to ``image_size`` (test split, and train without augmentation).

    CIFAR-size: a ``Resize`` to exactly ``image_size`` (a no-op when the stored image already has
    that size); ImageNet-size: ``Resize(shorter side = size * 256 / 224)`` + ``CenterCrop(size)``.
    ``resize_small=False`` returns the identity for CIFAR-size (stored arrays that are known to fit).
    """
    from torchvision.transforms import v2

    h, w = _size(image_size)
    if max(h, w) <= CIFAR_SIZE_LIMIT:
        return v2.Resize((h, w), antialias=True) if resize_small else v2.Identity()
    return v2.Compose([v2.Resize(round(min(h, w) * 256 / 224), antialias=True), v2.CenterCrop((h, w))])


def augmentation_preset(
    name: str, image_size: int | tuple[int, int], train: bool = True, resize_small: bool = True
):
    """The named preset's train (``train=True``) or test transform for images of ``image_size``.

    Raises:
        ConfigError: unknown preset name.
    """
    from torchvision.transforms import v2

    if name not in PRESETS:
        raise ConfigError(f"Unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}.")
    h, w = _size(image_size)
    if not train or name == "none":
        return eval_transform((h, w), resize_small=resize_small)
    if name == "crop-flip":
        steps = [v2.Resize((h, w), antialias=True)] if resize_small else []
        return v2.Compose([*steps, v2.RandomCrop((h, w), padding=4), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.RandomResizedCrop((h, w), antialias=True), v2.RandomHorizontalFlip()])


def standard_augmentation(image_size: int | tuple[int, int], train: bool = True):
    """The paper baselines' augmentation for ``image_size``: crop-flip (<= 64 px) or resized-crop-flip.

    Example:
        >>> import torch
        >>> augment = standard_augmentation(32)
        >>> augment(torch.zeros(3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    return augmentation_preset(default_preset(_size(image_size)), image_size, train=train)
