"""What a task is: the discrepancy the student minimises, the generator's loss, and the metric.

Classification and segmentation share the whole training loop and differ only here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import DfadError
from .registry import Registry

TASKS = Registry("task")


class Accuracy:
    """Top-1 accuracy accumulated over batches (also keeps per-class counts)."""

    name = "accuracy"

    def __init__(self, num_classes: int):
        self.correct = torch.zeros(num_classes, dtype=torch.long)
        self.total = torch.zeros(num_classes, dtype=torch.long)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        hits = (logits.argmax(1) == labels).long().cpu()
        labels = labels.cpu()
        self.correct += torch.bincount(labels, weights=hits, minlength=len(self.correct)).long()
        self.total += torch.bincount(labels, minlength=len(self.total))

    def compute(self) -> float:
        return float(self.correct.sum()) / max(1, int(self.total.sum()))

    def per_class(self) -> list[float]:
        return (self.correct.double() / self.total.clamp(min=1).double()).tolist()


class Classification:
    """Logits [N, C]; student and generator play on the mean absolute logit difference (L1)."""

    name = "classification"
    metric_name = Accuracy.name

    def discrepancy(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(student_logits, teacher_logits)

    def generator_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        # Maximise the discrepancy: hard samples on which the student still disagrees.
        return -self.discrepancy(student_logits, teacher_logits)

    def supervised_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def new_metric(self, num_classes: int) -> Accuracy:
        return Accuracy(num_classes)

    def check_outputs(self, outputs: torch.Tensor, num_classes: int, who: str) -> None:
        if outputs.dim() != 2:
            raise DfadError(f"{who} returned outputs of shape {tuple(outputs.shape)}; a classifier must "
                            f"return logits [N, num_classes]")
        if outputs.shape[1] != num_classes:
            raise DfadError(f"{who} has {outputs.shape[1]} outputs but the data has {num_classes} classes; "
                            f"build it with num_classes={num_classes} or use a matching checkpoint")


TASKS.register("classification")(Classification)
