"""Priors on generated samples that a generator's loss can add to the adversarial term: what
the teacher's own outputs and BatchNorm layers say the training data looked like."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DfadError
from ..model_files import FrozenGraph


def class_balance_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Negative entropy of the teacher's class distribution averaged over the batch (and over the
    pixels, for [N, C, H, W] outputs), as DAFL's information-entropy term: -log C when every class
    is equally likely over the batch, 0 when the teacher sees one class only."""
    classes = teacher_logits.shape[1]
    probs = torch.softmax(teacher_logits, dim=1).movedim(1, -1).reshape(-1, classes).mean(0)
    return (probs * torch.log(probs.clamp_min(1e-12))).sum()


def confidence_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the teacher's outputs against their own argmax (per pixel for [N, C, H, W]),
    as DAFL's one-hot term: low where the teacher is sure, i.e. on samples that look like a class
    to it, away from its decision boundaries."""
    return F.cross_entropy(teacher_logits, teacher_logits.argmax(1))


def total_variation_loss(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between vertically and horizontally neighbouring pixels, summed
    over the two directions (DeepInversion's l1 total-variation image prior, Yin et al. 2020):
    small for smooth images, large for the saturated, high-frequency textures a generator finds
    when nothing but a teacher without BatchNorm judges its samples."""
    return ((images[:, :, 1:] - images[:, :, :-1]).abs().mean()
            + (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean())


class BatchNormStatistics:
    """The DeepInversion / DFQ prior: over every BatchNorm layer of the teacher, the L2 distance
    between the mean and variance of its input on the current batch and the layer's running
    statistics (those of the teacher's training data), summed over layers.

    Found through forward hooks on nn.BatchNorm* modules, or, in an exported program (.pt2), on
    identity modules put before its BatchNorm ops (FrozenGraph.expose_batchnorm_inputs). A
    TorchScript file folds them out of reach. Collects only between start() and stop()."""

    def __init__(self, teacher: nn.Module):
        if isinstance(teacher, FrozenGraph):
            self.layers = teacher.expose_batchnorm_inputs()
        else:
            self.layers = [m for m in teacher.modules()
                           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
        if not self.layers:
            raise DfadError(f"distill.method_args.bn_prior needs a teacher with BatchNorm layers holding running "
                            f"statistics; {type(teacher).__name__} has none visible (a TorchScript teacher hides "
                            f"them: pass the nn.Module, an exported .pt2, a dfad checkpoint or a state dict with "
                            f"--teacher-arch), or set bn_prior to 0")
        self.terms: list[torch.Tensor] = []
        self.collecting = False
        for layer in self.layers:
            layer.register_forward_hook(self._measure)

    def _measure(self, module: nn.Module, inputs, output) -> None:
        if not self.collecting:
            return
        x = inputs[0].float()
        dims = [d for d in range(x.dim()) if d != 1]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.terms.append(torch.linalg.vector_norm(mean - module.running_mean.float())
                          + torch.linalg.vector_norm(var - module.running_var.float()))

    def start(self) -> None:
        self.terms, self.collecting = [], True

    def stop(self) -> torch.Tensor:
        self.collecting = False
        if not self.terms:
            raise DfadError("the teacher's BatchNorm layers did not run on the generated batch; bn_prior cannot "
                            "measure their statistics (set distill.method_args.bn_prior to 0)")
        total, self.terms = torch.stack(self.terms).sum(), []
        return total
