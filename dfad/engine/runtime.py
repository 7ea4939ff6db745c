"""Process-level settings that make CPU training fast: threads and memory reuse."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_memory_reuse_enabled = False


def reuse_freed_memory() -> bool:
    """Keep freed memory in the process for reuse instead of returning it to the OS.

    glibc serves every allocation above 32 MB with a fresh `mmap` and unmaps it on free, so each
    of DFAD's large activations (a GeneratorA batch of 256 holds several 70-150 MB tensors) is
    page-faulted and zeroed by the kernel again on every step: measured 680k page faults and
    1.4 s of system time per iteration at batch 256 on 2 cores, more than half the wall time.
    Serving large blocks from the heap and never trimming it removes that cost; the price is that
    the process keeps its peak memory until it exits. Returns whether the setting took effect
    (only on Linux with glibc; elsewhere the allocator is left alone).
    """
    global _memory_reuse_enabled
    if _memory_reuse_enabled:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; a non-glibc libc (musl) has no mallopt and fails above.
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _memory_reuse_enabled = ok
    return ok


def configure(threads: int | None, memory_reuse: bool) -> None:
    if threads:
        torch.set_num_threads(threads)
    if memory_reuse:
        reuse_freed_memory()


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """The model with its 4-D weights in channels_last (NHWC) layout, in place: the same function
    up to float rounding, and oneDNN's and cuDNN's faster convolution and BatchNorm kernels (a
    convolution runs NHWC when its input or its weight is). A foreign model that cannot change
    layout (some exported or scripted programs) is left as it is."""
    try:
        return model.to(memory_format=torch.channels_last)
    except (RuntimeError, TypeError, NotImplementedError):
        return model
