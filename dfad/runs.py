"""The library behind the CLI: train a teacher, distill a student.

Each function takes a validated `Config` and writes a run folder. A distillation's method builds
itself (`Method.from_config`, from `assembly.RunParts`); this module knows no method by name.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .assembly import RunParts
from .config import Config, config_to_dict
from .data import DatasetInfo, ImageDataset
from .data.augment import get_augmentation
from .data.splits import load_split
from .engine import evaluate, fit, load_checkpoint, runtime
from .engine.distributed import SINGLE, Distributed, from_environment
from .engine.evaluate import evaluate_loader
from .engine.optim import build_optimizer, build_scheduler
from .engine.precision import check_precision
from .engine.tensorboard import TensorBoardLog, chain
from .errors import DfadError
from .methods import METHODS
from .methods.supervised import ShuffledBatches
from .model_checks import check_model_outputs, data_free_info
from .model_files import load_teacher
from .models import build_model
from .provenance import provenance
from .report import try_write_report
from .run_identity import open_run
from .summary import data_facts, distillation_summary, teacher_summary
from .tasks import TASKS
# Public here too (older imports): what moved to modules of their own.
from .data.real_images import load_real_images  # noqa: F401
from .engine import build_model_from_entry  # noqa: F401
from .run_identity import config_differences  # noqa: F401


def setup(cfg: Config) -> torch.device:
    """Seed every RNG and pick the device."""
    return setup_distributed(cfg)[0]


def setup_distributed(cfg: Config) -> tuple[torch.device, Distributed]:
    """Seed every RNG (alike on every rank: models start identical), pick the device, and join
    torchrun's process group when there is one."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    runtime.configure(cfg.threads, cfg.memory_reuse)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise DfadError(f"device '{cfg.device}' requested but CUDA is not available; use device=cpu")
    distributed = from_environment(cfg.device)
    device = torch.device(f"cuda:{distributed.local_rank}" if cfg.device == "cuda" and distributed.enabled
                          else cfg.device)
    check_precision(cfg.precision, device)
    if device.type == "cuda":
        # Fixed input shapes throughout a run: let cuDNN pick its fastest kernels once.
        torch.backends.cudnn.benchmark = True
    return device, distributed


def _seed_rank(cfg: Config, distributed: Distributed) -> None:
    """After the models are built: each rank draws its own noise."""
    if distributed.enabled:
        torch.manual_seed(cfg.seed + 1_000_003 * distributed.rank)


def _board(cfg: Config, run, distributed: Distributed) -> Optional[TensorBoardLog]:
    return TensorBoardLog(run.path) if cfg.tensorboard and distributed.is_main else None


def train_teacher(cfg: Config, out: str | Path, *, force: bool = False, resume: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Supervised training of `cfg.teacher.model` on the training split; writes OUT/teacher.pt."""
    device, distributed = setup_distributed(cfg)
    # At the start (the working tree may change while the run goes on), after setup: the machine
    # facts include the thread count the run uses, not the process's default.
    origin = provenance()
    task = TASKS.build(cfg.task)
    train_set, test_set = load_split(cfg, train=True), load_split(cfg, train=False)
    run, resuming = open_run(out, cfg, kind="teacher", force=force, resume=resume, distributed=distributed)
    run.write_config(cfg)
    tc, info = cfg.teacher, train_set.info
    model = build_model(tc.model.arch, num_classes=info.num_classes, in_channels=info.channels,
                        **tc.model.args).to(device)
    if tc.channels_last:
        model = runtime.to_channels_last(model)
    check_model_outputs(model, task, info, f"teacher '{tc.model.arch}'", device)
    optimizer = build_optimizer(model.parameters(), tc.optimizer)
    distributed.broadcast_module(model)
    loader = ShuffledBatches(train_set.images, train_set.labels, tc.batch_size,
                             torch.Generator().manual_seed(cfg.seed), distributed.rank, distributed.world_size,
                             augment=get_augmentation(tc.augment, info.image_size))
    method = METHODS.build("supervised", model=model, task=task, loader=loader, optimizer=optimizer,
                           scheduler=build_scheduler(optimizer, tc.schedule, tc.iterations), device=device,
                           name="teacher", precision=cfg.precision, loss=tc.loss)
    method.distributed = distributed
    _seed_rank(cfg, distributed)
    board = _board(cfg, run, distributed)
    result = fit(method, run, iterations=tc.iterations, val_every=tc.val_every, log_every=cfg.distill.log_every,
                 validate=lambda m: evaluate(m, test_set, task, cfg.data.eval_batch_size, device),
                 metric_name=task.metric_name,
                 extra_checkpoint={"config": config_to_dict(cfg), "data": data_facts(info)},
                 progress=progress, desc="teacher", state_every=cfg.checkpointing.every,
                 keep_states=cfg.checkpointing.keep, resume=resuming, distributed=distributed,
                 resume_hint=f"rerun the same command (or add --resume to `dfad train-teacher ... --out {out}`)",
                 on_iteration=board)
    if board is not None:
        board.close()
    # The teacher people distill from is the best validated one.
    teacher_path = run.path / "teacher.pt"
    best = load_checkpoint(run.checkpoints / "best.pt")
    summary = teacher_summary(cfg, model, method, result, best, task.metric_name, teacher_path, info, origin)
    if distributed.is_main:
        teacher_path.write_bytes((run.checkpoints / "best.pt").read_bytes())
        run.write_summary(summary)
        try_write_report(run.path, teacher=model)
    run.close()
    return summary


def build_distillation(cfg: Config, teacher: nn.Module, info: DatasetInfo, task, device,
                       distributed: Distributed = SINGLE, student: Optional[nn.Module] = None):
    """The configured method (DFAD by default), built by its class from the run's parts (its
    student, generator, optimisers: `dfad.assembly.RunParts`)."""
    method_class = METHODS.get(cfg.distill.method)
    parts = RunParts(cfg, teacher, info, task, device, declared=method_class.parts, distributed=distributed,
                     student=student)
    method = method_class.from_config(parts)
    method.distributed = distributed
    _seed_rank(cfg, distributed)
    return method


def distill(cfg: Config, out: str | Path, **kwargs) -> dict[str, Any]:
    """`distill_run`'s summary (what the CLI prints and summary.json holds)."""
    return distill_run(cfg, out, **kwargs)[0]


def _metric_function(cfg: Config, test_set: Optional[ImageDataset], val_loader, task, info, device):
    """model -> its task metric (per-class scores included) on the test split or `val_loader`, or None."""
    if test_set is not None:
        return lambda model: evaluate(model, test_set, task, cfg.data.eval_batch_size, device, return_metric=True)
    if val_loader is not None:
        return lambda model: evaluate_loader(model, val_loader, task, info.num_classes, device, return_metric=True)
    return None


def distill_run(cfg: Config, out: str | Path, *, force: bool = False, resume: bool = False, progress: bool = True,
                trust_checkpoint: bool = False, teacher: Optional[nn.Module] = None,
                student: Optional[nn.Module] = None, val_loader=None, on_iteration=None,
                on_validation=None) -> tuple[dict[str, Any], Any]:
    """Data-free distillation: the student never sees a training image; the test split (or
    `val_loader`) is only used to report the metric at validation time, and may be absent
    (data.name=none). The CLI passes a config; the Python API (`dfad.distill`) also passes the
    teacher and student as modules, a validation loader and per-iteration / per-validation hooks.
    Returns the summary and the trained method (its student, generator and optimisers)."""
    device, distributed = setup_distributed(cfg)
    # At the start (the working tree may change while the run goes on), after setup: the machine
    # facts include the thread count the run uses, not the process's default.
    origin = provenance()
    task = TASKS.build(cfg.task)
    test_set = load_split(cfg, train=False) if cfg.data.name != "none" else None
    info = test_set.info if test_set is not None else None
    teacher = load_teacher(cfg, info, device, trust_checkpoint) if teacher is None else teacher.to(device)
    who = f"teacher from {cfg.teacher.checkpoint or 'the API'}"
    if info is None:
        info = data_free_info(cfg, teacher, task, device, who)
    else:
        check_model_outputs(teacher, task, info, who, device)
    run, resuming = open_run(out, cfg, kind="distill", force=force, resume=resume, distributed=distributed)
    run.write_config(cfg)
    dc = cfg.distill
    method = build_distillation(cfg, teacher, info, task, device, distributed, student=student)
    metric_of = _metric_function(cfg, test_set, val_loader, task, info, device)
    # Kept for the per-class figures at the end: the frozen teacher is evaluated once.
    teacher_scores = metric_of(teacher) if metric_of is not None else None
    board = _board(cfg, run, distributed)
    result = fit(method, run, iterations=dc.iterations, val_every=dc.val_every, log_every=dc.log_every,
                 validate=(lambda model: metric_of(model).compute()) if metric_of is not None else None,
                 metric_name=task.metric_name,
                 extra_checkpoint={"config": config_to_dict(cfg), "data": data_facts(info)},
                 sample_stats=(info.mean, info.std), progress=progress, desc=dc.method,
                 time_limit_seconds=dc.time_limit_minutes * 60 if dc.time_limit_minutes else None,
                 stop_at_metric=dc.stop_at_metric, state_every=cfg.checkpointing.every,
                 keep_states=cfg.checkpointing.keep, resume=resuming, distributed=distributed,
                 resume_hint=f"rerun the same command (or add --resume to `dfad distill ... --out {out}`)",
                 on_iteration=chain(on_iteration, board), on_validation=on_validation)
    if board is not None:
        board.close()
    summary = distillation_summary(cfg, method, teacher, result, teacher_scores, task.metric_name, info, origin)
    if distributed.is_main:
        _finish_distillation(run, summary, method, teacher, teacher_scores, metric_of, task.metric_name, dc.nz,
                             device)
    run.close()
    return summary, method


def _finish_distillation(run, summary, method, teacher, teacher_scores, metric_of, metric, nz, device) -> None:
    """Per-class scores into the summary, then summary.json, report.html and, for a student dfad
    cannot rebuild, its exported program."""
    from .export import write_student_program

    student, generator = method.student, getattr(method, "generator", None)
    per_class = None
    if metric_of is not None:  # per-class accuracy, or per-class IoU (NaN: a class absent from both)
        per_class = {"teacher": teacher_scores.per_class(), "student": metric_of(student).per_class()}
        summary[f"per_class_{metric}"] = {name: [None if v != v else round(v, 4) for v in values]
                                          for name, values in per_class.items()}
    run.write_summary(summary)
    try_write_report(run.path, teacher=teacher, student=student, generator=generator,
                     nz=nz, per_class=per_class, device=device)
    # A student of the user's own class cannot be rebuilt from its checkpoint: keep its exported
    # program (student.pt2) so that `dfad export` can start from it.
    write_student_program(run.path, student)
