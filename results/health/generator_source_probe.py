"""Health measured on the live generator or on its moving average, from a run's saved states.

With `generator_ema` on, the student learns from the average's samples while the live generator
moves ahead to where the student is still wrong. This loads each saved state of a run made with
that option and measures `measure_health` on both generators (same fixed noise, same memory-free
call), beside the run's recorded test accuracy at that iteration.

    python results/health/generator_source_probe.py RUN_DIR [RUN_DIR ...] --out FILE.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from dfad.config import load_config
from dfad.data.splits import load_split
from dfad.engine.checkpoint import list_states, load_weights_only
from dfad.health import measure_health
from dfad.model_files import load_teacher
from dfad.provenance import provenance
from dfad.runs import build_distillation
from dfad.tasks import TASKS


def probe(run: Path) -> list[dict]:
    accuracy = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "accuracy" in record:
            accuracy[record["iteration"]] = record["accuracy"]
    rows = []
    cfg = load_config(str(run / "config.yaml"))  # the run's own config
    task = TASKS.build(cfg.task)
    info = load_split(cfg, train=False).info
    teacher = load_teacher(cfg, info, "cpu", False)
    for iteration, path in list_states(run / "checkpoints"):
        saved = load_weights_only(path, "state")
        method = build_distillation(cfg, teacher, info, task, "cpu")
        method.load_state_dict(saved["state"]["method"])
        noise = method.health_noise  # the run's own fixed health batch
        row = {"run": run.name if run.name != "seed0" else run.parent.name, "iteration": iteration,
               "test_accuracy": accuracy.get(iteration)}
        for name, generator in (("live", method.generator), ("average", method.generator_average.average)):
            health = measure_health(method.teacher, method.student, generator, noise)
            row[name] = {k: health[k] for k in ("agreement", "agreement_confident", "teacher_top_class_share")
                         if k in health}
        rows.append(row)
        print(json.dumps(row))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.time()
    rows = [row for run in args.runs for row in probe(run)]
    args.out.write_text(json.dumps({"command": "python results/health/generator_source_probe.py "
                                    + " ".join(map(str, args.runs)) + f" --out {args.out}",
                                    "rows": rows, "provenance": provenance(), "wall_s": round(time.time() - start, 1)},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
