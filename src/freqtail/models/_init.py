"""Weight initialisation shared by the CIFAR architectures."""

from __future__ import annotations

from torch import nn


def he_init_(model: nn.Module) -> nn.Module:
    """He-normal (fan-out) convolutions, BatchNorm gamma 1 / beta 0, zero linear biases; in place.

    This is the initialisation of the reference WideResNet, ResNeXt and DenseNet CIFAR code (their
    ``normal(0, sqrt(2 / (k * k * out_channels)))`` is He-normal with fan-out) and of torchvision's ResNet.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model
