"""Exponential moving averages of a model's weights, for two of DFAD's options: a momentum
generator whose average makes the imitation samples (MAD, Do et al. 2022), and an averaged
student reported beside the raw one (torchvision's `--model-ema`). torch's AveragedModel does
the averaging; this keeps its count with the run's state, so a resumed run averages on exactly."""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class MovingAverage:
    """`model`'s weights and buffers averaged with `decay` per `update()` (the first update copies).
    `average` is a copy of the model (same class and dfad_spec, so checkpoints can rebuild it),
    never trained itself."""

    def __init__(self, model: nn.Module, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.averaged.requires_grad_(False)
        self.source = model
        self.update()  # starts as the model: usable before the first iteration

    @property
    def average(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self) -> None:
        self.averaged.update_parameters(self.source)

    def state_dict(self) -> dict:
        return {"n_averaged": self.averaged.n_averaged.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.averaged.n_averaged.copy_(state["n_averaged"])
