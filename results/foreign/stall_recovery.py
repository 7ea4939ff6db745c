"""Replay the stall warning and its 'learning after all' note (dfad.health.HealthMonitor, today's
rules) on every run of results/foreign/runs, beside each run's final accuracy over its teacher's.

    python results/foreign/stall_recovery.py > results/foreign/stall_recovery.json
"""
from __future__ import annotations

import json
from pathlib import Path

from dfad.health import HealthMonitor

RUNS = Path(__file__).parent / "runs"


def teacher_accuracy(run: Path):
    facts = run / "foreign.json"
    if facts.is_file():
        teacher = json.loads(facts.read_text()).get("teacher")
        if isinstance(teacher, dict):
            return teacher.get("test_accuracy")
    summary = run / "summary.json"
    return json.loads(summary.read_text()).get("teacher_accuracy") if summary.is_file() else None


rows = []
for metrics in sorted(RUNS.glob("*/metrics.jsonl")):
    checks = [r for r in map(json.loads, metrics.read_text().splitlines()) if "agreement" in r]
    monitor, said = HealthMonitor(), {}
    for record in checks:
        for kind in monitor.new_warnings(record | {"num_classes": 10}, record["iteration"]):
            said.setdefault(kind, record["iteration"])
    if "stall" not in said:
        continue
    accuracies = [r["accuracy"] for r in checks if r.get("accuracy") is not None]
    teacher = teacher_accuracy(metrics.parent)
    rows.append({"run": metrics.parent.name, "stall_at": said["stall"], "learning_note_at": said.get("learning"),
                 "iterations": checks[-1]["iteration"], "final_accuracy": accuracies[-1] if accuracies else None,
                 "teacher_accuracy": teacher,
                 "x_teacher": round(accuracies[-1] / teacher, 3) if accuracies and teacher else None})
print(json.dumps({"runs": rows, "stalled": len(rows), "with_note": sum(r["learning_note_at"] is not None for r in rows)},
                 indent=1))
