"""Round 11 diagnostic: are a teacher's logits on generated samples far larger than on its real
images? A ReLU network without normalisation layers is close to positively homogeneous
(f(a*x) ~ a*f(x) for large a), so a generator paid for the L1 between logits can raise its reward
by raising its samples' contrast alone, without finding anything the student has yet to learn.

    python results/foreign/logit_scale_probe.py FACTS RUN... [--out FILE.json]

FACTS: a teacher's facts file from train_teachers.py (its teacher file beside it); RUN: run
folders of run_foreign.sh with that teacher (checkpoints/last.pt). Measures, on the first 1,024
test images and on 1,024 samples of each run's last generator (train mode, as in training): the
teacher's mean absolute logit, its mean top-class probability, and the inputs' contrast (each
sample's std in the teacher's normalised input space, averaged); and, to see where a student falls
short, the teacher's and each student's per-class test accuracy (all test images) and the share of
each class in the teacher's predictions on the generated samples.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dfad.data import DATASETS
from dfad.engine import build_model_from_entry, evaluate
from dfad.tasks import TASKS

COUNT, NOISE_SEED = 1024, 12345


def statistics(teacher: torch.nn.Module, images: torch.Tensor) -> dict:
    with torch.no_grad():
        logits = teacher(images)
    return {"mean_abs_logit": float(logits.abs().mean()),
            "mean_top_probability": float(logits.softmax(1).max(1).values.mean()),
            "input_contrast": float(images.flatten(1).std(1).mean())}


def per_class_accuracy(model: torch.nn.Module, test) -> list[float]:
    metric = evaluate(model, test, TASKS.build("classification"), return_metric=True)
    return [round(value, 4) for value in metric.per_class()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("facts")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-root", default="/tmp/dfad-data")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    facts = json.loads(Path(args.facts).read_text())
    teacher = torch.jit.load(str(Path(args.facts).parent / facts["file"])).eval()
    test = DATASETS.get(facts["dataset"])(args.data_root, train=False, image_size=facts["input_shape"][1],
                                          mean=facts["mean"], std=facts["std"])
    real = next(iter(test.loader(COUNT, shuffle=False)))[0]
    rows = [{"teacher": facts["name"], "source": "real test images", **statistics(teacher, real),
             "per_class_test_accuracy": per_class_accuracy(teacher, test)}]
    for run in args.runs:
        state = torch.load(f"{run}/checkpoints/last.pt", weights_only=True, map_location="cpu")
        generator = build_model_from_entry(state["models"]["generator"], run).train()
        noise = torch.randn(COUNT, generator.nz, generator=torch.Generator().manual_seed(NOISE_SEED))
        with torch.no_grad():
            samples = generator(noise)
        student = build_model_from_entry(state["models"]["student"], run).eval()
        with torch.no_grad():
            shares = teacher(samples).argmax(1).bincount(minlength=10).float() / COUNT
        rows.append({"teacher": facts["name"], "source": run, **statistics(teacher, samples),
                     "teacher_class_shares_on_samples": [round(float(v), 4) for v in shares],
                     "student_per_class_test_accuracy": per_class_accuracy(student, test)})
    print("\n".join(json.dumps(row) for row in rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
