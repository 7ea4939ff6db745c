"""Run under torchrun by tests/test_distributed.py: a few DFAD iterations of the training loop on
every rank (a student with BatchNorm), then each rank saves its networks and the sizes of the
all-reduces it made."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dfad.config import load_config
from dfad.data import DATASETS
from dfad.engine import RunDir, fit
from dfad.runs import build_distillation, load_teacher, setup_distributed
from dfad.tasks import TASKS
from tiny_models import TinyClassifier


def record_all_reduce_sizes() -> list[int]:
    """From now on, the number of elements of every `dist.all_reduce` this process makes."""
    sizes: list[int] = []
    real_all_reduce = dist.all_reduce

    def recording_all_reduce(tensor, *args, **kwargs):
        sizes.append(tensor.numel())
        return real_all_reduce(tensor, *args, **kwargs)

    dist.all_reduce = recording_all_reduce
    return sizes


def main(teacher_path: str, out: str, iterations: int) -> None:
    cfg = load_config("digits", ["distill.batch_size=32", "distill.generator.args.ngf=8", "threads=1"])
    cfg.teacher.checkpoint = teacher_path
    device, distributed = setup_distributed(cfg)
    task = TASKS.build(cfg.task)
    test_set = DATASETS.build("digits", root=None, train=False)
    teacher = load_teacher(cfg, test_set.info, device)
    student = TinyClassifier(channels=1, num_classes=10)  # the digits student has no BatchNorm
    method = build_distillation(cfg, teacher, test_set.info, task, device, distributed, student=student)
    reduced = record_all_reduce_sizes()
    run = RunDir(Path(out) / "run", writer=distributed.is_main)
    fit(method, run, iterations=iterations, val_every=iterations, progress=False, distributed=distributed)
    torch.save({"student": method.student.state_dict(), "generator": method.generator.state_dict(),
                "all_reduce_sizes": reduced, "world_size": distributed.world_size, "batch": method.batch_size},
               Path(out) / f"rank{distributed.rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
