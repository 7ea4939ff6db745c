"""Why does `imitation_loss: kl` collapse on MNIST? Reads finished runs of table_dfad_plus_mnist and
measures, on 256 fresh samples of each run's last generator (train mode, as in training), how far
the student's logits are from the teacher's, and how much of that distance is a constant shift per
sample: softmax, and so the KL, cannot see such a shift, while the paper's generator loss (the L1
between logits) counts all of it.

    python results/dfad_plus/kl_collapse_probe.py TEACHER_RUN RUN... [--out FILE.json]

TEACHER_RUN: the table's teacher folder (teacher.pt); RUN: row run folders (checkpoints/last.pt).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from dfad.engine import build_model_from_entry

SAMPLES, NOISE_SEED = 256, 12345


def load(path: str, role: str) -> torch.nn.Module:
    state = torch.load(path, weights_only=True, map_location="cpu")
    return build_model_from_entry(state["models"][role], path)


def measure(teacher: torch.nn.Module, run: str) -> dict:
    student, generator = (load(f"{run}/checkpoints/last.pt", role) for role in ("student", "generator"))
    student.eval()
    generator.train()  # training draws every batch with the generator's BatchNorm in train mode
    noise = torch.randn(SAMPLES, generator.nz, generator=torch.Generator().manual_seed(NOISE_SEED))
    with torch.no_grad():
        images = generator(noise)
        t, s = teacher(images), student(images)
    gap = s - t
    shift = gap.mean(1, keepdim=True)  # the part of the gap softmax ignores
    t_prob = t.softmax(1)
    return {
        "run": run,
        "teacher_top_class_share": float(t.argmax(1).bincount(minlength=t.shape[1]).max() / SAMPLES),
        "teacher_mean_top_probability": float(t_prob.max(1).values.mean()),
        "agreement": float((t.argmax(1) == s.argmax(1)).float().mean()),
        "kl_teacher_student": float(F.kl_div(s.log_softmax(1), t.log_softmax(1), reduction="batchmean", log_target=True)),
        "logit_l1": float(gap.abs().mean()),
        "logit_l1_without_shift": float((gap - shift).abs().mean()),
        "mean_abs_shift": float(shift.abs().mean()),
        "teacher_logit_range": float((t.max(1).values - t.min(1).values).mean()),
        # How different the samples are from each other: the pixels' std across the batch, averaged.
        "sample_spread": float(images.std(0).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("teacher_run")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    teacher = load(f"{args.teacher_run}/teacher.pt", "teacher").eval()
    results = [measure(teacher, run) for run in args.runs]
    print("\n".join(json.dumps(row) for row in results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
