"""Run a model over a labelled split in inference mode and compute the task's metric."""
from __future__ import annotations

import torch
from torch import nn

from ..data import ImageDataset


def evaluate(model: nn.Module, dataset: ImageDataset, task, batch_size: int = 1000,
             device: torch.device | str = "cpu", return_metric: bool = False):
    """The task's metric (e.g. top-1 accuracy) of `model` on `dataset`; restores the model's mode."""
    return evaluate_loader(model, dataset.loader(batch_size, shuffle=False), task, dataset.info.num_classes,
                           device, return_metric)


def evaluate_loader(model: nn.Module, loader, task, num_classes: int, device: torch.device | str = "cpu",
                    return_metric: bool = False):
    """The task's metric over any iterable of (images, labels) batches (a split's loader, a user's
    DataLoader); restores the model's mode."""
    was_training = model.training
    model.eval()
    metric = task.new_metric(num_classes)
    try:
        with torch.inference_mode():
            for images, labels in loader:
                metric.update(model(images.to(device)), labels.to(device))
    finally:
        model.train(was_training)
    return metric if return_metric else metric.compute()
