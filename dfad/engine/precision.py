"""Mixed precision: autocast contexts and gradient scalers from a `precision` setting."""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, ContextManager

import torch

from ..errors import DfadError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise DfadError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise DfadError("precision fp16 needs a CUDA device (autocast + gradient scaling); on CPU use "
                        "precision=bf16 or fp32")
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_native_bf16():
        warnings.warn("precision bf16: this CPU has no native bf16 instructions (AVX512-BF16 / AMX); "
                      "bf16 will likely be slower than fp32 here", stacklevel=2)


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_factory(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """A zero-argument callable giving a fresh autocast context (a no-op for fp32)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = _DTYPES[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling keeps fp16 gradients from underflowing; disabled (a pass-through) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
