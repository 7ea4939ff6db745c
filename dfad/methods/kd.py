"""Knowledge distillation on real images: the KD-ORI / KD-REL / KD-UNR baselines.

The student matches the teacher's logits with the task's discrepancy (L1, as DFAD's imitation
step) on batches of a real dataset: the teacher's own training data (KD-ORI), related data
(KD-REL) or unrelated data (KD-UNR). Labels are never used. One iteration is `imitation_steps`
student updates, so a KD run makes as many student updates as a DFAD run of the same length.
"""
from __future__ import annotations

from statistics import fmean

import torch
from torch import nn

from .base import METHODS, Method, freeze
from .supervised import ShuffledBatches


@METHODS.register("kd")
class KD(Method):
    parts = ("student", "student_optimizer", "real_images")

    @classmethod
    def from_config(cls, parts) -> "KD":
        student = parts.student()
        optimizer, scheduler = parts.optimizer("student")
        # The images: the training split of `method_args.data`, by default the task's own dataset.
        return cls(student=student, student_optimizer=optimizer, student_scheduler=scheduler,
                   images=parts.real_images(), **parts.common(), **parts.cfg.distill.method_args)

    def __init__(self, *, teacher: nn.Module, student: nn.Module, task, student_optimizer, student_scheduler,
                 images: ShuffledBatches, imitation_steps: int = 5, device="cpu", precision: str = "fp32",
                 data: str | None = None, grid_size: int = 64):
        # `data` names the dataset loaded into `images`; nothing more to do with it here.
        self.teacher = freeze(teacher)
        self.student, self.task, self.images = student, task, images
        self.imitation_steps = imitation_steps
        self.device = torch.device(device)
        self.evaluated = student
        self.models = {"student": student}
        self.optimizers = {"student": student_optimizer}
        self.schedulers = {"student": student_scheduler}
        self.setup_precision(precision, self.device)
        self.grid = images.images[:grid_size].to(self.device)  # what the student learns from, for the grid

    def imitation_step(self) -> float:
        images, _ = next(self.images)
        images = images.to(self.device, non_blocking=True)
        with torch.no_grad(), self.autocast():
            teacher_out = self.teacher(images)
        with self.autocast():
            student_out = self.student(images)
        return self.update("student", self.task.discrepancy(student_out.float(), teacher_out.float()))

    def step(self) -> dict[str, float]:
        self.teacher.eval()
        self.student.train()
        return {"student_loss": fmean(self.imitation_step() for _ in range(self.imitation_steps))}

    def sample_images(self) -> torch.Tensor:
        return self.grid

    def extra_state(self) -> dict:
        return {"images": self.images.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.images.load_state_dict(state["images"])
