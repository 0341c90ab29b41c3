"""Wide residual networks (Zagoruyko & Komodakis, BMVC 2016), CIFAR configuration.

WRN-d-k: a 3x3 stem with 16 filters, three stages of ``(d - 4) / 6`` pre-activation blocks with
16k, 32k and 64k filters (strides 1, 2, 2), a final BN-ReLU, global average pooling and a linear
classifier. ``wrn-34-10`` is the network of TRADES, MART and Bag of Tricks for AT (46.2 M
parameters; the TRADES code also builds an unused duplicate of the first stage, which is left out
here because it never touches the output); ``wrn-40-2`` is the AugMix CIFAR network (2.2 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from freqtail.checks import check_number
from freqtail.errors import ConfigError
from freqtail.models._init import he_init_
from freqtail.models.preact_resnet import PreActBlock
from freqtail.models.registry import register_model


class WideResNet(nn.Module):
    """WRN-depth-widen_factor: float (N, in_channels, H, W) -> logits (N, num_classes).

    Attributes ``conv1``, ``block1``..``block3`` (``nn.Sequential`` of :class:`PreActBlock`), ``bn``, ``fc``.
    """

    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, in_channels: int = 3, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError(
                f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 28, 34, 40, ...), got {depth}."
            )
        check_number(drop_rate, "drop_rate", minimum=0, maximum=1, open_max=True, error=ConfigError)
        blocks_per_stage = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        stages = []
        in_planes = 16
        for index, planes in enumerate(widths):
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(blocks_per_stage):
                blocks.append(PreActBlock(in_planes, planes, stride if block_index == 0 else 1, drop_rate))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


@register_model(
    "wrn-34-10",
    aliases=("wideresnet-34-10", "wide-resnet-34-10"),
    summary="WideResNet-34-10 (TRADES / MART / Bag of Tricks); 46.2 M parameters at 10 classes",
    reference="Zagoruyko & Komodakis 2016; Zhang et al. 2019 (TRADES)",
)
def wrn_34_10(num_classes: int, *, image_size: int, in_channels: int, drop_rate: float = 0.0) -> WideResNet:
    """WRN-34-10 (5 blocks per stage, widths 160/320/640); ``drop_rate`` = dropout inside blocks."""
    return WideResNet(34, 10, num_classes, in_channels, drop_rate)


@register_model(
    "wrn-40-2",
    aliases=("wideresnet-40-2", "wide-resnet-40-2"),
    summary="WideResNet-40-2 (AugMix CIFAR default); 2.24 M parameters at 10 classes",
    reference="Zagoruyko & Komodakis 2016; Hendrycks et al. 2020 (AugMix)",
)
def wrn_40_2(num_classes: int, *, image_size: int, in_channels: int, drop_rate: float = 0.0) -> WideResNet:
    """WRN-40-2 (6 blocks per stage, widths 32/64/128); ``drop_rate`` = dropout inside blocks."""
    return WideResNet(40, 2, num_classes, in_channels, drop_rate)
