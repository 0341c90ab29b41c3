"""Augmentation presets of the paper's baselines, each in two parts around BaSS.

BaSS is not resolution-invariant, so every preset names its **working resolution**: a deterministic
resize (:class:`WorkingResize`, PIL's bilinear filter, both splits) to the image that BaSS sees. An
item is built as::

    decode -> working resize -> [BaSS] -> rest of the preset (train: random; test: deterministic)
           -> float32 in [0, 1]        (normalisation happens inside the model, not here)

Presets (:func:`preset_parts` gives the two parts; :func:`augmentation_preset` composes them):

* ``crop-flip``: resize to ``(H, W)``; train ``RandomCrop((H, W), padding=4)`` + horizontal flip;
  test identity.
* ``resized-crop-flip``: resize the shorter side to ``S * 256 / 224``; train
  ``RandomResizedCrop((H, W))`` + flip; test ``CenterCrop((H, W))``.
* ``flip-jitter-lighting``: resize to ``(H, W)``; train flip and ``ColorJitter(0.1, 0.1, 0.1)`` on the
  PIL image, to float, :class:`Lighting` (alphastd 0.05); test identity.
* ``none``: the resize and the test rest of the size class (:func:`default_preset`), both splits
  (``build_dataset`` instead uses the dataset's own preset's test part for ``"none"``).

``S = min(H, W)`` (256 for 224 px). ``crop-flip``'s padding follows ``pad_mode`` (:data:`PAD_MODES`):
``"zeros"`` is torchvision's ``padding_mode="constant"`` with fill 0 (MART's and AugMix's
``RandomCrop(32, padding=4)``), ``"reflect"`` torchvision's ``padding_mode="reflect"`` = ``np.pad``
mode ``"reflect"`` (the edge pixel is not repeated; the authors' Bag-of-Tricks ``utils.py``).
``flip-jitter-lighting`` is the authors' Restricted-ImageNet pipeline (``BaSS_imagenet.py``:
``Resize((128, 128))`` -> BaSS -> ``RandomHorizontalFlip`` -> ``ColorJitter(0.1, 0.1, 0.1)`` -> to
tensor -> lighting; test ``Resize((128, 128))`` -> BaSS -> to tensor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from freqtail.errors import ConfigError

#: Largest side (pixels) treated as CIFAR-size.
CIFAR_SIZE_LIMIT = 64
PRESETS = ("crop-flip", "resized-crop-flip", "flip-jitter-lighting", "none")
#: Padding of crop-flip's random crop: "zeros" (torchvision padding_mode="constant", fill 0) or
#: "reflect" (torchvision padding_mode="reflect", np.pad mode "reflect").
PAD_MODES = ("zeros", "reflect")
CROP_PADDING = 4
#: PCA of ImageNet RGB pixels in [0, 1] (the ``robustness`` library's ``IMAGENET_PCA``).
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def default_preset(image_size: tuple[int, int]) -> str:
    """``"crop-flip"`` for images of at most 64 px a side, else ``"resized-crop-flip"``."""
    return "crop-flip" if max(image_size) <= CIFAR_SIZE_LIMIT else "resized-crop-flip"


def check_preset(name: str) -> str:
    """``name`` if it is a preset, else :class:`ConfigError` listing them."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return name


def check_pad_mode(pad_mode: str) -> str:
    if pad_mode not in PAD_MODES:
        raise ConfigError(f"Unknown pad_mode {pad_mode!r}; choose one of {', '.join(PAD_MODES)}.")
    return pad_mode


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if h < 1 or w < 1:
        raise ConfigError(f"The image size must be positive, not {image_size!r}.")
    return int(h), int(w)


@dataclass(frozen=True)
class WorkingResize:
    """The deterministic resize to a preset's working resolution, with PIL's bilinear filter.

    PIL's filter is the one torchvision's ``Resize`` applies to PIL images (the authors' pipelines
    and torchvision's ImageNet reference decode to PIL); it antialiases when shrinking.

    Attributes:
        mode: ``"exact"`` (to ``size = (H, W)``, aspect not kept) or ``"shorter"`` (shorter side to
            ``size[0]``, aspect kept; the long side is ``int(size * long / short)``, torchvision's rule).
        size: ``(H, W)`` or ``(shorter side,)`` in pixels.
    """

    mode: str
    size: tuple[int, ...]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) in pixels of the resized image for a stored image of ``height`` x ``width``."""
        if self.mode == "exact":
            return self.size[0], self.size[1]
        short, long = sorted((height, width))
        new_long = int(self.size[0] * long / short)
        return (self.size[0], new_long) if height <= width else (new_long, self.size[0])

    @property
    def key(self) -> str:
        """A short text naming the resize (part of the BaSS cache keys)."""
        return f"pil-bilinear-{self.mode}-" + "x".join(str(s) for s in self.size)

    def __call__(self, image):
        """uint8 (H, W, 3) numpy or uint8 (3, H, W) tensor -> the same type at the working size.

        An image that already has the working size is returned unchanged (no resampling).
        """
        is_tensor = isinstance(image, torch.Tensor)
        array = image.permute(1, 2, 0).numpy() if is_tensor else image
        height, width = array.shape[:2]
        target = self.output_size(height, width)
        if target == (height, width):
            return image
        pil = Image.fromarray(np.ascontiguousarray(array))
        resized = np.asarray(pil.resize((target[1], target[0]), Image.BILINEAR), dtype=np.uint8).copy()
        return torch.from_numpy(resized).permute(2, 0, 1) if is_tensor else resized

    def __repr__(self) -> str:
        return f"WorkingResize({self.key})"


class Lighting(torch.nn.Module):
    """PCA lighting noise of AlexNet, as the ``robustness`` library's ``Lighting`` computes it.

    Per image: ``alpha ~ N(0, alphastd)`` (3 values, one ``normal_`` draw from torch's RNG);
    ``rgb = eigvec @ (alpha * eigval)`` is added to every pixel of a float (3, H, W) image in
    [0, 1]. The reference does **not** clamp, so values may leave [0, 1] by a few thousandths
    (``clamp=False``, the default); ``clamp=True`` clamps to [0, 1] (a freqtail option).
    """

    def __init__(self, alphastd: float = 0.05, clamp: bool = False) -> None:
        super().__init__()
        self.alphastd = float(alphastd)
        self.clamp = bool(clamp)
        self.register_buffer("eigval", torch.tensor(IMAGENET_EIGVAL), persistent=False)
        self.register_buffer("eigvec", torch.tensor(IMAGENET_EIGVEC), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not image.is_floating_point() or image.ndim != 3 or image.shape[0] != 3:
            raise ConfigError(
                f"Lighting takes a float (3, H, W) image in [0, 1], not {image.dtype} {tuple(image.shape)}."
            )
        if self.alphastd == 0:
            return image
        alpha = torch.empty(3, dtype=image.dtype).normal_(0, self.alphastd)
        # The reference's arithmetic order: (eigvec * alpha[j] * eigval[j]) summed over j.
        rgb = (self.eigvec.to(image.dtype) * alpha.view(1, 3) * self.eigval.to(image.dtype).view(1, 3)).sum(1)
        out = image + rgb.view(3, 1, 1)
        return out.clamp_(0.0, 1.0) if self.clamp else out

    def extra_repr(self) -> str:
        return f"alphastd={self.alphastd}, clamp={self.clamp}"


def working_resize(name: str, image_size: int | tuple[int, int]) -> WorkingResize:
    """The working-resolution resize of preset ``name`` for items of ``image_size`` (H, W)."""
    h, w = _size(image_size)
    name = check_preset(name)
    if name == "none":
        name = default_preset((h, w))
    if name == "resized-crop-flip":
        return WorkingResize("shorter", (round(min(h, w) * 256 / 224),))
    return WorkingResize("exact", (h, w))


def _rest(name: str, size: tuple[int, int], train: bool, pad_mode: str):
    if name == "none":
        name, train = default_preset(size), False
    if name == "resized-crop-flip":
        if train:
            return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])
        return v2.CenterCrop(size)
    if not train:
        return v2.Identity()
    if name == "crop-flip":
        padding_mode = "constant" if pad_mode == "zeros" else pad_mode
        crop = v2.RandomCrop(size, padding=CROP_PADDING, fill=0, padding_mode=padding_mode)
        return v2.Compose([crop, v2.RandomHorizontalFlip()])
    # flip-jitter-lighting: flip and jitter on PIL images, as the authors' torchvision pipeline does
    return v2.Compose(
        [
            v2.ToPILImage(),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.1, 0.1, 0.1),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            Lighting(0.05),
        ]
    )


def preset_parts(
    name: str, image_size: int | tuple[int, int], *, train: bool = True, pad_mode: str = "zeros"
) -> tuple[WorkingResize, object]:
    """``(working resize, rest)`` of preset ``name`` for items of ``image_size`` (H, W).

    ``rest`` takes the uint8 (3, h, w) tensor at the working resolution (after BaSS, if any) and
    returns the item at ``image_size``: uint8, or float32 in [0, 1] for ``flip-jitter-lighting``'s
    train split (its lighting noise is float). ``train=False`` gives the deterministic test rest.

    Raises:
        ConfigError: unknown preset or pad mode.
    """
    size = _size(image_size)
    check_pad_mode(pad_mode)
    return working_resize(name, size), _rest(check_preset(name), size, train, pad_mode)


def augmentation_preset(
    name: str,
    image_size: int | tuple[int, int],
    train: bool = True,
    resize: bool = True,
    pad_mode: str = "zeros",
):
    """The named preset's whole train (``train=True``) or test transform on a uint8 (3, H, W) tensor.

    ``resize=False`` leaves out the working resize (for images known to be at the working size).

    Raises:
        ConfigError: unknown preset name or pad mode.
    """
    first, rest = preset_parts(name, image_size, train=train, pad_mode=pad_mode)
    return v2.Compose([first, rest]) if resize else rest


def eval_transform(image_size: int | tuple[int, int]):
    """The deterministic transform of the size class (:func:`default_preset`) to ``image_size``."""
    return augmentation_preset(default_preset(_size(image_size)), image_size, train=False)


def standard_augmentation(image_size: int | tuple[int, int], train: bool = True):
    """The paper baselines' augmentation for ``image_size``: crop-flip (<= 64 px) or resized-crop-flip.

    Example:
        >>> import torch
        >>> augment = standard_augmentation(32)
        >>> augment(torch.zeros(3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    return augmentation_preset(default_preset(_size(image_size)), image_size, train=train)
