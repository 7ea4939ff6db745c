"""Seconds per DFAD iteration with the no-data defaults for each foreign teacher, on 2 threads,
with every other job on the machine paused (SIGSTOP) while it is measured: what the preset's
iterations x this cost on an idle 2-core machine.

    python results/foreign/time_iterations.py --teachers DIR --out results/foreign/time_per_iteration.json
        [--pause PID ...] NAME:STUDENT [NAME:STUDENT ...]

STUDENT "default": the preset's student.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from dfad.config import NO_DATA_PRESET, SHIPPED_CONFIGS

sys.path.insert(0, str(Path(__file__).parent))
from train_teachers import cpu_name  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", metavar="NAME:STUDENT")
    parser.add_argument("--teachers", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pause", type=int, nargs="*", default=[], help="process groups to pause while timing")
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()
    preset_iterations = yaml.safe_load((SHIPPED_CONFIGS / f"{NO_DATA_PRESET}.yaml").read_text())["distill"]["iterations"]
    rows = []
    for pid in args.pause:
        os.killpg(pid, signal.SIGSTOP)
    try:
        for item in args.runs:
            name, student = item.split(":")
            facts = json.loads((Path(args.teachers) / f"{name}.json").read_text())
            with tempfile.TemporaryDirectory() as tmp:
                command = [sys.executable, str(HERE / "distill_teacher.py"), str(Path(args.teachers) / facts["file"]),
                           "--dataset", facts["dataset"], "--size", str(facts["input_shape"][1]),
                           "--mean", *map(str, facts["mean"]), "--std", *map(str, facts["std"]),
                           *([] if student == "default" else ["--student", student]),
                           "--out", tmp + "/run", "--threads", "2",
                           "--set", f"distill.iterations={args.iterations}", "--set", f"distill.val_every={args.iterations}",
                           "--set", "distill.log_every=10"]
                subprocess.run(command, check=True, capture_output=True)
                records = [json.loads(l) for l in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()]
            at = {r["iteration"]: r["elapsed_seconds"] for r in records}
            # Between logged iterations 10 and (iterations - 10): no validation, no start-up.
            last = args.iterations - 10
            per_iteration = (at[last] - at[10]) / (last - 10)
            rows.append({"teacher": name, "student": student, "seconds_per_iteration": round(per_iteration, 3),
                         "preset_iterations": preset_iterations,
                         "minutes_for_preset_iterations": round(preset_iterations * per_iteration / 60, 1)})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        for pid in args.pause:
            os.killpg(pid, signal.SIGCONT)
    Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "threads": 2, "rows": rows,
                                          "command": " ".join(sys.argv)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
