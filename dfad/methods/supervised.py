"""Ordinary supervised training on labelled data (how teachers are made), on the same engine."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from .base import METHODS, Method


def endless(loader) -> Iterator:
    """Batches forever; each pass over the loader reshuffles."""
    while True:
        yield from loader


@METHODS.register("supervised")
class Supervised(Method):
    def __init__(self, *, model: nn.Module, task, loader, optimizer: torch.optim.Optimizer, scheduler,
                 device: torch.device | str = "cpu", name: str = "teacher"):
        self.model, self.task = model, task
        self.device = torch.device(device)
        self.batches = endless(loader)
        self.evaluated = model
        self.models = {name: model}
        self.optimizers = {name: optimizer}
        self.schedulers = {name: scheduler}
        self.name = name

    def step(self) -> dict[str, float]:
        self.model.train()
        images, labels = next(self.batches)
        images, labels = images.to(self.device), labels.to(self.device)
        loss = self.task.supervised_loss(self.model(images), labels)
        optimizer = self.optimizers[self.name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}
