"""DenseNet-BC for CIFAR (Huang et al., CVPR 2017) from torchvision's dense blocks.

DenseNet-BC-L-k: a 3x3 stem with 2k filters, three dense blocks of ``(L - 4) / 6`` bottleneck
layers (BN-ReLU-conv1x1 to 4k channels, BN-ReLU-conv3x3 to k channels, concatenated), transitions
with compression 0.5 (BN-ReLU-conv1x1, 2x2 average pooling) between blocks, a final BN-ReLU,
global average pooling and a linear classifier. L=100, k=12 has 0.77 M parameters at 10 classes
(the DenseNet paper's "0.8 M"), the network the AugMix paper names.

torchvision's ``_DenseBlock`` and ``_Transition`` (private, but unchanged since torchvision 0.3)
are exactly these layers with ``bn_size=4``, so they are reused rather than rewritten.

Note: AugMix's CIFAR script, run with its defaults, calls ``densenet()`` with depth 40 and no
bottleneck or compression (a DenseNet-40-12 of about 1.06 M parameters), not the BC-100-12 of its paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.densenet import _DenseBlock, _Transition

from freqtail.checks import check_int, check_number
from freqtail.errors import ConfigError
from freqtail.models._init import he_init_
from freqtail.models.registry import register_model

BOTTLENECK_WIDTH = 4  # bottleneck 1x1 conv outputs BOTTLENECK_WIDTH * growth_rate channels (the "B" in BC)


class CifarDenseNetBC(nn.Module):
    """DenseNet-BC-depth-growth_rate: float (N, in_channels, H, W) -> logits (N, num_classes).

    Attributes ``conv1``, ``dense1``..``dense3`` (torchvision ``_DenseBlock``), ``trans1``, ``trans2``
    (torchvision ``_Transition``), ``bn``, ``fc``.
    """

    def __init__(
        self,
        depth: int,
        growth_rate: int,
        num_classes: int,
        in_channels: int = 3,
        compression: float = 0.5,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError(
                f"DenseNet-BC depth must be 6n + 4 with n >= 1 (10, 40, 100, ...), got {depth}."
            )
        check_int(growth_rate, "DenseNet growth_rate", minimum=1, error=ConfigError)
        check_number(
            compression, "DenseNet compression", minimum=0, maximum=1, open_min=True, error=ConfigError
        )
        check_number(drop_rate, "drop_rate", minimum=0, maximum=1, open_max=True, error=ConfigError)
        layers_per_block = (depth - 4) // 6
        channels = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        blocks, transitions = [], []
        for index in range(3):
            blocks.append(_DenseBlock(layers_per_block, channels, BOTTLENECK_WIDTH, growth_rate, drop_rate))
            channels += layers_per_block * growth_rate
            if index < 2:
                out_channels = math.floor(channels * compression)
                transitions.append(_Transition(channels, out_channels))
                channels = out_channels
        self.dense1, self.dense2, self.dense3 = blocks
        self.trans1, self.trans2 = transitions
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trans1(self.dense1(self.conv1(x)))
        out = self.trans2(self.dense2(out))
        out = F.relu(self.bn(self.dense3(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


@register_model(
    "densenet-bc",
    aliases=("densenet-bc-100-12", "densenet"),
    summary="DenseNet-BC, L=100, k=12 (AugMix paper); 0.77 M parameters at 10 classes",
    reference="Huang et al. 2017; Hendrycks et al. 2020 (AugMix)",
)
def densenet_bc(
    num_classes: int,
    *,
    image_size: int,
    in_channels: int,
    depth: int = 100,
    growth_rate: int = 12,
    drop_rate: float = 0.0,
) -> CifarDenseNetBC:
    """DenseNet-BC-``depth``-``growth_rate``, compression 0.5; ``drop_rate``: dropout after each layer."""
    return CifarDenseNetBC(depth, growth_rate, num_classes, in_channels, 0.5, drop_rate)
