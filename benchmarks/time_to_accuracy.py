"""Wall time until a DFAD student first reaches a target test accuracy (default 98.0% on MNIST).

Runs `dfad distill` through the library with a config (the paper's `mnist` recipe by default, or
any YAML / preset) from a trained teacher, validating every `distill.val_every` iterations;
validation time and the one-off torch.compile count (the clock starts when the engine starts;
teacher and data loading before it are reported separately as process time). Stops at the target
or at the time limit. The accuracy curve goes to CSV; the last line printed is
`seconds_to_98: N` (or `not reached in N s`).

    python benchmarks/time_to_accuracy.py --teacher runs/mnist-teacher/teacher.pt \\
        --data-root DATA --out runs/tta [--config mnist] [--minutes 10] [KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from dfad.config import load_config
from dfad.provenance import provenance
from dfad.runs import distill


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--out", required=True, help="run folder (overwritten)")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--minutes", type=float, default=10.0, help="give up after this much wall time")
    parser.add_argument("--csv", default=None, help="copy the accuracy curve here")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    origin = provenance()
    cfg = load_config(args.config, [*args.overrides, f"distill.stop_at_metric={args.target}",
                                    f"distill.time_limit_minutes={args.minutes}"])
    cfg.data.root = args.data_root
    cfg.teacher.checkpoint = args.teacher
    summary = distill(cfg, args.out, force=True, progress=False)
    process_seconds = time.perf_counter() - start
    with open(Path(args.out) / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    reached = [row for row in curve if float(row["accuracy"]) >= args.target]
    seconds = float(reached[0]["elapsed_seconds"]) if reached else None
    for row in curve:
        print(f"iteration {row['iteration']:>5}  {float(row['elapsed_seconds']):8.1f} s  accuracy {float(row['accuracy']):.4f}")
    if args.csv:
        shutil.copyfile(Path(args.out) / "curve.csv", args.csv)
    result = {"target": args.target, "seconds_to_target": seconds,
              "iteration_at_target": int(reached[0]["iteration"]) if reached else None,
              "config": args.config, "overrides": args.overrides, "threads": torch.get_num_threads(),
              "process_seconds_including_setup": round(process_seconds, 1),
              "curve": [{k: float(v) for k, v in row.items()} for row in curve], "summary": summary, **origin}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    label = f"seconds_to_{round(args.target * 100)}"
    print(f"{label}: {seconds:.1f}" if reached else f"not reached in {summary['wall_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
