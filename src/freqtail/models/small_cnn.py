"""A small, fast CNN for CPU experiments, tests and demos (freqtail's own design).

Four conv3x3-BN-ReLU layers with ``width``, 2x, 4x and 8x filters, a 2x2 max-pool after each of
the first three, global average pooling and a linear classifier. At ``width=32`` it has 0.39 M
parameters and costs about 15 M multiply-adds per 32x32 image (most of it after pooling), so it
trains on the embedded dataset in CPU minutes while still learning real image features.

``norm`` chooses the normalisation after each convolution: ``"batch"`` (BatchNorm, the default),
``"group"`` (GroupNorm with ``gcd(channels, 8)`` groups) or ``"none"`` (the convolutions get a
bias instead). Without BatchNorm an image's output does not depend on the other images of its
batch, so training with N processes under torchrun computes what one process computes (up to
float summation order); see docs/guides/training.md, "Many GPUs and machines".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from freqtail.checks import check_choice, check_int
from freqtail.errors import ConfigError
from freqtail.models._init import he_init_
from freqtail.models.registry import register_model

#: Values of small-cnn's ``norm`` option.
NORMS = ("batch", "group", "none")


def _conv_norm_relu(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=norm == "none")
    if norm == "batch":
        return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
    if norm == "group":
        groups = math.gcd(out_channels, 8)
        return nn.Sequential(conv, nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """float (N, in_channels, H, W) -> logits (N, num_classes); H, W >= 1 (pooling floors odd sizes).

    Attributes ``features`` (``nn.Sequential``) and ``fc``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        check_int(width, "small-cnn width", minimum=1, error=ConfigError)
        check_choice(norm, NORMS, "small-cnn norm", error=ConfigError)
        widths = (width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        previous = in_channels
        for index, channels in enumerate(widths):
            layers.append(_conv_norm_relu(previous, channels, norm))
            if index < len(widths) - 1:
                # ceil_mode keeps a 1-pixel map alive, so tiny inputs never pool down to zero size.
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            previous = channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(previous, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model(
    "small-cnn",
    aliases=("smallcnn",),
    summary="4-layer conv-BN-ReLU CNN for CPU runs; 0.39 M parameters at width 32, 10 classes; "
    "norm: batch, group or none",
    reference="freqtail",
)
def small_cnn(
    num_classes: int, *, image_size: int, in_channels: int, width: int = 32, norm: str = "batch"
) -> SmallCNN:
    """The small CNN; ``width`` = filters of the first layer (the others are 2x, 4x, 8x); ``norm``
    = ``"batch"``, ``"group"`` (GroupNorm, no batch statistics) or ``"none"`` (biased convolutions)."""
    return SmallCNN(num_classes, in_channels, width, norm)
