"""torch.compile for the generator, DFAD's hot spot, and for the frozen teacher's gradient-free
forwards, with a clear fallback to eager mode."""
from __future__ import annotations

import os
import shutil
import warnings
from typing import Callable

import torch
from torch import nn

from ..models.generators import set_image_layer_formulation, set_upconv_formulation
from ..provenance import cpu_bf16_support
from .precision import resolve_precision


def cpu_compiler_available() -> bool:
    """Inductor turns CPU graphs into C++; without a compiler torch.compile fails at the first call."""
    candidates = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return any(c and shutil.which(c) for c in candidates)


def _cannot_compile(device: torch.device) -> bool:
    return device.type == "cpu" and not cpu_compiler_available()


def compile_generator(generator: nn.Module, device: torch.device,
                      precision: str = "fp32") -> Callable[[torch.Tensor], torch.Tensor]:
    """The generator as a compiled callable sharing its parameters and buffers.

    Upsample+conv layers switch to the per-tap formulation, which needs the compiler to fuse its
    sum of shifted taps and is then the fastest. Compilation happens at the first call for each
    grad mode (tens of seconds on CPU). Without a C++ compiler on CPU, warns and returns the
    eager module unchanged.

    Under bf16 on CPU the eager module is returned (its sub-pixel formulation): Inductor's fused
    tap sums gain nothing from bf16 (cifar10_cpu generator, batch 128, 2 threads: 41.7 ms forward
    in fp32, 42.2 ms in bf16), while the eager sub-pixel convolutions do (forward+backward 113 ms
    against 247 ms compiled); a whole bf16 DFAD iteration is faster without it
    (benchmarks/results/throughput_cifar10_cpu_2threads_bf16_compile_on_off.json).
    """
    if device.type == "cpu" and resolve_precision(precision, device) == "bf16":
        return generator
    if _cannot_compile(device):
        warnings.warn("distill.compile: no C++ compiler (g++/clang++, or $CXX) found for torch.compile "
                      "on CPU; running the generator eagerly", stacklevel=2)
        return generator
    set_upconv_formulation(generator, "taps")
    return torch.compile(generator, dynamic=False)


def choose_eager_formulations(generator: nn.Module, device: torch.device, precision: str = "fp32") -> nn.Module:
    """The generator's eager formulations for this device and precision (the same function up to
    float rounding). Under bf16 on a CPU with AMX its image layer is an ordinary convolution: there
    oneDNN's kernels for a few output channels are not the slow ones of fp32, and the per-tap form's
    shifted sums cost more than they save (cifar10_cpu, batch 128, 2 threads, Xeon with AMX: eager
    bf16 iteration 0.721 -> 0.625 s; benchmarks/image_layer_ab.py). Elsewhere, including
    AVX512-BF16 CPUs without AMX where it is unmeasured, the per-tap form stays."""
    if device.type == "cpu" and resolve_precision(precision, device) == "bf16" and _cpu_has_amx():
        set_image_layer_formulation(generator, "plain")
    return generator


def _cpu_has_amx() -> bool:
    return "amx_bf16" in cpu_bf16_support()


def compile_frozen(model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """A frozen network's forward as a compiled callable, for calls without gradient (the teacher
    in imitation steps). Inductor fuses each convolution with its BatchNorm and activation:
    on the cifar10_cpu ResNet-20 teacher (batch 128, channels_last, 2 threads, memory reuse on)
    58 -> 47 ms in fp32 (a whole DFAD iteration ~5% faster) and 33 -> 33 ms under bf16 autocast,
    after ~15 s of compilation (benchmarks/results/teacher_compile_ab_cifar10_cpu_2threads.json).
    The same function up to float rounding.

    TorchScript modules, which Dynamo cannot trace, and CPUs without a C++ compiler get the module
    itself, silently: `distill.compile` compiles the generator too, whose call warns of the latter."""
    if isinstance(model, torch.jit.ScriptModule):
        return model
    if _cannot_compile(device):
        return model
    return torch.compile(model, dynamic=False)
