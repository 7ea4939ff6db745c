"""Generators that map noise z ~ N(0, I) to images in the teacher's normalised input space."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .registry import MODELS


def _phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The four 2x2 kernels equal to a 3x3 kernel applied after nearest x2 upsampling.

    Output row 2i reads upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i, so its kernel rows
    are (w0, w1 + w2); output row 2i+1 reads input rows i, i, i+1: (w0 + w1, w2). Columns alike.
    Returns [4 * out, in, 2, 2], phases ordered (row, col) = (0,0), (0,1), (1,0), (1,1).
    """
    w0, w1, w2 = weight.unbind(2)
    rows = (torch.stack([w0, w1 + w2], 2), torch.stack([w0 + w1, w2], 2))
    kernels = []
    for r in rows:
        c0, c1, c2 = r.unbind(3)
        kernels += [torch.stack([c0, c1 + c2], 3), torch.stack([c0 + c1, c2], 3)]
    return torch.cat(kernels, 0)


class NearestUpConv2d(nn.Conv2d):
    """Nearest-neighbour x2 upsampling followed by a 3x3 convolution (padding 1).

    Parameters and state dict are those of the plain 3x3 `nn.Conv2d`. Without autograd (the
    generator passes of DFAD's imitation steps) it computes the same function as four 2x2
    convolutions at the low resolution, interleaved: 2.25x fewer FLOPs. With autograd it takes the
    plain path, whose backward is faster on CPU.
    """

    subpixel_inference = True  # False: always the plain formulation (benchmarks' baseline)

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or not self.subpixel_inference:
            return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.forward_subpixel(x)

    def forward_subpixel(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = self.out_channels
        # A 2x2 kernel over the input padded by 1 gives (h+1, w+1) outputs; phase (a, b) is the window
        # starting at (a, b).
        y = F.conv2d(x, _phase_kernels(self.weight), self.bias.repeat(4) if self.bias is not None else None,
                     padding=1)
        y_nhwc = y.permute(0, 2, 3, 1)
        z = y.new_empty(n, h, 2, w, 2, out)  # channels-last memory of the [n, out, 2h, 2w] result
        for a in (0, 1):
            for b in (0, 1):
                phase = 2 * a + b
                z[:, :, a, :, b, :] = y_nhwc[:, a:a + h, b:b + w, phase * out:(phase + 1) * out]
        return z.view(n, 2 * h, 2 * w, out).permute(0, 3, 1, 2)


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
            NearestUpConv2d(2 * ngf, 2 * ngf),
            nn.BatchNorm2d(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.block2 = nn.Sequential(
            NearestUpConv2d(2 * ngf, ngf),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, padding=1),
            nn.Tanh(),
            nn.BatchNorm2d(channels, affine=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1)).view(z.shape[0], -1, self.init_size, self.init_size)
        return self.block2(self.block1(self.project_norm(x)))


@MODELS.register("generator_a")
def generator_a(nz: int = 100, ngf: int = 64, channels: int = 1, image_size: int = 32) -> GeneratorA:
    return GeneratorA(nz, ngf, channels, image_size)
