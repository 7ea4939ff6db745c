"""A small, size-agnostic CNN for tiny images (the bundled 8x8 digits) with a width knob, with or
without BatchNorm."""
from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS


class ConvNet(nn.Module):
    """Two conv/pool stages, a fixed 2x2 pooling grid, and a two-layer classifier head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32, batch_norm: bool = False):
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            if not batch_norm:
                return [nn.Conv2d(cin, cout, 3, padding=1)]
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]

        self.features = nn.Sequential(
            *conv(in_channels, width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            *conv(width, 2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            # Any input size >= 8 px ends on the same 2x2 grid, so the head's size is fixed.
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(8 * width, 4 * width),
            nn.ReLU(inplace=True),
            nn.Linear(4 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@MODELS.register("convnet")
def convnet(num_classes: int = 10, in_channels: int = 1, width: int = 32) -> ConvNet:
    return ConvNet(num_classes, in_channels, width)


@MODELS.register("convnet_bn")
def convnet_bn(num_classes: int = 10, in_channels: int = 1, width: int = 32) -> ConvNet:
    """`convnet` with BatchNorm after each convolution: trains at the paper's SGD 0.1, where the
    plain one needs 0.01 (results/foreign/README.md)."""
    return ConvNet(num_classes, in_channels, width, batch_norm=True)
