"""CIFAR-10 CPU table: is DFAD's gap to KD-ORI budget or method?

Plots the test-accuracy curves of the table's DFAD and KD-ORI runs (and of the 4x-budget DFAD run,
and of the same rows from the retrained teacher, when present) against distillation iterations, with a second axis in student updates (both methods
make `imitation_steps` = 5 student updates per iteration), and writes the curves' key points to
budget_vs_method.json. Run from the repository root:

    python results/cifar10_budget/plot_budget_vs_method.py
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE_RUNS = HERE.parent / "reproduce" / "table_cifar10_cpu_runs" / "paper-budget"
CURVES = {  # label: curve.csv
    "KD-ORI seed 0 (1,500 it)": TABLE_RUNS / "kd-ori" / "seed0" / "curve.csv",
    "DFAD seed 0 (1,500 it)": TABLE_RUNS / "dfad" / "seed0" / "curve.csv",
    "DFAD seed 1 (1,500 it)": TABLE_RUNS / "dfad" / "seed1" / "curve.csv",
}
# The same rows from the retrained teacher (0.8628; the first one, 0.8571, is lost): dashed.
RETRAINED_RUNS = HERE.parent / "reproduce" / "table_cifar10_cpu_runs" / "from-retrained-teacher" / "paper-budget"
PLUS_RUNS = HERE.parent / "dfad_plus" / "cifar10_cpu_runs"
RETRAINED_CURVES = {
    "KD-ORI seed 0, retrained teacher": RETRAINED_RUNS / "kd-ori" / "seed0" / "curve.csv",
    "DFAD seed 0, retrained teacher": PLUS_RUNS / "dfad" / "seed0" / "curve.csv",
    "DFAD seed 1, retrained teacher": PLUS_RUNS / "dfad" / "seed1" / "curve.csv",
    # Same teacher and recipe, iterations=3000 (bf16): the cosine schedules stretched over 2x the budget.
    "DFAD seed 0, retrained teacher, 2x budget (3,000 it), bf16": HERE / "dfad-2x-bf16" / "seed0" / "curve.csv",
    # iterations=6000 (fp32), lost with its machine at 3,180 (its schedules at half their rates).
    "DFAD seed 0, retrained teacher, 4x budget, stopped at 3,180": HERE / "dfad-4x-partial" / "seed0" / "metrics.jsonl",
    # The whole 4x run, redone from the start in bf16 as the 2x run (2 threads).
    "DFAD seed 0, retrained teacher, 4x budget (6,000 it), bf16": HERE / "dfad-4x-bf16" / "seed0" / "curve.csv",
}
UPDATES_PER_ITERATION = 5


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    """A run's validations from its curve.csv, or from metrics.jsonl (an unfinished run has no curve.csv)."""
    with path.open() as f:
        if path.suffix == ".jsonl":
            rows = [r for r in map(json.loads, f) if "accuracy" in r]
        else:
            rows = list(csv.DictReader(f))
    return [int(r["iteration"]) for r in rows], [float(r["accuracy"]) for r in rows]


def slope_per_1000(iterations: list[int], accuracy: list[float], last: int = 300) -> float:
    """Accuracy gained per 1,000 iterations over the final `last` iterations (a least-squares line)."""
    points = [(i, a) for i, a in zip(iterations, accuracy) if i >= iterations[-1] - last]
    n = len(points)
    mean_i = sum(i for i, _ in points) / n
    mean_a = sum(a for _, a in points) / n
    var = sum((i - mean_i) ** 2 for i, _ in points)
    return 1000 * sum((i - mean_i) * (a - mean_a) for i, a in points) / var if var else 0.0


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    summary = {}
    for label, path, style in [*((lab, p, "-") for lab, p in CURVES.items()),
                               *((lab, p, "--") for lab, p in RETRAINED_CURVES.items())]:
        if not path.is_file():
            print(f"skipped (not run yet): {label} ({path})")
            continue
        iterations, accuracy = read_curve(path)
        ax.plot(iterations, accuracy, style, marker="o", markersize=2.5, label=label)
        summary[label] = {"curve": str(path.relative_to(HERE.parent.parent)), "final_iteration": iterations[-1],
                          "final_accuracy": accuracy[-1], "best_accuracy": max(accuracy),
                          "accuracy_at_1500": dict(zip(iterations, accuracy)).get(1500),
                          "gain_per_1000_it_over_last_300": round(slope_per_1000(iterations, accuracy), 4)}
    ax.set_xlabel("distillation iterations")
    ax.set_ylabel("student test accuracy (CIFAR-10)")
    top = ax.secondary_xaxis("top", functions=(lambda i: i * UPDATES_PER_ITERATION,
                                               lambda u: u / UPDATES_PER_ITERATION))
    top.set_xlabel("student updates (5 per iteration, both methods)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("CPU-scaled CIFAR-10, ResNet-20 -> ResNet-8: DFAD vs KD-ORI", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "budget_vs_method.png", dpi=120)
    (HERE / "budget_vs_method.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
