"""DAFL (Chen et al., "Data-Free Learning of Student Networks", ICCV 2019) as a baseline.

The generator is trained so that the teacher sees confident, strongly activating, class-balanced
samples: one-hot cross-entropy of the teacher's logits against their own argmax, minus the mean
absolute activation of the teacher's penultimate features, and minus the entropy of the teacher's
class distribution averaged over the batch. The student learns by ordinary knowledge
distillation (KL divergence to the teacher's softmax) on the same generated batch. Unlike DFAD,
the student plays no part in the generator's objective.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DfadError
from .base import METHODS
from .dfad import DFAD, IMITATION_OPTIONS, option_defaults, refuse_generator_options
from .priors import class_balance_loss, confidence_loss


class PenultimateFeatures:
    """Captures the input of a classifier's last linear layer (its penultimate features)."""

    def __init__(self, model: nn.Module):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise DfadError(f"DAFL needs the teacher's penultimate features, but {type(model).__name__} has no "
                            f"nn.Linear classifier layer to read them from")
        self.value: torch.Tensor | None = None
        linears[-1].register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.value = inputs[0]


@METHODS.register("dafl")
class DAFL(DFAD):
    """DAFL on DFAD's plumbing (networks, optimisers, noise, compiled generator, sample grids);
    only the objectives and the step differ. `imitation_steps` is ignored: one student update per
    iteration, as in DAFL."""

    def __init__(self, *, teacher: nn.Module, task, onehot: float = 1.0, activation: float = 0.1,
                 entropy: float = 5.0, **dfad_arguments):
        if getattr(task, "name", "") != "classification":
            raise DfadError("method 'dafl' is defined for classification only")
        refuse_generator_options("dafl", dfad_arguments)
        # DAFL's student learns with its own KL (one update per iteration), not DFAD's imitation step.
        changed = [k for k, default in option_defaults(IMITATION_OPTIONS).items()
                   if dfad_arguments.get(k, default) != default]
        if changed:
            raise DfadError(f"distill.method_args {', '.join(changed)}: imitation_loss and temperature are options of "
                            f"method 'dfad' (and 'random'), as are replay and augment, not of 'dafl', whose student "
                            f"step is DAFL's own KL; remove them")
        super().__init__(teacher=teacher, task=task, **dfad_arguments)
        self.features = PenultimateFeatures(self.teacher)
        self.weights = {"onehot": onehot, "activation": activation, "entropy": entropy}

    def generator_losses(self, teacher_logits: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        onehot = confidence_loss(teacher_logits)
        activation = -features.abs().mean()
        # Negative entropy of the batch's class distribution: lowest when classes are balanced.
        entropy = class_balance_loss(teacher_logits)
        return {"onehot": onehot, "activation": activation, "entropy": entropy}

    def step(self) -> dict[str, float]:
        self.teacher.eval()
        self.student.train()
        self.generator.train()
        with self.autocast():
            images = self.generate(self.noise())
            teacher_logits = self.teacher(images).float()
        parts = self.generator_losses(teacher_logits, self.features.value.float())
        generator_loss = sum(self.weights[k] * v for k, v in parts.items())
        generator_value = self.update("generator", generator_loss)
        with self.autocast():
            student_logits = self.student(images.detach()).float()
        student_loss = F.kl_div(F.log_softmax(student_logits, 1), F.softmax(teacher_logits.detach(), 1),
                                reduction="batchmean")
        student_value = self.update("student", student_loss)
        self.update_averages()
        return {"student_loss": student_value, "generator_loss": generator_value,
                **{f"dafl_{k}": v.item() for k, v in parts.items()}}
