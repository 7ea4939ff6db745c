"""What the teacher and the student see on a DFAD run's generated samples, beside what they see
on real CamVid test frames and what the labels hold: the share of pixels given to each class.

    python results/reproduce/table_camvid_cpu_runs/predicted_classes.py RUN_DIR [RUN_DIR ...] \
        --teacher TEACHER.pt --data-root DATA [--samples 64] [--out FILE.json]

RUN_DIR is a DFAD run folder (its checkpoints/last.pt holds the student and the generator). The
generator samples in train mode, as in training; teacher and student predict in eval mode.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dfad.data.base import DATASETS
from dfad.engine.checkpoint import build_model_from_entry

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist")


def pixel_shares(predicted: torch.Tensor, classes: int) -> list[float]:
    return [round(v, 4) for v in (torch.bincount(predicted.flatten(), minlength=classes).double()
                                  / predicted.numel()).tolist()]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher_file = torch.load(args.teacher, map_location="cpu", weights_only=True)
    teacher = build_model_from_entry(teacher_file["models"]["teacher"], args.teacher).eval()
    facts = teacher_file["data"]
    test = DATASETS.build("camvid", root=args.data_root, train=False, image_size=facts["input_shape"][-1],
                          shorter_side=teacher_file["config"]["data"]["shorter_side"], mean=facts["mean"],
                          std=facts["std"])
    frames, labels = test.images[:args.samples], test.labels[:args.samples]
    real_teacher = torch.cat([teacher(frames[i:i + 16]).argmax(1) for i in range(0, len(frames), 16)])
    result = {"classes": CAMVID_CLASSES, "frames": len(frames),
              "labels_on_real": pixel_shares(labels[labels != 255], 11),
              "teacher_on_real": pixel_shares(real_teacher, 11), "runs": {}}
    for run in args.runs:
        path = Path(run) / "checkpoints" / "last.pt"
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        generator = build_model_from_entry(checkpoint["models"]["generator"], path).train()
        student = build_model_from_entry(checkpoint["models"]["student"], path).eval()
        images = generator(torch.randn(args.samples, generator.nz))
        result["runs"][run] = {"iteration": checkpoint["iteration"],
                               "teacher_on_generated": pixel_shares(teacher(images).argmax(1), 11),
                               "student_on_generated": pixel_shares(student(images).argmax(1), 11),
                               "student_on_real": pixel_shares(student(frames).argmax(1), 11)}
    print(f"{'class':11s} {'labels':>7s} {'T real':>7s}" + "".join(f" | T gen  S gen  S real (run {i})"
                                                               for i in range(len(args.runs))))
    for c, name in enumerate(CAMVID_CLASSES):
        line = f"{name:11s} {result['labels_on_real'][c]:7.3f} {result['teacher_on_real'][c]:7.3f}"
        for r in result["runs"].values():
            line += f" | {r['teacher_on_generated'][c]:.3f}  {r['student_on_generated'][c]:.3f}  {r['student_on_real'][c]:.3f}"
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
