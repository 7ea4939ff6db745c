"""`dfad export`: write a run's student for deployment and check the written file against PyTorch.

Formats: `pt2` (torch.export.save, the current PyTorch format), `onnx` (torch.onnx.export; run in
onnxruntime when installed, else structurally checked with onnx.checker), `torchscript`
(torch.jit.trace; deprecated in current PyTorch but still widely deployed). The check feeds a
batch of the run's own generated samples through both and compares outputs.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .engine.checkpoint import build_model_from_entry, load_checkpoint, pick_model_entry
from .errors import DfadError

FORMATS = {"pt2": ".pt2", "onnx": ".onnx", "torchscript": ".torchscript.pt"}
# Exported graphs may reorder float operations: differences up to this (relative to the largest
# output magnitude, at least 1) are rounding; more means the export changed the function.
RELATIVE_TOLERANCE = 1e-4


def _samples(payload: dict, batch: int, input_shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A batch of the run's own generated samples (random normal inputs if it has no generator)."""
    gen = torch.Generator().manual_seed(seed)
    entry = payload["models"].get("generator")
    if entry is None:
        return torch.randn(batch, *input_shape, generator=gen)
    generator = build_model_from_entry(entry, "generator").eval()
    with torch.no_grad():
        return generator(torch.randn(batch, entry["args"]["nz"], generator=gen)).contiguous()


def _export_pt2(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool):
    shapes = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic else None
    program = torch.export.export(model, (x,), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    return lambda inputs: loaded(inputs), "torch.export.load"


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        traced = torch.jit.trace(model, x)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path))
    return lambda inputs: loaded(inputs), "torch.jit.load"


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool):
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
        raise DfadError("--format onnx needs the onnx and onnxscript packages: pip install 'dfad[export]'")
    shapes = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=shapes, input_names=["input"],
                                    output_names=["output"], verbose=False)
        program.save(str(path))
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "onnx.checker (install onnxruntime to compare outputs)"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda inputs: torch.from_numpy(session.run(None, {name: inputs.numpy()})[0]), "onnxruntime"


EXPORTERS = {"pt2": _export_pt2, "onnx": _export_onnx, "torchscript": _export_torchscript}


def export_student(run_dir: str | Path, fmt: str, *, dynamic_batch: bool = False, out: Optional[str | Path] = None,
                   checkpoint: str = "best", batch_size: int = 8, seed: int = 0) -> dict[str, Any]:
    """Export the run's student (checkpoints/{checkpoint}.pt) to `fmt`, load the file back and
    compare its outputs with PyTorch's on generated samples; a difference above the tolerance
    is an error (the file is removed). Returns what was written and measured."""
    if fmt not in EXPORTERS:
        raise DfadError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    source = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not source.is_file():
        raise DfadError(f"{run_dir} has no checkpoints/{checkpoint}.pt; give the folder of a finished "
                        f"`dfad distill` run")
    payload = load_checkpoint(source)
    student = build_model_from_entry(pick_model_entry(payload, "student", source), source).eval()
    input_shape = tuple(payload["data"]["input_shape"])
    x = _samples(payload, batch_size, input_shape, seed)
    path = Path(out) if out is not None else run_dir / "export" / f"student{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial" + path.suffix)  # never leave a half-written file at `path`
    try:
        with torch.no_grad():
            reference = student(x)
        run_exported, verified_with = EXPORTERS[fmt](student, x, partial, dynamic_batch)
        result: dict[str, Any] = {"format": fmt, "path": str(path), "checkpoint": str(source),
                                  "input_shape": list(input_shape), "dynamic_batch": dynamic_batch,
                                  "verified_with": verified_with, "batch": batch_size}
        if run_exported is not None:
            tolerance = RELATIVE_TOLERANCE * max(1.0, reference.abs().max().item())
            checks = [(x, reference)]
            if dynamic_batch:  # another batch size must work too
                odd = x[: max(1, batch_size // 2 - 1)]
                with torch.no_grad():
                    checks.append((odd, student(odd)))
            with torch.no_grad():
                diff = max((run_exported(inputs).float() - ref).abs().max().item() for inputs, ref in checks)
            result.update(max_abs_diff=diff, tolerance=tolerance)
            if not diff <= tolerance:
                raise DfadError(f"exported {fmt} model differs from PyTorch by {diff:.3g} (tolerance {tolerance:.3g}); "
                                f"the export is not faithful, nothing was written to {path}")
        os.replace(partial, path)
        return result
    except DfadError:
        raise
    except Exception as exc:
        raise DfadError(f"exporting the student to {fmt} failed ({type(exc).__name__}: {exc}); try another "
                        f"--format") from exc
    finally:
        partial.unlink(missing_ok=True)
