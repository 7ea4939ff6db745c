"""The library behind the CLI: train a teacher, distill a student, evaluate a checkpoint.

Each function takes a validated `Config` and writes a run folder.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import random
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
import torchvision.transforms.v2.functional as TF

from .config import AUTO_LR, Config, config_to_dict, load_config
from .data.augment import get_augmentation, random_crops
from .data.base import IMAGENET_MEAN, IMAGENET_STD
from .data import DATASETS, DatasetInfo, ImageDataset, denormalize, normalize, resolve_data_root
from .engine import build_model_from_entry, evaluate, fit, load_checkpoint
from .engine.evaluate import evaluate_loader
from .engine.tensorboard import TensorBoardLog, chain
from .engine.checkpoint import pick_model_entry
from .engine import runtime
from .engine.compile import compile_generator
from .engine.distributed import SINGLE, Distributed, from_environment
from .engine.precision import check_precision
from .engine.optim import auto_student_lr, build_optimizer, build_scheduler
from .errors import DfadError
from .health import HEALTH_FIELDS
from .methods import METHODS
from .methods.supervised import ShuffledBatches
from .models import build_model, count_flops, count_parameters, describe_model
from .provenance import provenance
from .run_identity import config_differences, open_run  # noqa: F401 (config_differences: public here too)
from .report import try_write_report, write_report
from .tasks import TASKS


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


def load_split(cfg: Config, train: bool) -> ImageDataset:
    kwargs: dict[str, Any] = {"root": resolve_data_root(cfg.data.root), "train": train, "download": cfg.data.download}
    if cfg.data.image_size is not None:
        kwargs["image_size"] = cfg.data.image_size
    if cfg.data.mean is not None:
        kwargs["mean"], kwargs["std"] = tuple(cfg.data.mean), tuple(cfg.data.std)
    if cfg.data.shorter_side is not None:
        if "shorter_side" not in inspect.signature(DATASETS.get(cfg.data.name)).parameters:
            raise DfadError(f"config: dataset '{cfg.data.name}' does not resize by data.shorter_side (only whole-frame "
                            f"segmentation datasets do); remove data.shorter_side or use data.image_size")
        kwargs["shorter_side"] = cfg.data.shorter_side
    return DATASETS.build(cfg.data.name, **kwargs)


def model_profile(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Optional[int]]:
    try:
        flops = count_flops(model, input_shape)
    except Exception:  # e.g. TorchScript or exported programs the FLOP counter cannot trace
        flops = None
    return {"params": count_parameters(model), "flops": flops, "macs": flops // 2 if flops is not None else None}


def dry_forward(model: nn.Module, input_shape: tuple[int, ...], who: str, device, fix: str) -> torch.Tensor:
    """The model's outputs (eval mode, no gradient) for a batch of three zero inputs, with clear
    errors; `fix` says what to change when the shape is refused. (Three: a program exported with a
    fixed batch size, typically 1 or 2, fails here rather than mid-run.)"""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(3, *input_shape, device=device))
    except Exception as exc:
        from .model_files import FrozenGraph

        if isinstance(model, FrozenGraph):
            raise DfadError(f"{who} (an exported program) cannot take a batch of 3 inputs of shape "
                            f"{tuple(input_shape)}: export it with that input shape and a dynamic batch, "
                            f"dynamic_shapes={{'x': {{0: torch.export.Dim('batch')}}}} ({exc})") from exc
        raise DfadError(f"{who} cannot take inputs of shape {tuple(input_shape)} ({exc}); {fix}") from exc
    finally:
        model.train(was_training)


def check_model_outputs(model: nn.Module, task, info: DatasetInfo, who: str, device) -> None:
    """A dry forward pass on inputs of the data's shape: outputs of the task's form and class count."""
    out = dry_forward(model, info.input_shape, who, device, f"it does not fit dataset '{info.name}'")
    task.check_outputs(out, info.num_classes, who)


def _data_facts(info: DatasetInfo) -> dict[str, Any]:
    return {"name": info.name, "num_classes": info.num_classes, "input_shape": list(info.input_shape),
            "mean": list(info.mean), "std": list(info.std)}


def train_teacher(cfg: Config, out: str | Path, *, force: bool = False, resume: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Supervised training of `cfg.teacher.model` on the training split; writes OUT/teacher.pt."""
    origin = provenance()  # at the start: the working tree may change while the run goes on
    device, distributed = setup_distributed(cfg)
    task = TASKS.build(cfg.task)
    train_set, test_set = load_split(cfg, train=True), load_split(cfg, train=False)
    run, resuming = open_run(out, cfg, kind="teacher", force=force, resume=resume, distributed=distributed)
    run.write_config(cfg)
    tc = cfg.teacher
    model = build_model(tc.model.arch, num_classes=train_set.info.num_classes,
                        in_channels=train_set.info.channels, **tc.model.args).to(device)
    if tc.channels_last:
        model = runtime.to_channels_last(model)
    check_model_outputs(model, task, train_set.info, f"teacher '{tc.model.arch}'", device)
    optimizer = build_optimizer(model.parameters(), tc.optimizer)
    scheduler = build_scheduler(optimizer, tc.schedule, tc.iterations)
    distributed.broadcast_module(model)
    loader = ShuffledBatches(train_set.images, train_set.labels, tc.batch_size,
                             torch.Generator().manual_seed(cfg.seed), distributed.rank, distributed.world_size,
                             augment=get_augmentation(tc.augment, train_set.info.image_size))
    method = METHODS.build("supervised", model=model, task=task, loader=loader, optimizer=optimizer,
                           scheduler=scheduler, device=device, name="teacher", precision=cfg.precision,
                           loss=tc.loss)
    method.distributed = distributed
    _seed_rank(cfg, distributed)
    board = TensorBoardLog(run.path) if cfg.tensorboard and distributed.is_main else None
    result = fit(method, run, iterations=tc.iterations, val_every=tc.val_every, log_every=cfg.distill.log_every,
                 validate=lambda m: evaluate(m, test_set, task, cfg.data.eval_batch_size, device),
                 metric_name=task.metric_name,
                 extra_checkpoint={"config": config_to_dict(cfg), "data": _data_facts(train_set.info)},
                 progress=progress, desc="teacher", state_every=cfg.checkpointing.every,
                 keep_states=cfg.checkpointing.keep, resume=resuming, distributed=distributed,
                 resume_hint=f"rerun the same command (or add --resume to `dfad train-teacher ... --out {out}`)",
                 on_iteration=board)
    if board is not None:
        board.close()
    # The teacher people distill from is the best validated one.
    best = load_checkpoint(run.checkpoints / "best.pt")
    teacher_path = run.path / "teacher.pt"
    if distributed.is_main:
        teacher_path.write_bytes((run.checkpoints / "best.pt").read_bytes())
    metric = task.metric_name
    summary = {
        f"teacher_{metric}": best["metric"][metric],
        f"final_teacher_{metric}": result.final_metric,
        "best_iteration": result.best_iteration,
        "iterations": result.iterations,
        "wall_seconds": round(result.wall_seconds, 2),
        "metric": metric,
        "precision": method.precision,
        "teacher_arch": tc.model.arch,
        "teacher_model": describe_model(model),
        **{f"teacher_{k}": v for k, v in model_profile(model, train_set.info.input_shape).items()},
        "teacher_checkpoint": str(teacher_path),
        "input": _data_facts(train_set.info),
        "seed": cfg.seed,
        **origin,
    }
    if distributed.is_main:
        run.write_summary(summary)
        try_write_report(run.path, teacher=model)
    return summary


# When no dataset says how a teacher's inputs are normalised: ImageNet's statistics for colour
# images (torchvision's convention), 0.5 / 0.5 for anything else.
def default_input_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)


def load_teacher(cfg: Config, info: Optional[DatasetInfo], device, trust_checkpoint: bool = False) -> nn.Module:
    """The teacher in `cfg.teacher.checkpoint`, in any form `model_files` reads (a bare state dict
    is built as `cfg.teacher.model`). `info`: the data's facts, or None without a dataset."""
    from .model_files import load_model_file

    path = cfg.teacher.checkpoint
    if not path:
        raise DfadError("no teacher given; pass --teacher PATH (or teacher.checkpoint=PATH); "
                        "train one with `dfad train-teacher --config CONFIG --out DIR`")
    spec = cfg.teacher.model
    args = {k: v for k, v in spec.args.items() if k not in ("num_classes", "in_channels")}
    return load_model_file(path, role="teacher", arch=spec.arch, arch_args=args,
                           num_classes=info.num_classes if info else cfg.data.num_classes,
                           in_channels=info.channels if info else cfg.data.channels,
                           trust=trust_checkpoint).to(device)


def data_free_info(cfg: Config, teacher: nn.Module, task, device, who: str) -> DatasetInfo:
    """The input and output facts of a run with no dataset (data.name=none): the input shape and
    statistics from the config, the class count from the config or else from the teacher's
    outputs. The teacher's dry run also checks its outputs, as check_model_outputs does."""
    data = cfg.data
    channels, size = data.channels, data.image_size
    mean, std = (tuple(data.mean), tuple(data.std)) if data.mean is not None else default_input_stats(channels)
    if len(mean) != channels or len(std) != channels:
        raise DfadError(f"--input-mean/--input-std give {len(mean)}/{len(std)} values for {channels}-channel "
                        f"inputs; give one per channel")
    out = dry_forward(teacher, (channels, size, size), who, device, "pass the --input-shape C,H,W it was trained on")
    num_classes = data.num_classes
    if num_classes is None:
        num_classes = int(out.shape[1]) if out.dim() >= 2 else 0  # a wrong form is reported just below
    task.check_outputs(out, num_classes, who)
    return DatasetInfo("none", num_classes, channels, size, mean, std)


# ITU-R BT.601 luma weights: colour images shown to a grey-scale teacher.
_LUMA = (0.299, 0.587, 0.114)


def _match_channels(pixels: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    """Images in [0, 1] with `channels` channels: grey repeated to RGB, RGB to grey by luma."""
    have = pixels.shape[1]
    if have == channels:
        return pixels
    if have == 1 and channels == 3:
        return pixels.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        return (pixels * torch.tensor(_LUMA, dtype=pixels.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise DfadError(f"dataset '{name}' has {have} channel(s) but the teacher takes {channels}; "
                    f"choose a dataset with 1 or {channels} channels")


def load_real_images(cfg: Config, name: str, info: DatasetInfo, keep_larger: bool = False) -> ImageDataset:
    """The training split of dataset `name` as teacher inputs (for the KD baselines, which distill
    on real images from the task's or another dataset): resized to the teacher's square size,
    grey repeated to RGB (or RGB to grey), and normalised with the teacher's statistics. With
    `keep_larger`, images at least that size on both sides keep their size (to be cropped)."""
    # The task's own frames as its teacher saw them (data.shorter_side); other datasets as stored.
    resize = {"shorter_side": cfg.data.shorter_side} if name == cfg.data.name and cfg.data.shorter_side else {}
    source = DATASETS.build(name, root=resolve_data_root(cfg.data.root), train=True, download=cfg.data.download,
                            image_size=info.image_size, **resize)
    pixels = denormalize(source.images, source.info.mean, source.info.std).clamp_(0, 1)
    pixels = _match_channels(pixels, info.channels, name)
    size = info.image_size
    larger = min(pixels.shape[-2:]) >= size
    if tuple(pixels.shape[-2:]) != (size, size) and not (keep_larger and larger):
        # Whole frames (e.g. segmentation datasets store full images), squeezed to the teacher's size.
        pixels = TF.resize(pixels, [info.image_size, info.image_size], antialias=True)
    converted = DatasetInfo(source.info.name, source.info.num_classes, info.channels, info.image_size,
                            tuple(info.mean), tuple(info.std))
    return ImageDataset(normalize(pixels, info.mean, info.std), source.labels, converted)


def build_distillation(cfg: Config, teacher: nn.Module, info: DatasetInfo, task, device,
                       distributed: Distributed = SINGLE, student: Optional[nn.Module] = None):
    """The configured method (DFAD by default) with a fresh student, generator and their optimisers.
    Under torchrun, `distill.batch_size` is the global batch, split evenly over the ranks."""
    dc = cfg.distill
    if dc.batch_size % distributed.world_size:
        raise DfadError(f"distill.batch_size {dc.batch_size} does not split evenly over {distributed.world_size} "
                        f"processes; choose a multiple of {distributed.world_size}")
    sync_batchnorm = dc.sync_batchnorm and distributed.enabled  # alone, there is nothing to synchronise
    if sync_batchnorm and torch.device(device).type != "cuda":  # PyTorch's SyncBatchNorm rejects CPU tensors
        raise DfadError("distill.sync_batchnorm needs CUDA devices; SyncBatchNorm does not run on CPU (gloo): run "
                        "with device=cuda, or set distill.sync_batchnorm=false (each process then normalises its own "
                        "batch; the running statistics are still averaged over processes)")
    if student is None:
        student = build_model(dc.student.arch, num_classes=info.num_classes, in_channels=info.channels,
                              **dc.student.args)
    student = student.to(device)
    check_model_outputs(student, task, info, f"student '{describe_model(student)}'", device)
    generator_args = dict(dc.generator.args)
    if generator_args.get("output") == "pixels":  # pixels -> the teacher's normalised inputs
        if info.name == "none" and cfg.data.mean is None:
            warnings.warn(f"the generator makes pixels normalised as your teacher's inputs, assumed to be "
                          f"mean {list(info.mean)}, std {list(info.std)}; if the teacher was trained with other "
                          f"statistics, give them (--input-mean/--input-std, or input_mean/input_std in the API)",
                          stacklevel=2)
        generator_args.setdefault("pixel_mean", list(info.mean))
        generator_args.setdefault("pixel_std", list(info.std))
    generator = build_model(dc.generator.arch, nz=dc.nz, channels=info.channels, image_size=info.image_size,
                            **generator_args).to(device)
    if sync_batchnorm:  # after the dry forward pass, before the optimisers take the parameters
        student, generator = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (student, generator))
    if dc.channels_last:  # the frozen teacher too: it changes layout, not values
        student, generator, teacher = (runtime.to_channels_last(m) for m in (student, generator, teacher))
    for model in (student, generator):
        distributed.broadcast_module(model)
    student_optimizer = dc.student_optimizer
    if student_optimizer.lr == AUTO_LR:  # chosen from the student; metrics log it as lr_student
        student_optimizer = dataclasses.replace(student_optimizer, lr=auto_student_lr(student))
    s_opt = build_optimizer(student.parameters(), student_optimizer)
    g_opt = build_optimizer(generator.parameters(), dc.generator_optimizer)
    extra = {"generator_forward": compile_generator(generator, torch.device(device))} if dc.compile else {}
    extra["generation_student_bn"] = dc.generation_student_bn
    extra.update(dc.method_args)
    if getattr(METHODS.get(dc.method), "needs_real_images", False):
        # Segmentation teachers see random crops of whole frames, as in their training.
        crops = cfg.task == "segmentation"
        data = dc.method_args.get("data") or cfg.data.name
        if data == "none":
            raise DfadError(f"method '{dc.method}' learns from real images; name a dataset with "
                            f"distill.method_args={{data: NAME}}")
        real = load_real_images(cfg, data, info, keep_larger=crops)
        crop = (functools.partial(random_crops, size=info.image_size)
                if crops and tuple(real.images.shape[-2:]) != (info.image_size, info.image_size) else None)
        extra["images"] = ShuffledBatches(real.images, real.labels, dc.batch_size,
                                          torch.Generator().manual_seed(cfg.seed), distributed.rank,
                                          distributed.world_size, augment=crop)
    method = METHODS.build(
        dc.method, teacher=teacher, student=student, generator=generator, task=task,
        student_optimizer=s_opt, generator_optimizer=g_opt,
        student_scheduler=build_scheduler(s_opt, dc.student_schedule, dc.iterations),
        generator_scheduler=build_scheduler(g_opt, dc.generator_schedule, dc.iterations),
        batch_size=dc.batch_size // distributed.world_size, nz=dc.nz, imitation_steps=dc.imitation_steps,
        device=device, grid_size=dc.sample_grid_size, grid_seed=cfg.seed, precision=cfg.precision, **extra)
    method.distributed = distributed
    _seed_rank(cfg, distributed)
    return method


def distill(cfg: Config, out: str | Path, **kwargs) -> dict[str, Any]:
    """`distill_run`'s summary (what the CLI prints and summary.json holds)."""
    return distill_run(cfg, out, **kwargs)[0]


def distill_run(cfg: Config, out: str | Path, *, force: bool = False, resume: bool = False, progress: bool = True,
                trust_checkpoint: bool = False, teacher: Optional[nn.Module] = None,
                student: Optional[nn.Module] = None, val_loader=None, on_iteration=None,
                on_validation=None) -> tuple[dict[str, Any], Any]:
    """Data-free distillation: the student never sees a training image; the test split (or
    `val_loader`) is only used to report the metric at validation time, and may be absent
    (data.name=none). The CLI passes a config; the Python API (`dfad.distill`) also passes the
    teacher and student as modules, a validation loader and per-iteration / per-validation hooks.
    Returns the summary and the trained method (its student, generator and optimisers)."""
    origin = provenance()  # at the start: the working tree may change while the run goes on
    device, distributed = setup_distributed(cfg)
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
    student, generator = method.student, getattr(method, "generator", None)  # KD has no generator
    if test_set is not None:
        def metric_of(model):
            return evaluate(model, test_set, task, cfg.data.eval_batch_size, device, return_metric=True)
    elif val_loader is not None:
        def metric_of(model):
            return evaluate_loader(model, val_loader, task, info.num_classes, device, return_metric=True)
    else:
        metric_of = None
    measure = (lambda model: metric_of(model).compute()) if metric_of is not None else None
    # Kept for the per-class figures at the end: the frozen teacher is evaluated once.
    teacher_scores = metric_of(teacher) if metric_of is not None else None
    teacher_metric = teacher_scores.compute() if teacher_scores is not None else None
    board = TensorBoardLog(run.path) if cfg.tensorboard and distributed.is_main else None
    result = fit(method, run, iterations=dc.iterations, val_every=dc.val_every, log_every=dc.log_every,
                 validate=measure, metric_name=task.metric_name,
                 extra_checkpoint={"config": config_to_dict(cfg), "data": _data_facts(info)},
                 sample_stats=(info.mean, info.std), progress=progress, desc=dc.method,
                 time_limit_seconds=dc.time_limit_minutes * 60 if dc.time_limit_minutes else None,
                 stop_at_metric=dc.stop_at_metric, state_every=cfg.checkpointing.every,
                 keep_states=cfg.checkpointing.keep, resume=resuming, distributed=distributed,
                 resume_hint=f"rerun the same command (or add --resume to `dfad distill ... --out {out}`)",
                 on_iteration=chain(on_iteration, board), on_validation=on_validation)
    if board is not None:
        board.close()
    metric = task.metric_name
    summary = {
        f"teacher_{metric}": teacher_metric,
        f"student_{metric}": result.final_metric,
        f"best_student_{metric}": result.best_metric,
        "best_iteration": result.best_iteration,
        # Label-free health at the last validation (dfad.health) and the warnings raised.
        **{k: result.history[-1][k] for k in HEALTH_FIELDS if result.history and k in result.history[-1]},
        "health_warnings": result.health_warnings,
        "iterations": result.iterations,
        "planned_iterations": dc.iterations,
        "stopped_by_time_limit": result.stopped_by_time_limit,
        "stopped_at_target": result.stopped_at_target,
        "wall_seconds": round(result.wall_seconds, 2),
        "seconds_per_iteration": round(result.wall_seconds / max(1, result.iterations), 4),
        "metric": metric,
        "method": dc.method,
        "precision": getattr(method, "precision", cfg.precision),  # `auto` as resolved on this machine
        "channels_last": dc.channels_last,
        "teacher_arch": describe_model(teacher),
        "student_arch": describe_model(student),
        "teacher_model": describe_model(teacher),
        "student_model": describe_model(student),
        "generator_model": describe_model(generator) if generator is not None else None,
        **{f"teacher_{k}": v for k, v in model_profile(teacher, info.input_shape).items()},
        **{f"student_{k}": v for k, v in model_profile(student, info.input_shape).items()},
        "generator_params": count_parameters(generator) if generator is not None else 0,
        "teacher_checkpoint": str(cfg.teacher.checkpoint) if cfg.teacher.checkpoint else None,
        "input": _data_facts(info),
        "seed": cfg.seed,
        **origin,
    }
    if distributed.is_main:
        per_class = None
        if metric_of is not None:  # per-class accuracy, or per-class IoU (NaN: a class absent from both)
            per_class = {"teacher": teacher_scores.per_class(), "student": metric_of(student).per_class()}
            summary[f"per_class_{metric}"] = {name: [None if v != v else round(v, 4) for v in values]
                                              for name, values in per_class.items()}
        run.write_summary(summary)
        try_write_report(run.path, teacher=teacher, student=student, generator=generator, nz=dc.nz,
                         per_class=per_class, device=device)
        # A student of the user's own class cannot be rebuilt from its checkpoint: keep its
        # exported program (student.pt2) so that `dfad export` can start from it.
        from .export import write_student_program

        write_student_program(run.path, student)
    return summary, method


def evaluate_checkpoint(cfg: Config, checkpoint: str | Path, role: str = "student") -> dict[str, Any]:
    """The metric, size and FLOPs of one model in a checkpoint, on the config's test split."""
    device = setup(cfg)
    task = TASKS.build(cfg.task)
    test_set = load_split(cfg, train=False)
    payload = load_checkpoint(checkpoint)
    entry = pick_model_entry(payload, role, checkpoint)
    model = build_model_from_entry(entry, checkpoint).to(device)
    check_model_outputs(model, task, test_set.info, f"model from {checkpoint}", device)
    metric = evaluate(model, test_set, task, cfg.data.eval_batch_size, device, return_metric=True)
    return {"checkpoint": str(checkpoint), "arch": entry["arch"], "dataset": test_set.info.name,
            "samples": len(test_set), task.metric_name: metric.compute(),
            **model_profile(model, test_set.info.input_shape)}


def rebuild_report(run_dir: str | Path, data_root: Optional[str] = None, trust_checkpoint: bool = False) -> Path:
    """`dfad report RUN_DIR`: the run's models from its checkpoints (the teacher of a distillation
    from its config), the test split when it can be read, then report.html."""
    run_dir = Path(run_dir)
    config_path, best = run_dir / "config.yaml", run_dir / "checkpoints" / "best.pt"
    if not config_path.is_file() or not best.is_file():
        raise DfadError(f"{run_dir} is not a finished dfad run (needs config.yaml and checkpoints/best.pt)")
    cfg = load_config(str(config_path))
    if data_root:
        cfg.data.root = data_root
    device = torch.device("cpu")
    task = TASKS.build(cfg.task)
    payload = load_checkpoint(best)
    data = payload.get("data") or {}
    info = DatasetInfo(data.get("name", cfg.data.name), data["num_classes"], data["input_shape"][0],
                       data["input_shape"][1], tuple(data["mean"]), tuple(data["std"]))
    models = {role: build_model_from_entry(entry, best) for role, entry in payload["models"].items()
              if entry.get("arch") is not None}
    if "teacher" not in models and cfg.teacher.checkpoint:
        try:
            models["teacher"] = load_teacher(cfg, info, device, trust_checkpoint)
        except DfadError as exc:
            warnings.warn(f"report without the teacher's latency and predictions: {exc}", stacklevel=2)
    per_class = None
    if cfg.data.name != "none" and task.metric_name == "accuracy":
        try:
            test_set = load_split(cfg, train=False)
            per_class = {role: evaluate(models[role], test_set, task, cfg.data.eval_batch_size, device,
                                        return_metric=True).per_class()
                         for role in ("teacher", "student") if role in models}
        except DfadError as exc:
            warnings.warn(f"report without per-class accuracy (test split unavailable): {exc}", stacklevel=2)
    nz = (payload["models"].get("generator") or {}).get("args", {}).get("nz")
    return write_report(run_dir, teacher=models.get("teacher"), student=models.get("student"),
                        generator=models.get("generator"), nz=nz, per_class=per_class or None, device=device)
