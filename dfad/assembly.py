"""What a distillation method builds itself from: the run's config, frozen teacher, task and data
facts, and, on request, the parts the method names in `Method.parts` (a student, a generator,
their optimisers and schedules, batches of real images). Each part is built once, in the order
the method asks for it, already on the run's device, layout and processes."""
from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Optional

import torch
from torch import nn

from .config import AUTO_LR, Config
from .data import DatasetInfo
from .data.augment import random_crops
from .data.real_images import load_real_images
from .engine import runtime
from .engine.distributed import SINGLE, Distributed
from .engine.optim import auto_student_lr, build_optimizer, build_scheduler
from .errors import DfadError
from .methods.supervised import ShuffledBatches
from .model_checks import check_model_outputs
from .models import build_model, describe_model


class RunParts:
    """The parts of one distillation run, for `Method.from_config`: only those in `declared` (the
    method's `parts`) can be asked for. `student`: the user's own student module (the Python
    API), else one is built from `distill.student`. Under torchrun, `distill.batch_size` is the
    global batch, split evenly over the processes."""

    def __init__(self, cfg: Config, teacher: nn.Module, info: DatasetInfo, task, device, *,
                 declared: tuple[str, ...], distributed: Distributed = SINGLE, student: Optional[nn.Module] = None):
        self.cfg, self.info, self.task, self.distributed = cfg, info, task, distributed
        self.device = torch.device(device)
        self.method, self.declared = cfg.distill.method, set(declared)  # the method's `parts`
        dc = cfg.distill
        if dc.batch_size % distributed.world_size:
            raise DfadError(f"distill.batch_size {dc.batch_size} does not split evenly over "
                            f"{distributed.world_size} processes; choose a multiple of {distributed.world_size}")
        self.sync_batchnorm = dc.sync_batchnorm and distributed.enabled  # alone, nothing to synchronise
        if self.sync_batchnorm and self.device.type != "cuda":  # PyTorch's SyncBatchNorm rejects CPU tensors
            raise DfadError("distill.sync_batchnorm needs CUDA devices; SyncBatchNorm does not run on CPU (gloo): "
                            "run with device=cuda, or set distill.sync_batchnorm=false (each process then "
                            "normalises its own batch; the running statistics are still averaged over processes)")
        # The frozen teacher in the run's layout too: it changes layout, not values.
        self.teacher = runtime.to_channels_last(teacher) if dc.channels_last else teacher
        self._given_student = student
        self._built: dict[str, nn.Module] = {}

    def common(self) -> dict:
        """What every distillation method's constructor takes: teacher, task, device, precision,
        student updates per iteration and the size of its sample grids."""
        dc = self.cfg.distill
        return dict(teacher=self.teacher, task=self.task, device=self.device, precision=self.cfg.precision,
                    imitation_steps=dc.imitation_steps, grid_size=dc.sample_grid_size)

    @property
    def batch_size_per_process(self) -> int:
        return self.cfg.distill.batch_size // self.distributed.world_size

    def _check_declared(self, part: str) -> None:
        if part not in self.declared:
            raise TypeError(f"method '{self.method}' asks for part '{part}' but does not name it in its "
                            f"`parts` ({sorted(self.declared)}); add it there")

    def _finish(self, model: nn.Module) -> nn.Module:
        """Synchronised BatchNorm, the run's layout, and the same weights on every process."""
        if self.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if self.cfg.distill.channels_last:
            model = runtime.to_channels_last(model)
        self.distributed.broadcast_module(model)
        return model

    def student(self) -> nn.Module:
        """The student, checked against the data's inputs and the task's outputs."""
        self._check_declared("student")
        if "student" not in self._built:
            info, dc = self.info, self.cfg.distill
            student = self._given_student
            if student is None:
                student = build_model(dc.student.arch, num_classes=info.num_classes, in_channels=info.channels,
                                      **dc.student.args)
            student = student.to(self.device)
            check_model_outputs(student, self.task, info, f"student '{describe_model(student)}'", self.device)
            self._built["student"] = self._finish(student)
        return self._built["student"]

    def generator(self) -> nn.Module:
        """The generator of `distill.generator`, making inputs of the teacher's shape (and, for
        a pixel-output generator, normalised with the teacher's statistics)."""
        self._check_declared("generator")
        if "generator" not in self._built:
            info, dc = self.info, self.cfg.distill
            args = dict(dc.generator.args)
            if args.get("output") == "pixels":  # pixels -> the teacher's normalised inputs
                if info.name == "none" and self.cfg.data.mean is None:
                    warnings.warn(f"the generator makes pixels normalised as your teacher's inputs, assumed to be "
                                  f"mean {list(info.mean)}, std {list(info.std)}; if the teacher was trained with "
                                  f"other statistics, give them (--input-mean/--input-std, or input_mean/input_std "
                                  f"in the API)", stacklevel=3)
                args.setdefault("pixel_mean", list(info.mean))
                args.setdefault("pixel_std", list(info.std))
            generator = build_model(dc.generator.arch, nz=dc.nz, channels=info.channels, image_size=info.image_size,
                                    **args).to(self.device)
            self._built["generator"] = self._finish(generator)
        return self._built["generator"]

    def optimizer(self, model: str) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The optimiser and learning-rate schedule of `model` ('student' or 'generator', built first)
        from `distill.<model>_optimizer` and `distill.<model>_schedule`."""
        self._check_declared(f"{model}_optimizer")
        dc = self.cfg.distill
        settings = getattr(dc, f"{model}_optimizer")
        if model == "student" and settings.lr == AUTO_LR:  # chosen from the student; metrics log it as lr_student
            settings = dataclasses.replace(settings, lr=auto_student_lr(self._built["student"]))
        optimizer = build_optimizer(self._built[model].parameters(), settings)
        return optimizer, build_scheduler(optimizer, getattr(dc, f"{model}_schedule"), dc.iterations)

    def real_images(self) -> ShuffledBatches:
        """Shuffled batches of the training split of `method_args.data` (default: the task's own
        dataset) as the teacher sees them; a segmentation teacher sees random crops of whole
        frames, as in its training."""
        self._check_declared("real_images")
        cfg, dc, info = self.cfg, self.cfg.distill, self.info
        data = dc.method_args.get("data") or cfg.data.name
        if data == "none":
            raise DfadError(f"method '{self.method}' learns from real images; name a dataset with "
                            f"distill.method_args={{data: NAME}}")
        crops = cfg.task == "segmentation"
        real = load_real_images(cfg, data, info, keep_larger=crops)
        crop = (functools.partial(random_crops, size=info.image_size)
                if crops and tuple(real.images.shape[-2:]) != (info.image_size, info.image_size) else None)
        return ShuffledBatches(real.images, real.labels, dc.batch_size, torch.Generator().manual_seed(cfg.seed),
                               self.distributed.rank, self.distributed.world_size, augment=crop)

