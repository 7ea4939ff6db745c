"""Optimisers and per-iteration learning-rate schedules from their configs."""
from __future__ import annotations

from typing import Iterable

import torch

from ..config import OptimizerConfig, ScheduleConfig


# The authors' student rates: SGD 0.1 for their BatchNorm students (CIFAR, Caltech-101,
# segmentation), 0.01 for LeNet-5-half (MNIST). A plain CNN at 0.1 dies in DFAD's first iterations;
# a BatchNorm student at 0.01 learns several times slower (results/foreign/README.md).
AUTO_LR_WITH_BATCHNORM = 0.1
AUTO_LR_WITHOUT_BATCHNORM = 0.01


def auto_student_lr(student: torch.nn.Module) -> float:
    """The student's learning rate for `lr: auto`: set by whether it normalises with BatchNorm."""
    has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in student.modules())
    return AUTO_LR_WITH_BATCHNORM if has_batchnorm else AUTO_LR_WITHOUT_BATCHNORM


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iterations: int):
    """Schedules count iterations (the loop steps them once per iteration)."""
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
    if cfg.name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestones, cfg.gamma)
    if cfg.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_iterations)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
