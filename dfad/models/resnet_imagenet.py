"""torchvision's ImageNet-style ResNets (7x7 stem, max-pooling), for larger images such as
Caltech-101 at 128 px; randomly initialised (nothing is downloaded)."""
from __future__ import annotations

from torch import nn
from torchvision import models

from ..errors import DfadError
from .registry import MODELS


def _resnet(factory, num_classes: int, in_channels: int) -> nn.Module:
    model = factory(weights=None, num_classes=num_classes)
    if in_channels != 3:
        raise DfadError(f"{factory.__name__} takes 3-channel images, the data has {in_channels}")
    return model


@MODELS.register("resnet10")
def resnet10(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """ResNet-18's layout with one BasicBlock per stage (a common distillation student: half of
    ResNet-18's convolutions at the same widths)."""
    def factory(weights=None, num_classes: int = 1000):
        return models.ResNet(models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    factory.__name__ = "resnet10"
    return _resnet(factory, num_classes, in_channels)


@MODELS.register("resnet18")
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    return _resnet(models.resnet18, num_classes, in_channels)


@MODELS.register("resnet34")
def resnet34(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    return _resnet(models.resnet34, num_classes, in_channels)
