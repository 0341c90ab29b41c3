"""ResNeXt-29 for CIFAR (Xie et al., CVPR 2017) from torchvision's Bottleneck block.

The CIFAR ResNeXt: a 3x3 stem with 64 filters, three stages of ``(depth - 2) / 9`` grouped
bottleneck blocks (type C) with 64, 128 and 256 base planes (output 4x that; strides 1, 2, 2),
projection shortcuts (1x1 conv + BN) where the shape changes, global average pooling and a linear
classifier. torchvision's ``Bottleneck(groups=cardinality, base_width=...)`` is exactly the type-C
block: ``floor(planes * base_width / 64) * cardinality`` grouped 3x3 channels, stride on the 3x3.

``resnext29-32x4d`` follows the network that AugMix's CIFAR script builds (``resnext29()`` in its
``third_party/ResNeXt_DenseNet``): cardinality 4 and base width 32, i.e. 128 grouped channels in
the first stage, 6.8 M parameters at 10 classes. (In ResNeXt-paper notation "CxDd" that is 4x32d;
a true 32-group, 4-channel-per-group network has the same widths but 4.8 M parameters: pass
``cardinality=32, base_width=4`` for it.)
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from freqtail.checks import check_int
from freqtail.errors import ConfigError
from freqtail.models._init import he_init_
from freqtail.models.registry import register_model


class CifarResNeXt(nn.Module):
    """ResNeXt-depth for small images: float (N, in_channels, H, W) -> logits (N, num_classes).

    Attributes ``conv1``, ``bn1``, ``stage1``..``stage3`` (``nn.Sequential`` of torchvision
    ``Bottleneck``), ``fc``.
    """

    def __init__(
        self, depth: int, cardinality: int, base_width: int, num_classes: int, in_channels: int = 3
    ) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9:
            raise ConfigError(f"ResNeXt depth must be 9n + 2 with n >= 1 (11, 20, 29, 38, ...), got {depth}.")
        for value, what in ((cardinality, "cardinality"), (base_width, "base_width")):
            check_int(value, f"ResNeXt {what}", minimum=1, error=ConfigError)
        blocks_per_stage = (depth - 2) // 9
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        in_planes = 64
        stages = []
        for index, planes in enumerate((64, 128, 256)):
            stride = 1 if index == 0 else 2
            out_planes = planes * Bottleneck.expansion
            blocks = []
            for block_index in range(blocks_per_stage):
                block_stride = stride if block_index == 0 else 1
                downsample = None
                if block_stride != 1 or in_planes != out_planes:
                    downsample = nn.Sequential(
                        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=block_stride, bias=False),
                        nn.BatchNorm2d(out_planes),
                    )
                blocks.append(
                    Bottleneck(
                        in_planes, planes, block_stride, downsample, groups=cardinality, base_width=base_width
                    )
                )
                in_planes = out_planes
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.stage3(self.stage2(self.stage1(out)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


@register_model(
    "resnext29-32x4d",
    aliases=("resnext29", "resnext-29"),
    summary="ResNeXt-29 as in AugMix's CIFAR code (cardinality 4, base width 32); 6.8 M parameters",
    reference="Xie et al. 2017; Hendrycks et al. 2020 (AugMix) third_party/ResNeXt_DenseNet",
)
def resnext29_32x4d(
    num_classes: int, *, image_size: int, in_channels: int, cardinality: int = 4, base_width: int = 32
) -> CifarResNeXt:
    """ResNeXt-29 (3 blocks per stage); ``cardinality`` groups of ``base_width``-derived width."""
    return CifarResNeXt(29, cardinality, base_width, num_classes, in_channels)
