"""ResNet-18 and ResNet-50 (He et al., CVPR 2016) built from torchvision's ResNet.

``resnet18`` is the CIFAR variant used throughout the adversarial-robustness literature (a 3x3
stride-1 stem and no max-pool, so 32x32 inputs reach the last stage at 4x4). ``resnet50`` keeps
torchvision's ImageNet stem (7x7 stride-2 conv + max-pool) for large inputs and switches to the
CIFAR stem for small ones. Both end in global average pooling, so any input size works; the
state-dict keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from freqtail.checks import check_choice
from freqtail.errors import ConfigError
from freqtail.models.registry import register_model

STEMS = ("auto", "cifar", "imagenet")
# Inputs at most this many pixels wide get the CIFAR stem under stem="auto" (CIFAR 32, Tiny-ImageNet 64).
SMALL_IMAGE_MAX = 64


def _resolve_stem(stem: str, image_size: int) -> str:
    check_choice(stem, STEMS, "stem", error=ConfigError)
    if stem == "auto":
        return "cifar" if image_size <= SMALL_IMAGE_MAX else "imagenet"
    return stem


def _set_stem(model: ResNet, stem: str, in_channels: int) -> ResNet:
    """Replace torchvision's stem: CIFAR = 3x3 stride-1 conv, no max-pool; ImageNet = 7x7 stride 2 + pool."""
    if stem == "cifar":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        return model
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


@register_model(
    "resnet18",
    aliases=("resnet-18",),
    summary="ResNet-18, CIFAR stem (3x3 conv, no max-pool); 11.17 M parameters at 10 classes",
    reference="He et al. 2016; the CIFAR variant of the PGD-AT/TRADES/MART literature",
)
def resnet18(
    num_classes: int,
    *,
    image_size: int,
    in_channels: int,
    stem: str = "cifar",
    zero_init_residual: bool = False,
) -> ResNet:
    """CIFAR ResNet-18: float (N, in_channels, H, W) -> logits (N, num_classes).

    ``stem``: "cifar" (default), "imagenet" (7x7 stride 2 + max-pool) or "auto" (by ``image_size``).
    ``zero_init_residual``: zero the last BN gamma of each block (torchvision's option).
    """
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, zero_init_residual=zero_init_residual)
    return _set_stem(model, _resolve_stem(stem, image_size), in_channels)


@register_model(
    "resnet50",
    aliases=("resnet-50",),
    summary="torchvision ResNet-50 (ImageNet stem above 64 px, CIFAR stem up to 64 px); 25.6 M parameters",
    reference="He et al. 2016; torchvision.models.resnet50",
)
def resnet50(
    num_classes: int,
    *,
    image_size: int,
    in_channels: int,
    stem: str = "auto",
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50 (bottleneck blocks [3, 4, 6, 3]): float (N, in_channels, H, W) -> logits (N, num_classes).

    ``stem="auto"`` (default) uses torchvision's ImageNet stem when ``image_size > 64`` and the CIFAR
    stem (3x3 stride-1 conv, no max-pool) otherwise; "cifar" or "imagenet" force one.
    """
    model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, zero_init_residual=zero_init_residual)
    return _set_stem(model, _resolve_stem(stem, image_size), in_channels)
