"""Where a result came from: command, git commit, machine and library versions."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(field: str) -> str | None:
    """The first `field` line's value in /proc/cpuinfo ('' if absent), or None where it cannot be read."""
    try:
        lines = CPUINFO.read_text().splitlines()
    except OSError:
        return None
    return next((value.strip() for key, _, value in (line.partition(":") for line in lines)
                 if key.strip() == field), "")


def cpu_model() -> str:
    """The model name, with the x86 family and model numbers where the name alone is generic
    (virtual machines report e.g. "AMD EPYC" for CPU generations whose bf16 speed differs 2x)."""
    name = _cpuinfo("model name") or platform.processor() or platform.machine()
    family, model = _cpuinfo("cpu family"), _cpuinfo("model")
    return f"{name} (family {family}, model {model})" if family and model else name


def cpu_bf16_support() -> str:
    """The CPU's native bf16 instructions from /proc/cpuinfo: 'amx_bf16+avx512_bf16', 'avx512_bf16',
    'amx_bf16', 'none', or 'unknown' where the flags cannot be read."""
    flags = _cpuinfo("flags")
    if flags is None:
        return "unknown"
    found = [f for f in ("amx_bf16", "avx512_bf16") if f in flags.split()]
    return "+".join(found) or "none"


def command_line() -> str:
    """The command as a user would retype it."""
    program = sys.argv[0]
    if program.endswith("dfad"):
        program = "dfad"
    elif program.endswith("__main__.py"):
        program = "python -m dfad"
    else:
        program = f"python {program}"
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])


def provenance() -> dict:
    return {
        "command": command_line(),
        "git_commit": git_commit(),
        "machine": {
            "cpu": cpu_model(),
            "cpu_bf16": cpu_bf16_support(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
