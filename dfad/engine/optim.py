"""Optimisers and per-iteration learning-rate schedules from their configs."""
from __future__ import annotations

from typing import Iterable

import torch

from ..config import OptimizerConfig, ScheduleConfig
from ..registry import Registry


# The authors' student rates: SGD 0.1 for their BatchNorm students (CIFAR, Caltech-101,
# segmentation), 0.01 for LeNet-5-half (MNIST). A plain CNN at 0.1 dies in DFAD's first iterations;
# a BatchNorm student at 0.01 learns several times slower (results/foreign/README.md).
AUTO_LR_WITH_BATCHNORM = 0.1
AUTO_LR_WITHOUT_BATCHNORM = 0.01


def auto_student_lr(student: torch.nn.Module) -> float:
    """The student's learning rate for `lr: auto`: set by whether it normalises with BatchNorm."""
    has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in student.modules())
    return AUTO_LR_WITH_BATCHNORM if has_batchnorm else AUTO_LR_WITHOUT_BATCHNORM


_OPTIMIZER_KEYS = ("teacher.optimizer.name", "distill.student_optimizer.name", "distill.generator_optimizer.name")
_SCHEDULE_KEYS = ("teacher.schedule.name", "distill.student_schedule.name", "distill.generator_schedule.name")
OPTIMIZERS = Registry("optimizer", config_keys=_OPTIMIZER_KEYS, listed=True)  # factory(params, cfg)
SCHEDULES = Registry("schedule", config_keys=_SCHEDULE_KEYS, listed=True)  # factory(optimizer, cfg, total)


# foreach: one multi-tensor update instead of a loop over parameters (PyTorch's CPU default is the
# loop), bit-identical to it on CPU; the generator's Adam step 30.9 -> 16.3 ms at 1 thread.
# `fused` would be faster still (6.5 ms) but rounds differently (benchmarks/optimizer_step.py).
@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=True)


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(params, cfg)


def _schedule(name: str, reads: tuple[str, ...]):
    """Register a schedule with the ScheduleConfig fields it reads (the others do not make a run different)."""
    def decorator(factory):
        factory.reads = reads
        return SCHEDULES.register(name)(factory)
    return decorator


@_schedule("none", reads=())
def constant(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iterations: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@_schedule("step", reads=("step_size", "gamma"))
def step(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iterations: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)


@_schedule("multistep", reads=("milestones", "gamma"))
def multistep(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iterations: int):
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestones, cfg.gamma)


@_schedule("cosine", reads=())
def cosine(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iterations: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_iterations)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iterations: int):
    """Schedules count iterations (the loop steps them once per iteration)."""
    return SCHEDULES.get(cfg.name)(optimizer, cfg, total_iterations)


def schedule_fields(name: str) -> tuple[str, ...]:
    """The ScheduleConfig fields a schedule reads besides its name."""
    return SCHEDULES.get(name).reads
