"""Collect finished foreign-teacher runs (run_foreign.sh / distill_teacher.py folders) into one JSON
of the shape of round7_tuning.json / round8_tuning.json.

    python results/foreign/collect_round.py RUN_DIR... --what "one line on the round" --out FILE.json
        [--checks 100,200,300] [--git-note TEXT]

Each run folder needs foreign.json (written by distill_teacher.py at the end), summary.json and
metrics.jsonl; a run without foreign.json is unfinished and is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def collect(run: Path, checks: list[int], git_note: str | None) -> dict:
    facts_file = run / "foreign.json"
    if not facts_file.is_file():
        sys.exit(f"error: {run} has no foreign.json (unfinished run); finish it or leave it out")
    facts = json.loads(facts_file.read_text())
    summary = json.loads((run / "summary.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    accuracy = {r["iteration"]: r["accuracy"] for r in records if "accuracy" in r}
    teacher = facts["teacher"] if isinstance(facts["teacher"], dict) else {}
    teacher_accuracy = teacher.get("test_accuracy", summary.get("teacher_accuracy"))
    final = facts["final_accuracy"]
    machine = summary.get("machine", {})
    return {
        "run": run.name,
        "teacher": teacher.get("name", str(facts["teacher"])),
        "teacher_accuracy": teacher_accuracy,
        "options": facts["options"],
        "seed": facts["seed"],
        "accuracy_at": {str(c): round(accuracy[c], 4) for c in checks if c in accuracy},
        "final_accuracy": round(final, 4),
        "x_teacher": round(final / teacher_accuracy, 3),
        "agreement_at_end": round(summary["agreement"], 3) if summary.get("agreement") is not None else None,
        "per_class_student": (summary.get("per_class_accuracy") or {}).get("student", []),
        "warnings": facts["warnings"],
        "wall_s": facts["wall_s"],
        "command": facts["command"],
        "git": facts["git"] + (f" {git_note}" if git_note else ""),
        "cpu": f"{machine['cpu']} ({machine.get('cpu_bf16') or 'no native bf16'})" if machine else facts["cpu"],
        "threads": facts["threads"],
        "torch": facts["torch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--what", required=True, help="one line saying what the round tried")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--checks", default="100,200,300", help="iterations whose accuracy to list")
    parser.add_argument("--git-note", default=None, help="appended to each run's git commit")
    args = parser.parse_args()
    checks = [int(c) for c in args.checks.split(",")]
    runs = [collect(run, checks, args.git_note) for run in args.runs]
    args.out.write_text(json.dumps({"what": args.what, "runs": runs}, indent=1) + "\n")
    for r in runs:
        print(f"{r['run']}: {r['accuracy_at']} final {r['final_accuracy']} ({r['x_teacher']}x)")


if __name__ == "__main__":
    main()
