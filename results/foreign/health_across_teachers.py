"""Does a label-free health signal rank students by their real accuracy *across* teachers?

For each finished run folder: the teacher (from the run's config), the last checkpoint's student
and generator, dfad's health measurement (`dfad.health.measure_health`, the run's fixed health
noise), and the run's last validation accuracy over its teacher's test accuracy (from the
teacher's facts file, `TEACHER.json`). Prints one row per run and the Spearman rank correlation
of each signal with that ratio; writes the lot as JSON.

    python results/foreign/health_across_teachers.py RUN_DIR... --out results/foreign/health_across_teachers.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml

from dfad.engine.checkpoint import build_model_from_entry, load_checkpoint
from dfad.health import health_noise, measure_health
from dfad.model_files import load_model_file

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.health_tracking import correlations  # noqa: E402
from train_teachers import cpu_name  # noqa: E402

SIGNALS = ("agreement", "agreement_confident", "teacher_top_class_share", "teacher_class_entropy")


def measure(run: Path) -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    teacher_path = Path(cfg["teacher"]["checkpoint"])
    facts = json.loads(teacher_path.with_suffix(".json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teacher = load_model_file(teacher_path).eval()
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    student = build_model_from_entry(payload["models"]["student"], run)
    generator = build_model_from_entry(payload["models"]["generator"], run)
    noise = health_noise(cfg["distill"]["nz"], seed=cfg["seed"])
    health = measure_health(teacher, student, generator, noise)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    accuracy = [r["accuracy"] for r in rows if "accuracy" in r][-1]
    return {"run": run.name, "teacher": facts["name"], "teacher_accuracy": facts["test_accuracy"],
            "student_accuracy": accuracy, "ratio": round(accuracy / facts["test_accuracy"], 4),
            "iteration": payload.get("iteration"),
            **{k: round(health[k], 4) for k in SIGNALS if k in health}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    table = []
    for run in args.runs:
        row = measure(run)
        table.append(row)
        print(json.dumps(row), flush=True)
    rank_correlations = {}
    for key in SIGNALS:
        pairs = [(r[key], r["ratio"]) for r in table if key in r]
        if len(pairs) >= 3:
            rank_correlations[key] = round(correlations([p[0] for p in pairs], [p[1] for p in pairs])[0], 3)
    print("Spearman with student/teacher accuracy:", rank_correlations)
    Path(args.out).write_text(json.dumps({
        "command": " ".join(["python", "results/foreign/health_across_teachers.py", *sys.argv[1:]]),
        "runs": table, "spearman_with_ratio": rank_correlations, "cpu": cpu_name(), "torch": torch.__version__,
        "wall_s": round(time.time() - start, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
