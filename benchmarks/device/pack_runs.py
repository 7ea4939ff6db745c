"""Pack the small files of every run under RUNS into one tarball for the trip back from a device:
each run's config, summary, curve, metrics and newest sample grid, and the launch logs (weights
stay behind). Prints one line per run: its path, value, iterations and wall time.

    python benchmarks/device/pack_runs.py RUNS OUT.tar.gz
"""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

SMALL_FILES = ("config.yaml", "summary.json", "curve.csv", "metrics.jsonl")


def pack(runs: Path, tarball: Path) -> None:
    with tarfile.open(tarball, "w:gz") as packed:
        for log in sorted(runs.glob("log-*.txt")):
            packed.add(log, log.relative_to(runs))
        for config in sorted(runs.rglob("config.yaml")):
            run = config.parent
            grids = sorted((run / "samples").glob("iter_*.png"))
            for f in [*(run / name for name in SMALL_FILES), *grids[-1:]]:
                if f.is_file():
                    packed.add(f, f.relative_to(runs))
            summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
            metric = summary.get("metric", "accuracy")
            value = summary.get(f"student_{metric}", summary.get(f"teacher_{metric}"))
            print(*run.relative_to(runs).parts, value, summary.get("iterations"), summary.get("wall_seconds"),
                  "" if summary else "(unfinished)")


if __name__ == "__main__":
    pack(Path(sys.argv[1]), Path(sys.argv[2]))
