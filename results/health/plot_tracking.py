"""One panel per run of a `benchmarks/health_tracking.py` JSON: the label-free agreements and the
student's test metric as a fraction of its teacher's, against iterations, with the warnings the
rules raised. Does the signal move with what labelled data shows?

    python results/health/plot_tracking.py results/health/tracking_natural_images.json --out results/health/tracking_natural_images.png
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# (key, label, style, colour): fixed colours, so a series looks the same in every panel.
SERIES = (("agreement", "agreement (fresh)", "-o", "tab:blue"),
          ("agreement_memory", "agreement (remembered)", "-^", "tab:orange"),
          ("agreement_miou", "mIoU with the teacher (fresh)", "-v", "tab:green"),
          ("teacher_top_class_share", "teacher's top-class share (generated)", "--x", "tab:purple"),
          ("fraction_of_teacher", "test metric / teacher's (labelled)", "-s", "tab:red"))


def short_name(run: str) -> str:
    parts = [p for p in Path(run).parts if p not in ("results", "seed0", "paper-budget", "reproduce")]
    return "/".join(parts[-3:]).replace("_runs", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracking", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in json.loads(args.tracking.read_text())["runs"] if r["points"]]
    columns = 4
    rows = math.ceil(len(runs) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), sharey=True, squeeze=False)
    for ax, run in zip(axes.flat, runs):
        for key, label, style, colour in SERIES:
            points = [(p["iteration"], p[key]) for p in run["points"] if p.get(key) is not None]
            if points:
                ax.plot(*zip(*points), style, color=colour, markersize=3, label=label)
        for warning in run["warnings"]:
            ax.axvline(warning["iteration"], color="red" if warning["kind"] != "learning" else "green",
                       alpha=0.4, linestyle=":")
        ax.set_title(short_name(run["run"]), fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    present = {key for run in runs for p in run["points"] for key, value in p.items() if value is not None}
    handles = [plt.Line2D([], [], linestyle=style[:-1], marker=style[-1], color=colour, markersize=3, label=label)
               for key, label, style, colour in SERIES if key in present]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, 0.0))
    fig.supxlabel("iteration (dotted: a warning, red; a 'learning after all' note, green)", fontsize=9, y=0.05)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
