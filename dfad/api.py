"""The Python API: distill your own model from a notebook or script, on the CLI's engine."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from torch import nn

from .config import NO_DATA_PRESET, build_config, check_mean_and_std
from .engine import read_metrics
from .errors import DfadError


@dataclass
class DistillResult:
    student: nn.Module  # the student after the last iteration (checkpoints/last.pt; best validated: best.pt)
    generator: Optional[nn.Module]
    history: list[dict[str, Any]]  # the metrics log: losses, learning rates, metric, elapsed seconds
    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    def export(self, format: str, out: Optional[str | Path] = None, *, dynamic_batch: bool = False,
               checkpoint: str = "best") -> Path:
        """`dfad export` from Python, for any student class: write the student with the weights of
        checkpoints/{checkpoint}.pt (best by default, as `dfad export`) as `format` ("pt2", "onnx"
        or "torchscript") to `out` (default run_dir/export/student.EXT), load the file back and
        compare its outputs with PyTorch's on the run's generated samples (DfadError above
        1e-4 x max(1, largest output); no file is kept). Returns the written path."""
        from .export import export_live_student

        written = export_live_student(self.student, self.run_dir, format, dynamic_batch=dynamic_batch, out=out,
                                      checkpoint=checkpoint)
        return Path(written["path"])


def _checked_arguments(teacher, student, input_shape, input_mean, input_std) -> list[int]:
    """The arguments checked up front, with the fix in each error; returns the input shape."""
    shape = list(input_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise DfadError(f"input_shape must be (C, H, W) with H = W, got {tuple(input_shape)}")
    check_mean_and_std(input_mean, input_std, "input_mean", "input_std")
    if not isinstance(teacher, (nn.Module, str, Path)):
        raise DfadError(f"teacher must be an nn.Module or a file path, got {type(teacher).__name__}")
    if student is not None and not isinstance(student, (nn.Module, str)):
        raise DfadError(f"student must be an nn.Module or a model name, got {type(student).__name__}")
    return shape


def _model_values(teacher, student, generator, generator_args) -> dict[str, Any]:
    """Config values for the models named by the arguments (modules are passed to the run as they are)."""
    values: dict[str, Any] = {}
    if generator is not None:  # a named generator replaces the base's whole
        values["distill.generator"] = {"arch": generator, "args": dict(generator_args or {})}
    elif generator_args is not None:
        values["distill.generator.args"] = dict(generator_args)
    if isinstance(student, str):
        values["distill.student"] = {"arch": student, "args": {}}
    if not isinstance(teacher, nn.Module):
        values["teacher.checkpoint"] = str(teacher)
    return values


def distill(teacher: nn.Module | str, student: nn.Module | str | None = None, *, input_shape: Sequence[int],
            num_classes: Optional[int] = None, task: str = "classification", out: Optional[str | Path] = None,
            iterations: Optional[int] = None, batch_size: Optional[int] = None,
            imitation_steps: Optional[int] = None, nz: Optional[int] = None, generator: Optional[str] = None,
            generator_args: Optional[dict] = None, student_lr: Optional[float] = None,
            generator_lr: Optional[float] = None, method: Optional[str] = None,
            input_mean: Optional[Sequence[float]] = None, input_std: Optional[Sequence[float]] = None,
            val_loader=None, val_every: Optional[int] = None, device: str = "cpu", precision: str = "fp32",
            seed: int = 0,
            on_iteration: Optional[Callable[[dict], Any]] = None,
            on_validation: Optional[Callable[[dict], Any]] = None, config: Optional[str] = None,
            options: Optional[dict[str, Any]] = None, force: bool = False, progress: bool = True,
            trust_checkpoint: bool = False) -> DistillResult:
    """Distill `teacher` into `student` with no training data.

    teacher: any nn.Module returning logits [N, C] (classification) or [N, C, H, W]
        (segmentation), or a path in any form `dfad distill --teacher` takes. A module is moved to
        `device` and left in eval mode with its parameters' gradients off; it is never updated.
    student: an nn.Module, or a model name (a dfad model or "torchvision:NAME"); None: the
        config's student (the no-data preset's: convnet_bn).
    input_shape: the teacher's input (C, H, W), H = W; the generator makes such images, read as
        inputs normalised with input_mean / input_std (default: ImageNet's for 3 channels).
    val_loader: optional (images, labels) batches to report the metric on at each validation.
    on_iteration / on_validation: called with each iteration's / validation's record (a dict).
    iterations, batch_size, ..., val_every: None keeps the base config's value.
    config / options: a base config (shipped name or YAML path; default `own_model`, the no-data
        defaults) and further settings by dotted key, e.g. {"checkpointing.every": 50}.
    Writes the usual run folder (`out`, default runs/distill-<time>) and returns the student,
    the generator, the metrics history, the run folder and the summary.
    """
    from . import runs

    shape = _checked_arguments(teacher, student, input_shape, input_mean, input_std)
    values: dict[str, Any] = {
        "task": task, "device": device, "precision": precision, "seed": seed,
        "data.name": "none", "data.channels": shape[0], "data.image_size": shape[1], "data.num_classes": num_classes,
        "data.mean": list(input_mean) if input_mean is not None else None,
        "data.std": list(input_std) if input_std is not None else None,
    }
    chosen = {"distill.method": method, "distill.iterations": iterations, "distill.batch_size": batch_size,
              "distill.imitation_steps": imitation_steps, "distill.nz": nz, "distill.val_every": val_every,
              "distill.student_optimizer.lr": student_lr, "distill.generator_optimizer.lr": generator_lr}
    values.update({key: value for key, value in chosen.items() if value is not None})
    values.update(_model_values(teacher, student, generator, generator_args))
    values.update(options or {})
    cfg = build_config(config or NO_DATA_PRESET, values)
    out = Path(out) if out is not None else Path("runs") / time.strftime("distill-%Y%m%d-%H%M%S")
    summary, method = runs.distill_run(cfg, out, force=force, progress=progress, trust_checkpoint=trust_checkpoint,
                           teacher=teacher if isinstance(teacher, nn.Module) else None,
                           student=student if isinstance(student, nn.Module) else None,
                           val_loader=val_loader, on_iteration=on_iteration, on_validation=on_validation)
    return DistillResult(student=method.student, generator=getattr(method, "generator", None),
                         history=read_metrics(out), run_dir=out, summary=summary)
