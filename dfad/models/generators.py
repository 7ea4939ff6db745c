"""Generators that map noise z ~ N(0, I) to images in the teacher's normalised input space."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .registry import MODELS


class GeneratorA(nn.Module):
    """The DFAD paper's generator for small images.

    z -> linear projection to (2·ngf, s/4, s/4) -> BatchNorm -> [nearest x2, 3x3 conv, BN, LeakyReLU]
    -> [nearest x2, 3x3 conv, BN, LeakyReLU, 3x3 conv to `channels`, Tanh] -> affine-free BatchNorm.
    The final BatchNorm standardises each channel of the batch, which places samples
    roughly where normalised real images live.
    """

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 1, image_size: int = 32):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"GeneratorA needs an image size divisible by 4, got {image_size}")
        self.nz, self.channels, self.image_size = nz, channels, image_size
        self.init_size = image_size // 4
        self.project = nn.Linear(nz, 2 * ngf * self.init_size**2)
        self.project_norm = nn.BatchNorm2d(2 * ngf)
        self.block1 = nn.Sequential(
            nn.Conv2d(2 * ngf, 2 * ngf, 3, padding=1),
            nn.BatchNorm2d(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(2 * ngf, ngf, 3, padding=1),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, padding=1),
            nn.Tanh(),
            nn.BatchNorm2d(channels, affine=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1)).view(z.shape[0], -1, self.init_size, self.init_size)
        x = self.project_norm(x)
        x = self.block1(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.block2(F.interpolate(x, scale_factor=2, mode="nearest"))


@MODELS.register("generator_a")
def generator_a(nz: int = 100, ngf: int = 64, channels: int = 1, image_size: int = 32) -> GeneratorA:
    return GeneratorA(nz, ngf, channels, image_size)
