"""`dfad export`: write a run's student for deployment and check the written file against PyTorch.

Formats: `pt2` (torch.export.save, the current PyTorch format), `onnx` (torch.onnx.export; run in
onnxruntime when installed, else structurally checked with onnx.checker), `torchscript`
(torch.jit.trace; deprecated in current PyTorch but still widely deployed). The check feeds a
batch of the run's own generated samples through both and compares outputs.

A student of the user's own class (Python API) cannot be rebuilt from a checkpoint, which holds
only its weights. Such runs end by writing RUN/student.pt2 (`write_student_program`): the
student's function as an exported program, from which `dfad export` starts instead.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .engine.checkpoint import build_model_from_entry, load_checkpoint, model_entry, pick_model_entry
from .errors import DfadError

FORMATS = {"pt2": ".pt2", "onnx": ".onnx", "torchscript": ".torchscript.pt"}
# Exported graphs may reorder float operations: differences up to this (relative to the largest
# output magnitude, at least 1) are rounding; more means the export changed the function.
RELATIVE_TOLERANCE = 1e-4
# In the run folder of a student dfad cannot rebuild: its exported program (best checkpoint's weights).
PROGRAM = "student.pt2"


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
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None  # by position: any argument name
    program = torch.export.export(model, (x,), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    return lambda inputs: loaded(inputs), "torch.export.load"


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        # An exported program's input guards (torch._check in torch/__init__.py) become constants
        # in a trace; tracer warnings raised in the student's own code still show.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\Z")
        traced = torch.jit.trace(model, x)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path))
    return lambda inputs: loaded(inputs), "torch.jit.load"


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool):
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
        raise DfadError("--format onnx needs the onnx and onnxscript packages: pip install 'dfad[export]'")
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None  # by position: any argument name
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
    is an error (the file is removed). A student of the user's own class starts from the run's
    student.pt2, with the checkpoint's weights. Returns what was written and measured."""
    _check_format(fmt)
    run_dir = Path(run_dir)
    payload, source = _run_checkpoint(run_dir, checkpoint)
    entry = pick_model_entry(payload, "student", source)
    if _can_rebuild(entry):
        student, program = build_model_from_entry(entry, source).eval(), None
    else:
        program = run_dir / PROGRAM
        student = _program_with_weights(program, entry, source, fmt)
    result = _export_checked(student, payload, fmt, _out_path(run_dir, fmt, out), dynamic_batch, batch_size, seed)
    result["checkpoint"] = str(source)
    if program is not None:
        result["program"] = str(program)
    return result


def export_live_student(student: nn.Module, run_dir: str | Path, fmt: str, *, dynamic_batch: bool = False,
                        out: Optional[str | Path] = None, checkpoint: str = "best", batch_size: int = 8,
                        seed: int = 0) -> dict[str, Any]:
    """As `export_student`, from a live student module of the run (`DistillResult.export`): a CPU
    copy of it holding the checkpoint's weights, so any student class exports, with the same
    weights and check as `dfad export`."""
    _check_format(fmt)
    run_dir = Path(run_dir)
    payload, source = _run_checkpoint(run_dir, checkpoint)
    model = _copy_with_weights(student, pick_model_entry(payload, "student", source)["state_dict"])
    result = _export_checked(model, payload, fmt, _out_path(run_dir, fmt, out), dynamic_batch, batch_size, seed)
    result["checkpoint"] = str(source)
    return result


def write_student_program(run_dir: str | Path, student: nn.Module) -> Optional[Path]:
    """At the end of a run: RUN/student.pt2 (best checkpoint's weights, dynamic batch) when dfad
    cannot rebuild `student` from its checkpoints, so `dfad export` can start from it. A student
    torch.export cannot trace gets a one-line warning instead: the run itself succeeded."""
    path = Path(run_dir) / PROGRAM
    path.unlink(missing_ok=True)  # one left by an earlier run in this folder (--force) must not outlive it
    if _can_rebuild(model_entry(student)):
        return None
    try:
        # A failing torch.export prints pages (its logs, the partial graph) to stderr; the user did
        # not ask for this export, so the one-line warning below says it instead.
        with contextlib.redirect_stderr(io.StringIO()):
            export_live_student(student, run_dir, "pt2", dynamic_batch=True, out=path)
    except Exception as exc:  # the run's checkpoints are intact; only this convenience is missing
        reason = _first_line(exc.__cause__ or exc)  # torch.export's own words, not our wrapper's
        warnings.warn(f"{path} not written ({reason}); `dfad export` needs it for your own student class "
                      f"'{type(student).__qualname__}': export from Python with result.export('torchscript') "
                      f"(tracing) or make its forward exportable with torch.export", stacklevel=2)
        return None
    return path


def _check_format(fmt: str) -> None:
    if fmt not in EXPORTERS:
        raise DfadError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")


def _run_checkpoint(run_dir: Path, checkpoint: str) -> tuple[dict, Path]:
    source = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not source.is_file():
        raise DfadError(f"{run_dir} has no checkpoints/{checkpoint}.pt; give the folder of a finished "
                        f"`dfad distill` run")
    return load_checkpoint(source), source


def _out_path(run_dir: Path, fmt: str, out: Optional[str | Path]) -> Path:
    return Path(out) if out is not None else run_dir / "export" / f"student{FORMATS[fmt]}"


def _can_rebuild(entry: dict) -> bool:
    """Registry, torchvision and timm students are rebuilt from their checkpoint entry; a user's
    own class is stored as weights only (arch None)."""
    return entry.get("arch") is not None


def _copy_with_weights(student: nn.Module, state_dict: dict) -> nn.Module:
    """A CPU copy of `student` in eval mode holding `state_dict`; the live module is left as it is."""
    model = copy.deepcopy(student).cpu()
    model.load_state_dict(state_dict)
    return model.eval()


def _program_with_weights(program: Path, entry: dict, source: Path, fmt: str) -> nn.Module:
    """The student's function from the run's exported program, holding the weights of `source`
    (the program was written from the best checkpoint; --checkpoint last swaps in the last weights)."""
    if not program.is_file():
        raise DfadError(f"checkpoint {source} holds the weights of your own model class '{entry.get('module')}', "
                        f"which dfad cannot rebuild, and {program} is missing (torch.export failed at the end of the "
                        f"run, or an older dfad ran it); export from Python: result.export('{fmt}')")
    try:
        module = torch.export.load(str(program)).module()
    except Exception as exc:
        raise DfadError(f"{program} is not a readable exported program ({_first_line(exc)}); rerun the "
                        f"distillation, or export from Python: result.export('{fmt}')") from exc
    try:
        module.load_state_dict(entry["state_dict"])
    except RuntimeError as exc:
        raise DfadError(f"{program} does not fit the weights in {source} ({_first_line(exc)}): it belongs to "
                        f"another run; rerun the distillation, or export from Python: result.export('{fmt}')") from exc
    return module  # in eval mode since export (an exported program cannot switch modes)


def _first_line(exc: BaseException) -> str:
    """Errors from torch.export can span pages; users get one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _export_checked(student: nn.Module, payload: dict, fmt: str, path: Path, dynamic_batch: bool,
                    batch_size: int, seed: int) -> dict[str, Any]:
    """Write `student` (eval mode, CPU) to `path` as `fmt`, load it back and compare outputs on the
    run's generated samples; above the tolerance it is an error and nothing is left at `path`."""
    input_shape = tuple(payload["data"]["input_shape"])
    x = _samples(payload, batch_size, input_shape, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial" + path.suffix)  # never leave a half-written file at `path`
    try:
        with torch.no_grad():
            reference = student(x)
        run_exported, verified_with = EXPORTERS[fmt](student, x, partial, dynamic_batch)
        result: dict[str, Any] = {"format": fmt, "path": str(path), "input_shape": list(input_shape),
                                  "dynamic_batch": dynamic_batch, "verified_with": verified_with, "batch": batch_size}
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
        raise DfadError(f"exporting the student to {fmt} failed ({_first_line(exc)}); try another "
                        f"format") from exc
    finally:
        partial.unlink(missing_ok=True)
