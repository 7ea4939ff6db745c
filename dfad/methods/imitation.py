"""What the student minimises in an imitation step, by name (`distill.method_args.imitation_loss`).

- `l1` (the paper): the task's discrepancy, the mean absolute logit difference (per pixel for
  segmentation). Its gradient is +-1 per logit whatever the size of the error, so how fast a
  student follows a teacher with large logits is set by its learning rate alone.
- `kl`: KL(teacher || student) between the class distributions softened by `temperature` (per
  pixel for segmentation), times temperature**2 so that its gradients keep their size across
  temperatures (Hinton et al. 2015); the soft-target imitation of ZSKT (Micaelli & Storkey 2019)
  and later data-free work. Shifting all of a sample's logits together changes nothing, and very
  large teacher logits become a confident target instead of a distance to cover.

The generator keeps the task's own loss (the L1 bound of the paper) whichever the student uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import Registry

IMITATION_LOSSES = Registry("imitation loss")


@IMITATION_LOSSES.register("l1")
def task_discrepancy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, task,
                     temperature: float) -> torch.Tensor:
    return task.discrepancy(student_logits, teacher_logits)


@IMITATION_LOSSES.register("kl")
def softened_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, task,
                temperature: float) -> torch.Tensor:
    # Classes on dim 1 for [N, C] and [N, C, H, W] alike; summed over classes, averaged over
    # samples (and pixels).
    student_log_p = F.log_softmax(student_logits / temperature, dim=1)
    teacher_log_p = F.log_softmax(teacher_logits / temperature, dim=1)
    per_position = F.kl_div(student_log_p, teacher_log_p, reduction="none", log_target=True).sum(1)
    return per_position.mean() * temperature ** 2
