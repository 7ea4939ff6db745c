"""Label-free health of a distillation run: what a user without labelled data can watch.

Measured at every validation on a fixed batch of generated samples (fixed noise from a private
RNG: drawing it never shifts training, and the student never trains on these exact samples):
- `agreement`: the share of samples (pixels, for segmentation) on which student and teacher
  predict the same class. It rises as the student learns: the data-free stand-in for accuracy.
- `teacher_top_class_share`: the largest share of one class among the teacher's predictions
  (about 1/C while the generator explores every class).
- `teacher_class_entropy`: the entropy of the teacher's predicted-class histogram over log C
  (1 = every class equally often, 0 = one class only).

`HealthMonitor` turns these into warnings (rules below, stated once here and in the README).
"""
from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from .engine.state import preserved_buffers

HEALTH_SAMPLES = 256
# Collapse: one class takes at least this share of the teacher's predictions (3+ classes only,
# where a uniform share is at most a third).
COLLAPSE_SHARE = 0.5
# Divergence: agreement fell at least this far below its best value so far in the run.
DIVERGENCE_DROP = 0.2


def health_noise(nz: int, seed: int, samples: int = HEALTH_SAMPLES) -> torch.Tensor:
    """The fixed noise batch of a run (its own RNG, offset from the sample grid's)."""
    return torch.randn(samples, nz, generator=torch.Generator().manual_seed(seed + 7919))


@contextmanager
def unchanged(*models: nn.Module):
    """Run models in any mode, then restore their train/eval modes and buffers (BatchNorm statistics)."""
    modes = [m.training for m in models]
    try:
        with ExitStack() as stack:
            for m in models:
                stack.enter_context(preserved_buffers(m))
            yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


@torch.no_grad()
def measure_health(teacher: nn.Module, student: nn.Module, generator: nn.Module, noise: torch.Tensor,
                   generate: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                   batch: int = 128) -> dict[str, float]:
    """Agreement and the teacher's class balance on G(noise). The generator samples in train mode,
    as in training (its BatchNorm normalises the batch); teacher and student predict in eval mode,
    as they are used. Nothing about the models changes."""
    generate = generate or generator
    teacher_classes, student_classes = [], []
    with unchanged(teacher, student, generator):
        generator.train()
        teacher.eval()
        student.eval()
        for start in range(0, len(noise), batch):
            images = generate(noise[start:start + batch])
            teacher_logits = teacher(images)
            num_classes = teacher_logits.shape[1]
            teacher_classes.append(teacher_logits.argmax(1).flatten().cpu())
            student_classes.append(student(images).argmax(1).flatten().cpu())
    t, s = torch.cat(teacher_classes), torch.cat(student_classes)
    shares = torch.bincount(t, minlength=num_classes).double() / len(t)
    present = shares[shares > 0]
    entropy = float(-(present * present.log()).sum()) / math.log(num_classes) if num_classes > 1 else 1.0
    return {"agreement": float((t == s).double().mean()), "teacher_top_class_share": float(shares.max()),
            "teacher_class_entropy": entropy, "num_classes": num_classes}


@dataclass
class HealthMonitor:
    """Warnings from successive health measurements. Each kind is raised once, when it starts,
    and may be raised again after it cleared."""

    best_agreement: float = -1.0
    active: set = field(default_factory=set)

    def check(self, health: dict[str, float], iteration: int) -> list[str]:
        found = {}
        classes = int(health.get("num_classes", 0))
        share = health.get("teacher_top_class_share")
        if share is not None and classes >= 3 and share >= COLLAPSE_SHARE:
            found["collapse"] = (f"iteration {iteration}: generator collapse - the teacher puts {share:.0%} of generated "
                                 f"samples in one class (uniform: {1 / classes:.0%}); the student learns little "
                                 f"about the other classes. Try a lower generator learning rate or a larger batch")
        agreement = health.get("agreement")
        if agreement is not None:
            if agreement <= self.best_agreement - DIVERGENCE_DROP:
                found["divergence"] = (f"iteration {iteration}: the student is diverging - it agrees with the teacher "
                                       f"on {agreement:.0%} of fresh generated samples, down from {self.best_agreement:.0%}; "
                                       f"lower the learning rates or decay them together (student and generator)")
            self.best_agreement = max(self.best_agreement, agreement)
        new = [message for kind, message in found.items() if kind not in self.active]
        self.active = set(found)
        return new
