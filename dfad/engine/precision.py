"""Mixed precision: autocast contexts and gradient scalers from a `precision` setting."""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, ContextManager

import torch

from ..errors import DfadError
from ..registry import Registry

# name -> the autocast dtype (None: no autocast; "auto" is resolved per device first).
PRECISIONS = Registry("precision", config_keys=("precision",), listed=True)
PRECISIONS.register("fp32")(lambda: None)
PRECISIONS.register("bf16")(lambda: torch.bfloat16)
PRECISIONS.register("fp16")(lambda: torch.float16)
PRECISIONS.register("auto")(lambda: None)

# Warnings already given in this process: a run resolves its precision in several places (the
# method, the evaluator, the compile rule), and one CPU fact needs saying once.
_warned: set[str] = set()


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise DfadError(f"precision '{precision}' is not one of {', '.join(PRECISIONS.names())}")
    if precision == "fp16" and device.type != "cuda":
        raise DfadError("precision fp16 needs a CUDA device (autocast + gradient scaling); on CPU use "
                        "precision=bf16 or fp32")
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_native_bf16() and "no-native-bf16" not in _warned:
        _warned.add("no-native-bf16")
        warnings.warn("precision bf16: this CPU has no native bf16 instructions (AVX512-BF16 / AMX); "
                      "bf16 will likely be slower than fp32 here", stacklevel=2)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: bf16 where the hardware computes it natively (CUDA with bf16, a CPU with AVX512-BF16
    or AMX, as oneDNN reports), fp32 elsewhere, where bf16 would only be emulated and slower."""
    check_precision(precision, device)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and _cpu_has_native_bf16() else "fp32"


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_factory(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """A zero-argument callable giving a fresh autocast context (a no-op for fp32)."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = PRECISIONS.get(precision)()
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling keeps fp16 gradients from underflowing; disabled (a pass-through) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=resolve_precision(precision, device) == "fp16")
