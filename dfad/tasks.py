"""What a task is: the discrepancy the student minimises, the generator's loss, and the metric.

Classification and segmentation share the whole training loop and differ only here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import DfadError
from .registry import Registry

TASKS = Registry("task", config_keys=("task",))
# Losses for supervised (teacher) training: name -> f(logits, labels, ignore_index) -> scalar.
SUPERVISED_LOSSES = Registry("supervised loss", config_keys=("teacher.loss",))


@SUPERVISED_LOSSES.register("cross_entropy")
def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


@SUPERVISED_LOSSES.register("focal")
def focal(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), (1 - p_t)^gamma · cross-entropy with gamma 2, as the DFAD authors
    train their segmentation teachers; averaged over every pixel, ignored ones counting as zero
    (as in their code), so it is smaller than a mean over labelled pixels alone."""
    ce = F.cross_entropy(logits, labels, reduction="none", ignore_index=ignore_index)
    return ((1 - torch.exp(-ce)) ** gamma * ce).mean()


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
    ignore_index = -100  # no label is ignored

    def discrepancy(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(student_logits, teacher_logits)

    def generator_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        # Maximise the discrepancy: hard samples on which the student still disagrees.
        return -self.discrepancy(student_logits, teacher_logits)

    def supervised_loss(self, logits: torch.Tensor, labels: torch.Tensor, loss: str = "cross_entropy") -> torch.Tensor:
        return SUPERVISED_LOSSES.get(loss)(logits, labels, ignore_index=self.ignore_index)

    def new_metric(self, num_classes: int) -> Accuracy:
        return Accuracy(num_classes)

    # What the models must return: logits with this many dimensions, described for error messages.
    output_dims, output_description = 2, "a classifier must return logits [N, num_classes]"

    def check_outputs(self, outputs: torch.Tensor, num_classes: int, who: str) -> None:
        if outputs.dim() != self.output_dims:
            raise DfadError(f"{who} returned outputs of shape {tuple(outputs.shape)}; {self.output_description}")
        if outputs.shape[1] != num_classes:
            raise DfadError(f"{who} has {outputs.shape[1]} outputs but the data has {num_classes} classes; "
                            f"build it with num_classes={num_classes} or use a matching checkpoint")


TASKS.register("classification")(Classification)


class MeanIoU:
    """Mean intersection-over-union over classes, from a confusion matrix; pixels labelled
    `ignore_index` (void) are left out. Classes absent from both prediction and ground truth
    are left out of the mean."""

    name = "miou"

    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        self.update_classes(logits.argmax(1), labels)

    def update_classes(self, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        """Count predicted classes (any shape) against labels of the same shape."""
        predicted, labels = predicted.flatten().cpu(), labels.flatten().cpu()
        keep = labels != self.ignore_index
        index = labels[keep] * self.num_classes + predicted[keep]
        self.confusion += torch.bincount(index, minlength=self.num_classes ** 2).view(self.num_classes, -1)

    def per_class(self) -> list[float]:
        hits = self.confusion.diag().double()
        union = self.confusion.sum(0).double() + self.confusion.sum(1).double() - hits
        return [float(h / u) if u > 0 else float("nan") for h, u in zip(hits, union)]

    def compute(self) -> float:
        present = [v for v in self.per_class() if v == v]  # NaN: class never seen nor predicted
        return sum(present) / len(present) if present else 0.0


class Segmentation(Classification):
    """Logits [N, C, H, W]; the same game per pixel. The generator maximises log(L1 + 1), which
    the paper uses for segmentation because per-pixel discrepancies vary widely in scale."""

    name = "segmentation"
    metric_name = MeanIoU.name
    output_dims = 4
    output_description = "a segmentation model must return per-pixel logits [N, num_classes, H, W]"

    def __init__(self, ignore_index: int = 255):
        self.ignore_index = ignore_index

    def generator_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return -torch.log(self.discrepancy(student_logits, teacher_logits) + 1)

    def new_metric(self, num_classes: int) -> MeanIoU:
        return MeanIoU(num_classes, self.ignore_index)


TASKS.register("segmentation")(Segmentation)
