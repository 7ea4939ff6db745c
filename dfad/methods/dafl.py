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
from ..engine.precision import autocast_factory, grad_scaler
from .base import METHODS, Method, freeze
from .dfad import preserved_buffers


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
class DAFL(Method):
    def __init__(self, *, teacher: nn.Module, student: nn.Module, generator: nn.Module, task,
                 student_optimizer, generator_optimizer, student_scheduler, generator_scheduler,
                 batch_size: int, nz: int, device="cpu", grid_size: int = 64, grid_seed: int = 0,
                 precision: str = "fp32", onehot: float = 1.0, activation: float = 0.1, entropy: float = 5.0,
                 imitation_steps: int = 1, generator_forward=None):
        if getattr(task, "name", "") != "classification":
            raise DfadError("method 'dafl' is defined for classification only")
        self.teacher = freeze(teacher)
        self.features = PenultimateFeatures(self.teacher)
        self.student, self.generator, self.task = student, generator, task
        self.generate = generator if generator_forward is None else generator_forward
        self.batch_size, self.nz = batch_size, nz
        self.weights = {"onehot": onehot, "activation": activation, "entropy": entropy}
        self.device = torch.device(device)
        self.evaluated = student
        self.models = {"student": student, "generator": generator}
        self.optimizers = {"student": student_optimizer, "generator": generator_optimizer}
        self.schedulers = {"student": student_scheduler, "generator": generator_scheduler}
        self.autocast = autocast_factory(precision, self.device)
        self.scalers = {name: grad_scaler(precision, self.device) for name in self.optimizers}
        self.grid_noise = torch.randn(grid_size, nz, generator=torch.Generator().manual_seed(grid_seed)).to(self.device)

    def generator_losses(self, teacher_logits: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        onehot = F.cross_entropy(teacher_logits, teacher_logits.argmax(1))
        activation = -features.abs().mean()
        mean_prob = F.softmax(teacher_logits, dim=1).mean(0)
        # Negative entropy of the batch's class distribution: lowest when classes are balanced.
        entropy = (mean_prob * torch.log(mean_prob.clamp_min(1e-12))).sum()
        return {"onehot": onehot, "activation": activation, "entropy": entropy}

    def _update(self, name: str, loss: torch.Tensor) -> None:
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        self.distributed.average_gradients(self.models[name].parameters())
        scaler.step(optimizer)
        scaler.update()

    def step(self) -> dict[str, float]:
        self.teacher.eval()
        self.student.train()
        self.generator.train()
        z = torch.randn(self.batch_size, self.nz, device=self.device)
        with self.autocast():
            images = self.generate(z)
            teacher_logits = self.teacher(images).float()
        parts = self.generator_losses(teacher_logits, self.features.value.float())
        generator_loss = sum(self.weights[k] * v for k, v in parts.items())
        self._update("generator", generator_loss)
        with self.autocast():
            student_logits = self.student(images.detach()).float()
        student_loss = F.kl_div(F.log_softmax(student_logits, 1), F.softmax(teacher_logits.detach(), 1),
                                reduction="batchmean")
        self._update("student", student_loss)
        return {"student_loss": student_loss.item(), "generator_loss": generator_loss.item(),
                **{f"dafl_{k}": v.item() for k, v in parts.items()}}

    def sample_images(self) -> torch.Tensor:
        with torch.no_grad(), preserved_buffers(self.generator):
            self.generator.train()
            return self.generator(self.grid_noise)

    def extra_state(self) -> dict:
        return {"scalers": {k: s.state_dict() for k, s in self.scalers.items()}}

    def load_extra_state(self, state: dict) -> None:
        for k, saved in state.get("scalers", {}).items():
            if saved:
                self.scalers[k].load_state_dict(saved)
