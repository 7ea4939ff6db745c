"""What the training loop needs from a method: one `step()` per iteration, plus what to save."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import Registry

METHODS = Registry("method")


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: the teacher is a fixed function."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Method:
    """Base class. Subclasses set `evaluated` (the model validated), `models` (what checkpoints hold),
    `optimizers` and `schedulers`, and implement `step`."""

    evaluated: nn.Module
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]

    def step(self) -> dict[str, float]:
        raise NotImplementedError

    def sample_images(self) -> Optional[torch.Tensor]:
        """Images to show in a grid at each validation (normalised input space), or None."""
        return None

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
