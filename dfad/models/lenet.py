"""LeNet-5 and the half-width LeNet-5 of the DFAD / DAFL MNIST experiments (32x32 inputs)."""
from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS


class LeNet5(nn.Module):
    """Classic LeNet-5 with ReLU and max-pooling; ``width`` scales every layer (0.5 = LeNet-5-half)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c1, c2, c3, f1 = (max(1, round(n * width)) for n in (6, 16, 120, 84))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, kernel_size=5),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Linear(c3, f1),
            nn.ReLU(inplace=True),
            nn.Linear(f1, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (32, 32):
            raise ValueError(f"LeNet-5 expects 32x32 inputs, got {tuple(x.shape[-2:])}")
        return self.classifier(torch.flatten(self.features(x), 1))


@MODELS.register("lenet5")
def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    return LeNet5(num_classes, in_channels, width=1.0)


@MODELS.register("lenet5_half")
def lenet5_half(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    return LeNet5(num_classes, in_channels, width=0.5)
