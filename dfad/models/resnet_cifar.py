"""ResNets for 32x32 images (He et al. 2016): a 3x3 stem without max-pooling.

`cifar_resnet18` / `cifar_resnet34` are the ImageNet layouts (BasicBlock, widths 64-512) with the
CIFAR stem, as in the DFAD paper's CIFAR experiments; `cifar_resnet20` / `cifar_resnet56` are the
small three-stage CIFAR ResNets (widths 16-64; also `cifar_resnet8`), for CPU-sized experiments.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .registry import MODELS


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: list[int], widths: list[int], num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, in_planes = [], widths[0]
        for i, (blocks, planes) in enumerate(zip(blocks_per_stage, widths)):
            for j in range(blocks):
                stages.append(BasicBlock(in_planes, planes, stride=2 if i > 0 and j == 0 else 1))
                in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@MODELS.register("cifar_resnet18")
def cifar_resnet18(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet([2, 2, 2, 2], [64, 128, 256, 512], num_classes, in_channels)


@MODELS.register("cifar_resnet34")
def cifar_resnet34(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet([3, 4, 6, 3], [64, 128, 256, 512], num_classes, in_channels)


@MODELS.register("cifar_resnet20")
def cifar_resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet([3, 3, 3], [16, 32, 64], num_classes, in_channels)


@MODELS.register("cifar_resnet56")
def cifar_resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet([9, 9, 9], [16, 32, 64], num_classes, in_channels)


@MODELS.register("cifar_resnet8")
def cifar_resnet8(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet([1, 1, 1], [16, 32, 64], num_classes, in_channels)
