"""Accuracy against iterations and against wall time for every row of a side-by-side table
(issue 17: "plot accuracy vs wall time for all variants"), from the runs' curve.csv files.

    python results/dfad_plus/plot_variants.py RUNS_DIR [--out PREFIX]

RUNS_DIR holds ROW/seedN/curve.csv (e.g. OUT/table_dfad_plus_cifar10_cpu/paper-budget from
`dfad reproduce`, or results/reproduce/table_cifar10_cpu_runs/paper-budget). Writes PREFIX.png
and PREFIX.json: per row and seed, the final value, seconds per iteration and the curve. Wall
times are only comparable between runs made under the same conditions (same machine, alone or
with the same company): the JSON records each run's machine from its summary.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def read_curve(path: Path) -> dict[str, list[float]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    metric = next(k for k in rows[0] if k in ("accuracy", "miou"))
    return {"iteration": [int(r["iteration"]) for r in rows],
            "seconds": [float(r["elapsed_seconds"]) for r in rows],
            "value": [float(r[metric]) for r in rows], "metric": metric}


def collect(runs: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for curve_path in sorted(runs.glob("*/seed*/curve.csv")):
        run = curve_path.parent
        curve = read_curve(curve_path)
        summary_path = run / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        rows.setdefault(run.parent.name, []).append({
            "seed": run.name, "final": curve["value"][-1], "iterations": curve["iteration"][-1],
            "seconds_per_iteration": summary.get("seconds_per_iteration"), "machine": summary.get("machine"),
            "curve": curve})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", default="variants", help="output path prefix (PREFIX.png, PREFIX.json)")
    args = parser.parse_args()
    rows = collect(args.runs)
    if not rows:
        raise SystemExit(f"no ROW/seedN/curve.csv under {args.runs}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_iteration, by_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, (name, runs) in enumerate(sorted(rows.items())):
        colour = f"C{index % 10}"
        for number, run in enumerate(runs):
            label = name if number == 0 else None
            by_iteration.plot(run["curve"]["iteration"], run["curve"]["value"], color=colour, label=label)
            by_time.plot([s / 60 for s in run["curve"]["seconds"]], run["curve"]["value"], color=colour, label=label)
    metric = next(iter(rows.values()))[0]["curve"]["metric"]
    by_iteration.set(xlabel="iteration", ylabel=f"test {metric}")
    by_time.set(xlabel="wall time (min)", ylabel=f"test {metric}")
    by_iteration.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{args.out}.png", dpi=120)
    table = {name: {"finals": [r["final"] for r in runs], "mean": statistics.fmean(r["final"] for r in runs),
                    "std": statistics.stdev([r["final"] for r in runs]) if len(runs) > 1 else 0.0,
                    "runs": [{k: v for k, v in r.items() if k != "curve"} | {"curve": r["curve"]} for r in runs]}
             for name, runs in rows.items()}
    Path(f"{args.out}.json").write_text(json.dumps(table, indent=1))
    for name, entry in sorted(table.items()):
        print(f"{name}: {entry['mean']:.4f} ± {entry['std']:.4f} over {len(entry['finals'])} seed(s)")


if __name__ == "__main__":
    main()
