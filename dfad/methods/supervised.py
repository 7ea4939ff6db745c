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


class ShuffledBatches:
    """Endless shuffled mini-batches of in-memory tensors whose position can be saved and restored,
    so that a resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, generator: torch.Generator,
                 rank: int = 0, world_size: int = 1, augment=None):
        self.images, self.labels, self.batch_size, self.generator = images, labels, batch_size, generator
        self.augment = augment  # callable(images, labels, generator) -> (images, labels), or None
        # Distributed: every rank shuffles alike and takes its own slice of each global batch.
        self.rank, self.world_size = rank, world_size
        self.order = torch.randperm(len(images), generator=generator)
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.position >= len(self.order):
            self.order, self.position = torch.randperm(len(self.images), generator=self.generator), 0
        index = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        if self.augment is not None:  # augment the whole global batch: every rank draws alike
            images, labels = self.augment(self.images[index], self.labels[index], self.generator)
            return images[self.rank::self.world_size], labels[self.rank::self.world_size]
        index = index[self.rank::self.world_size]
        return self.images[index], self.labels[index]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], state["position"]


@METHODS.register("supervised")
class Supervised(Method):
    def __init__(self, *, model: nn.Module, task, loader, optimizer: torch.optim.Optimizer, scheduler,
                 device: torch.device | str = "cpu", name: str = "teacher", precision: str = "fp32",
                 loss: str = "cross_entropy"):
        self.model, self.task, self.loss = model, task, loss
        self.device = torch.device(device)
        # A ShuffledBatches resumes exactly; any other iterable of batches restarts its pass.
        self.batches = loader if isinstance(loader, ShuffledBatches) else endless(loader)
        self.evaluated = model
        self.models = {name: model}
        self.optimizers = {name: optimizer}
        self.schedulers = {name: scheduler}
        self.name = name
        self.setup_precision(precision, self.device)

    def extra_state(self) -> dict:
        return {"batches": self.batches.state_dict()} if isinstance(self.batches, ShuffledBatches) else {}

    def load_extra_state(self, state: dict) -> None:
        if "batches" in state and isinstance(self.batches, ShuffledBatches):
            self.batches.load_state_dict(state["batches"])

    def step(self) -> dict[str, float]:
        self.model.train()
        images, labels = next(self.batches)
        images, labels = images.to(self.device), labels.to(self.device)
        with self.autocast():
            logits = self.model(images)
        return {"loss": self.update(self.name, self.task.supervised_loss(logits.float(), labels, self.loss))}
