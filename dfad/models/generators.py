"""Generators that map noise z ~ N(0, I) to images in the teacher's normalised input space."""
from __future__ import annotations

from typing import Callable, Sequence

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


def _interleave_phases(y: torch.Tensor, out: int) -> torch.Tensor:
    """[n, 4*out, h+1, w+1] phase outputs -> [n, out, 2h, 2w] (channels-last memory).

    Phase (a, b) holds output pixels (2i+a, 2j+b) in the window of y starting at (a, b).
    """
    n, _, hp, wp = y.shape
    h, w = hp - 1, wp - 1
    y_nhwc = y.permute(0, 2, 3, 1)
    z = y.new_empty(n, h, 2, w, 2, out)
    for a in (0, 1):
        for b in (0, 1):
            phase = 2 * a + b
            z[:, :, a, :, b, :] = y_nhwc[:, a:a + h, b:b + w, phase * out:(phase + 1) * out]
    return z.view(n, 2 * h, 2 * w, out).permute(0, 3, 1, 2)


def _split_phases(grad: torch.Tensor, out: int) -> torch.Tensor:
    """The adjoint of `_interleave_phases`: [n, out, 2h, 2w] -> [n, 4*out, h+1, w+1], zero outside
    each phase's window."""
    n, _, h2, w2 = grad.shape
    h, w = h2 // 2, w2 // 2
    g_nhwc = grad.permute(0, 2, 3, 1)
    y = grad.new_zeros(n, h + 1, w + 1, 4 * out)
    for a in (0, 1):
        for b in (0, 1):
            phase = 2 * a + b
            y[:, a:a + h, b:b + w, phase * out:(phase + 1) * out] = g_nhwc[:, a::2, b::2, :]
    return y.permute(0, 3, 1, 2)


class _SubpixelConv(torch.autograd.Function):
    """Four 2x2 phase convolutions at low resolution, interleaved; backward through the same
    low-resolution convolutions (2.25x fewer FLOPs than at high resolution)."""

    @staticmethod
    def forward(ctx, x, kernels, bias, out):
        # Under autocast, compute (and differentiate) in the autocast dtype, as F.conv2d would;
        # gradients go back in each input's own dtype.
        ctx.dtypes = (x.dtype, kernels.dtype, bias.dtype if bias is not None else None)
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            x, kernels = x.to(dtype), kernels.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        ctx.save_for_backward(x, kernels)
        ctx.out, ctx.has_bias = out, bias is not None
        return _interleave_phases(F.conv2d(x, kernels, bias, padding=1), out)

    @staticmethod
    def backward(ctx, grad):
        x, kernels = ctx.saved_tensors
        grad_y = _split_phases(grad.to(x.dtype), ctx.out)
        grad_x, grad_k, grad_b = torch.ops.aten.convolution_backward(
            grad_y, x, kernels, [kernels.shape[0]] if ctx.has_bias else None, [1, 1], [1, 1], [1, 1], False,
            [0, 0], 1, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]])
        x_dtype, k_dtype, b_dtype = ctx.dtypes
        return (grad_x.to(x_dtype) if grad_x is not None else None,
                grad_k.to(k_dtype) if grad_k is not None else None,
                grad_b.to(b_dtype) if grad_b is not None else None, None)


def _combine_taps(taps: torch.Tensor) -> torch.Tensor:
    """Sum per-tap products into the output of nearest x2 upsampling followed by a 3x3 convolution.

    `taps` [n, h, w, 3, 3, c] holds W[:, :, dy, dx] @ x at every low-resolution pixel. Output row
    2i reads upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i (taps dy = 0, 1, 2); row 2i+1
    reads input rows i, i, i+1. Rows first, then columns alike; zero padding at the borders.
    Returns [n, c, 2h, 2w] (channels-last memory). Written as plain tensor ops for torch.compile,
    which fuses it into one pass; in eager mode it is slower than the sub-pixel path.
    """
    n, h, w, _, _, c = taps.shape
    padded = F.pad(taps, (0, 0, 0, 0, 0, 0, 0, 0, 1, 1))
    even_rows = padded[:, :-2, :, 0] + padded[:, 1:-1, :, 1] + padded[:, 1:-1, :, 2]
    odd_rows = padded[:, 1:-1, :, 0] + padded[:, 1:-1, :, 1] + padded[:, 2:, :, 2]
    rows = F.pad(torch.stack([even_rows, odd_rows], 2), (0, 0, 0, 0, 1, 1))  # [n, h, 2, w+2, 3, c]
    even_cols = rows[:, :, :, :-2, 0] + rows[:, :, :, 1:-1, 1] + rows[:, :, :, 1:-1, 2]
    odd_cols = rows[:, :, :, 1:-1, 0] + rows[:, :, :, 1:-1, 1] + rows[:, :, :, 2:, 2]
    return torch.stack([even_cols, odd_cols], 4).reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


def _tap_upconv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Nearest x2 upsampling + 3x3 convolution as one 1x1 convolution to 9 taps at the low
    resolution (4x fewer multiply-adds than the plain form, 1.8x fewer than sub-pixel) + a sum of
    shifted taps."""
    out_channels, in_channels = weight.shape[:2]
    n, _, h, w = x.shape
    taps = F.conv2d(x, weight.permute(2, 3, 0, 1).reshape(9 * out_channels, in_channels, 1, 1))
    out = _combine_taps(taps.permute(0, 2, 3, 1).reshape(n, h, w, 3, 3, out_channels))
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class NearestUpConv2d(nn.Conv2d):
    """Nearest-neighbour x2 upsampling followed by a 3x3 convolution (padding 1).

    Parameters and state dict are those of the plain 3x3 `nn.Conv2d`. Three formulations compute
    the same function (up to float rounding), chosen by `formulation`:
    - "plain": upsample, then convolve at the high resolution;
    - "subpixel" (default, fastest in eager mode): four 2x2 convolutions at the low resolution,
      interleaved; 2.25x fewer FLOPs, forward and backward;
    - "taps" (used under torch.compile): per-tap 1x1 products at the low resolution and a fused
      sum of shifted taps; 4x fewer FLOPs.
    """

    formulation = "subpixel"
    FORMULATIONS = ("plain", "subpixel", "taps")

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.formulation == "taps":
            return _tap_upconv(x, self.weight, self.bias)
        if self.formulation == "plain":
            return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))
        bias = self.bias.repeat(4) if self.bias is not None else None
        return _SubpixelConv.apply(x, _phase_kernels(self.weight), bias, self.out_channels)


class FewOutputConv2d(nn.Conv2d):
    """A 3x3 convolution (padding 1) to a few output channels, e.g. a generator's image layer.

    oneDNN runs such convolutions far below its usual speed (measured: 32 -> 1 channels at 32x32,
    batch 512, 3 GFLOP/s on one core), so by default ("taps") it is computed as one 1x1
    convolution to 9 taps x out_channels followed by a sum of the shifted taps: same function up to
    float rounding, ~2-4x faster. `formulation = "plain"` selects the ordinary convolution.
    """

    formulation = "taps"

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.formulation == "plain":
            return super().forward(x)
        c = self.out_channels
        h, w = x.shape[-2:]
        taps = F.conv2d(x, self.weight.permute(2, 3, 0, 1).reshape(9 * c, self.in_channels, 1, 1))
        taps = F.pad(taps, (1, 1, 1, 1))
        out = taps[:, 4 * c:5 * c, 1:h + 1, 1:w + 1] + self.bias.view(1, -1, 1, 1)
        for tap in (0, 1, 2, 3, 5, 6, 7, 8):
            dy, dx = divmod(tap, 3)
            out = out + taps[:, tap * c:(tap + 1) * c, dy:dy + h, dx:dx + w]
        return out


def set_image_layer_formulation(model: nn.Module, formulation: str) -> nn.Module:
    """Switch every FewOutputConv2d in `model` to "plain" (an ordinary convolution) or "taps"."""
    if formulation not in ("plain", "taps"):
        raise ValueError(f"unknown image-layer formulation '{formulation}'; choose 'plain' or 'taps'")
    for m in model.modules():
        if isinstance(m, FewOutputConv2d):
            m.formulation = formulation
    return model


def set_upconv_formulation(model: nn.Module, formulation: str) -> nn.Module:
    """Switch every NearestUpConv2d in `model` to one formulation ("plain", "subpixel" or "taps");
    "plain" also turns FewOutputConv2d layers into ordinary convolutions."""
    if formulation not in NearestUpConv2d.FORMULATIONS:
        raise ValueError(f"unknown formulation '{formulation}'; choose from {NearestUpConv2d.FORMULATIONS}")
    for m in model.modules():
        if isinstance(m, NearestUpConv2d):
            m.formulation = formulation
    return set_image_layer_formulation(model, "plain" if formulation == "plain" else "taps")


class GeneratorA(nn.Module):
    """The DFAD paper's generator for small images.

    z -> linear projection to (2·ngf, s/4, s/4) -> BatchNorm -> [nearest x2, 3x3 conv, BN, LeakyReLU]
    -> [nearest x2, 3x3 conv, BN, LeakyReLU, 3x3 conv to `channels`, Tanh] -> affine-free BatchNorm.
    The final BatchNorm standardises each channel of the batch, which places samples
    roughly where normalised real images live.

    output="pixels" (an option, not the paper's) drops that BatchNorm: the Tanh's range is read
    as pixels in [0, 1] and normalised with the teacher's input mean and std, so samples can
    sit where the teacher's real inputs do (e.g. a -1 background under 0.5/0.5 normalisation,
    which a batch-standardised output centres at 0).
    """

    OUTPUTS = ("standardised", "pixels")

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 1, image_size: int = 32,
                 output: str = "standardised", pixel_mean: Sequence[float] = (0.0,),
                 pixel_std: Sequence[float] = (1.0,)):
        super().__init__()
        if output not in self.OUTPUTS:
            raise ValueError(f"GeneratorA output must be one of {', '.join(self.OUTPUTS)}; got '{output}'")
        self.output = output
        if output == "pixels":  # constants that follow the module's device; not saved (the args hold them)
            self.register_buffer("pixel_mean", torch.as_tensor(pixel_mean, dtype=torch.float32).view(1, -1, 1, 1),
                                 persistent=False)
            self.register_buffer("pixel_std", torch.as_tensor(pixel_std, dtype=torch.float32).view(1, -1, 1, 1),
                                 persistent=False)
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
            FewOutputConv2d(ngf, channels),
            nn.Tanh(),
            *([nn.BatchNorm2d(channels, affine=False)] if output == "standardised" else []),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1)).view(z.shape[0], -1, self.init_size, self.init_size)
        x = self.block2(self.block1(self.project_norm(x)))
        if self.output == "pixels":
            x = ((x + 1) / 2 - self.pixel_mean) / self.pixel_std
        return x


@MODELS.register("generator_a")
def generator_a(nz: int = 100, ngf: int = 64, channels: int = 1, image_size: int = 32,
                output: str = "standardised", pixel_mean: Sequence[float] = (0.0,),
                pixel_std: Sequence[float] = (1.0,)) -> GeneratorA:
    return GeneratorA(nz, ngf, channels, image_size, output, pixel_mean, pixel_std)


class _ProjectedUpsampler(nn.Module):
    """GeneratorB's body: z -> linear projection to (8·ngf, s/16, s/16) -> BatchNorm, then four
    [x2 upsampling layer, BatchNorm, LeakyReLU(0.2)] stages with widths 8·ngf -> 4·ngf -> 2·ngf ->
    ngf -> ngf, then `to_image`. Subclasses choose the upsampling layer and the image head."""

    def __init__(self, nz: int, ngf: int, channels: int, image_size: int,
                 upsample: Callable[[int, int], nn.Module], to_image: nn.Module):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"{type(self).__name__} needs an image size divisible by 16, got {image_size}")
        self.nz, self.channels, self.image_size = nz, channels, image_size
        self.init_size = image_size // 16
        self.project = nn.Linear(nz, 8 * ngf * self.init_size**2)
        self.project_norm = nn.BatchNorm2d(8 * ngf)
        widths = [8 * ngf, 4 * ngf, 2 * ngf, ngf, ngf]
        self.stages = nn.Sequential(*[layer for cin, cout in zip(widths[:-1], widths[1:]) for layer in
                                      (upsample(cin, cout), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))])
        self.to_image = to_image

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1)).view(z.shape[0], -1, self.init_size, self.init_size)
        return self.to_image(self.stages(self.project_norm(x)))


class GeneratorB(_ProjectedUpsampler):
    """The authors' DCGAN-style generator for larger images (the paper's Caltech-101 / CamVid /
    NYUv2 generator), as in their network/gan.py: upsampling by 4x4 transposed convolutions
    (stride 2, no bias), then a 3x3 convolution to `channels` and Tanh: samples lie in [-1, 1], the
    range of images normalised with mean 0.5 / std 0.5 (the authors' statistics for these
    datasets). No final BatchNorm. DCGAN initialisation: (transposed) convolution and linear
    weights N(0, 0.02), biases 0, BatchNorm weights N(1, 0.02), BatchNorm biases 0.
    """

    def __init__(self, nz: int = 256, ngf: int = 64, channels: int = 3, image_size: int = 128):
        def transposed(cin: int, cout: int) -> nn.Module:
            return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False)

        super().__init__(nz, ngf, channels, image_size, transposed,
                         nn.Sequential(nn.Conv2d(ngf, channels, kernel_size=3, padding=1), nn.Tanh()))
        dcgan_init(self)


def dcgan_init(model: nn.Module) -> nn.Module:
    """DCGAN's initialisation (Radford et al. 2016), as the authors apply it to GeneratorB."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return model


@MODELS.register("generator_b")
def generator_b(nz: int = 256, ngf: int = 64, channels: int = 3, image_size: int = 128) -> GeneratorB:
    return GeneratorB(nz, ngf, channels, image_size)


class GeneratorBNearest(_ProjectedUpsampler):
    """dfad's earlier GeneratorB (not the authors'): GeneratorB's widths with each transposed
    convolution replaced by nearest x2 upsampling + a 3x3 convolution (with the fast formulations
    of GeneratorA's layers), PyTorch's default initialisation, and GeneratorA's final affine-free
    BatchNorm, which standardises each channel of the batch instead of bounding it to [-1, 1].
    Kept to reproduce runs made with it (results/camvid_paper_gpu_chunk).
    """

    def __init__(self, nz: int = 256, ngf: int = 64, channels: int = 3, image_size: int = 128):
        super().__init__(nz, ngf, channels, image_size, NearestUpConv2d,
                         nn.Sequential(FewOutputConv2d(ngf, channels), nn.Tanh(),
                                       nn.BatchNorm2d(channels, affine=False)))


@MODELS.register("generator_b_nearest")
def generator_b_nearest(nz: int = 256, ngf: int = 64, channels: int = 3, image_size: int = 128) -> GeneratorBNearest:
    return GeneratorBNearest(nz, ngf, channels, image_size)
