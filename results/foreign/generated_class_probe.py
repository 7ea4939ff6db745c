"""The teacher's predicted classes on a finished run's generated samples, and the student's agreement
with it per class: does the generator show the teacher every class?

    python results/foreign/generated_class_probe.py TEACHER.ts RUN_DIR [RUN_DIR ...]

1,024 samples of each run's last generator (train mode, as in training), seed 0, 1 thread.
"""
import sys

import torch

from dfad.engine.checkpoint import build_model_from_entry


@torch.no_grad()
def main(teacher_file: str, runs: list[str]) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    teacher = torch.jit.load(teacher_file).eval()
    for run in runs:
        path = f"{run}/checkpoints/last.pt"
        models = torch.load(path, map_location="cpu", weights_only=True)["models"]
        generator = build_model_from_entry(models["generator"], path).train()
        student = build_model_from_entry(models["student"], path).eval()
        images = torch.cat([generator(torch.randn(128, generator.nz)) for _ in range(8)])
        teacher_out = teacher(images)
        teacher_class, student_class = teacher_out.argmax(1), student(images).argmax(1)
        classes = teacher_out.shape[1]
        agreement = [(student_class[teacher_class == c] == c).float().mean().item() if (teacher_class == c).any()
                     else None for c in range(classes)]
        print(run.split("/")[-1], "teacher argmax counts", torch.bincount(teacher_class, minlength=classes).tolist(),
              "mean prob", [round(v, 3) for v in teacher_out.softmax(1).mean(0).tolist()])
        print("  student agreement per teacher class", [None if a is None else round(a, 2) for a in agreement])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
