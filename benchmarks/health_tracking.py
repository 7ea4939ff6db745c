"""Does the label-free health signal track real accuracy? For each finished run folder: the rank
(Spearman) and linear (Pearson) correlation between `agreement` and the validation metric over the
run's validations, and the health warnings it raised.

    python benchmarks/health_tracking.py RUN [RUN ...] --json out.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort()
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def correlations(x: list[float], y: list[float]) -> tuple[float, float]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pearson = float(np.corrcoef(a, b)[0, 1])
    spearman = float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])
    return spearman, pearson


def analyse(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    metric = summary.get("metric", "accuracy")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    points = [(r["iteration"], r["agreement"], r[metric]) for r in records
              if r.get("agreement") is not None and r.get(metric) is not None]
    iterations, agreement, accuracy = zip(*points)
    spearman, pearson = correlations(agreement, accuracy)
    return {"run": str(run), "metric": metric, "validations": len(points), "spearman": round(spearman, 3),
            "pearson": round(pearson, 3), "final_agreement": agreement[-1], f"final_{metric}": accuracy[-1],
            f"teacher_{metric}": summary.get(f"teacher_{metric}"), "warnings": summary.get("health_warnings", []),
            "curve": [{"iteration": i, "agreement": a, metric: m} for i, a, m in points]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [analyse(run) for run in args.runs]
    for row in rows:
        print(f"{row['run']}: {row['validations']} validations, Spearman {row['spearman']:+.3f}, Pearson "
              f"{row['pearson']:+.3f}, final agreement {row['final_agreement']:.3f} vs {row['metric']} "
              f"{row['final_' + row['metric']]:.4f}, {len(row['warnings'])} warning(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
