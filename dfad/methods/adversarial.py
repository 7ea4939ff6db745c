"""What the generator maximises in a generation step, by name (`distill.method_args.generator_loss`).

- `task` (the paper): the task's own bound, -L1 between the logits (-log(L1 + 1) for
  segmentation). Logits are unbounded: with a teacher whose outputs grow with its input's
  contrast (no BatchNorm), the generator can raise the L1 by raising the contrast alone.
- `probability_l1`: -L1 between the student's and the teacher's class distributions (softmax over
  classes; per pixel for segmentation), summed over classes and averaged over samples (and
  pixels); bounded by 2, so only a disagreement about the classes pays, not the size of the logits
  (the bounded discrepancy of DFME, Truong et al. 2021, turned to the class distributions).
- `kl`: -KL(teacher || student) between the class distributions, as the imitation loss of the
  same name at temperature 1 (MAZE, Kariyappa et al. 2021, and ZSKT's generator).

The student keeps its own imitation loss whichever the generator uses.
"""
from __future__ import annotations

import torch

from ..registry import Registry
from .imitation import softened_kl

GENERATOR_LOSSES = Registry("generator loss")


@GENERATOR_LOSSES.register("task")
def task_bound(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, task) -> torch.Tensor:
    return task.generator_loss(student_logits, teacher_logits)


@GENERATOR_LOSSES.register("probability_l1")
def probability_l1(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, task) -> torch.Tensor:
    difference = torch.softmax(student_logits, dim=1) - torch.softmax(teacher_logits, dim=1)
    return -difference.abs().sum(1).mean()


@GENERATOR_LOSSES.register("kl")
def negative_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, task) -> torch.Tensor:
    return -softened_kl(student_logits, teacher_logits, task=task, temperature=1.0)
