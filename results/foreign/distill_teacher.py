"""Distill one teacher file with dfad's no-data defaults, as a user would from Python, with the
teacher's labelled test split as `val_loader` only to *measure* what the user could not.

    python results/foreign/distill_teacher.py TEACHER_FILE --dataset NAME --size S --mean M.. --std S..
        [--student NAME] --out RUN [--threads N] [--set KEY=VALUE ...]

`--set` values are YAML (as CLI overrides); without any, the run uses the `own_model` preset
unchanged. Writes the usual run folder plus RUN/foreign.json (command, teacher facts, wall time,
final and best accuracy, the machine).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

import dfad
from dfad.data import DATASETS

sys.path.insert(0, str(Path(__file__).parent))
from train_teachers import cpu_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("teacher")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--mean", type=float, nargs="+", required=True)
    parser.add_argument("--std", type=float, nargs="+", required=True)
    parser.add_argument("--student", default=None, help="default: the own_model preset's student")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = DATASETS.get(args.dataset)("/tmp/dfad-data", train=False, image_size=args.size, mean=args.mean,
                                      std=args.std)
    options = {"threads": args.threads}
    for item in args.set:
        key, value = item.split("=", 1)
        options[key] = yaml.safe_load(value)
    start = time.time()
    result = dfad.distill(args.teacher, args.student, input_shape=test.info.input_shape, input_mean=args.mean,
                          input_std=args.std, val_loader=test.loader(1000, shuffle=False), out=args.out,
                          seed=args.seed, options=options, progress=False)  # the same command resumes
    wall = time.time() - start
    validations = [r for r in result.history if "accuracy" in r]
    teacher_file = Path(args.teacher)
    facts_file = teacher_file.with_suffix(".json")
    facts = {
        "command": " ".join(["python", "results/foreign/distill_teacher.py", *sys.argv[1:]]),
        "teacher": json.loads(facts_file.read_text()) if facts_file.is_file() else str(teacher_file),
        "student": args.student, "options": options, "seed": args.seed, "wall_s": round(wall, 1),
        "final_accuracy": validations[-1]["accuracy"] if validations else None,
        "best_accuracy": max((r["accuracy"] for r in validations), default=None),
        "warnings": result.summary.get("health_warnings"),
        "iterations": result.summary.get("iterations"), "cpu": cpu_name(), "threads": args.threads,
        "torch": torch.__version__, "git": result.summary.get("git_commit"),
    }
    (Path(args.out) / "foreign.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps({k: facts[k] for k in ("final_accuracy", "best_accuracy", "wall_s", "warnings")}))


if __name__ == "__main__":
    main()
