"""Pre-activation ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016).

torchvision has no pre-activation block, so it is written here. Configuration as in the
adversarial-training literature (Rice et al. 2020; Bag of Tricks for AT, Pang et al. 2021): a 3x3
stride-1 stem with 64 filters, four stages of two blocks (64, 128, 256, 512 filters, stride 2 from
the second stage on), a 1x1 projection shortcut where the shape changes, and a final BN-ReLU
before global average pooling and the classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from freqtail.models._init import he_init_
from freqtail.models.registry import register_model


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3 plus shortcut: (N, in_planes, H, W) -> (N, planes, H/s, W/s).

    When the shape changes, the shortcut is a 1x1 strided convolution applied to the block's
    pre-activation (the BN-ReLU output), as in the paper's pre-activation design. The same block,
    with dropout between the convolutions, is the WideResNet block (Zagoruyko & Komodakis 2016).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + identity


class PreActResNet(nn.Module):
    """Pre-activation ResNet for small images: float (N, in_channels, H, W) -> logits (N, num_classes)."""

    def __init__(self, blocks_per_stage: tuple[int, ...], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        stages = []
        in_planes = 64
        for index, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(num_blocks):
                blocks.append(PreActBlock(in_planes, planes, stride if block_index == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


@register_model(
    "preact-resnet18",
    aliases=("preactresnet18", "preact-resnet-18"),
    summary="pre-activation ResNet-18, CIFAR stem; 11.17 M parameters at 10 classes",
    reference="He et al. 2016 (identity mappings); Rice et al. 2020; Pang et al. 2021",
)
def preact_resnet18(num_classes: int, *, image_size: int, in_channels: int) -> PreActResNet:
    """Pre-activation ResNet-18 (2 blocks per stage); ``image_size`` does not change the architecture."""
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels)
