"""What each DFAD option costs per iteration (issue 17: no option may slow an iteration by more than
30% unless its accuracy pays for it).

Builds the engine once per row of a `dfad reproduce` table (default: table_dfad_plus_cifar10_cpu,
whose rows are plain DFAD, each option alone and the combination), warms each up (compilation,
replay memory filled), then times `method.step()` for every row in turn, round after round, in one
process, and reports medians and each row's time over the plain `dfad` row's. No data is read;
the teacher is the config's architecture, untrained (speed does not depend on the weights).

    python benchmarks/option_cost.py --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from throughput import TASK_SETUPS, build  # noqa: E402

from dfad.engine.runtime import reuse_freed_memory  # noqa: E402
from dfad.provenance import provenance  # noqa: E402
from dfad.reproduce import load_table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="table_dfad_plus_cifar10_cpu")
    parser.add_argument("--task", default="cifar10_cpu", choices=sorted(TASK_SETUPS),
                        help="the benchmark's network setup matching the table's config")
    parser.add_argument("--rows", default=None, help="comma-separated rows (default: every distillation row)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per row")
    parser.add_argument("--rounds", type=int, default=3, help="timed iterations per row, one per round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reuse_freed_memory()
    table = load_table(args.table)
    wanted = args.rows.split(",") if args.rows else None
    rows = [r for r in table.rows if r.kind != "teacher" and (wanted is None or r.name in wanted)]
    methods, warmup_seconds = {}, {}
    for row in rows:
        _, method = build(args.task, overrides=list(row.overrides))
        start = time.perf_counter()
        for _ in range(args.warmup):
            method.step()
        warmup_seconds[row.name] = time.perf_counter() - start
        methods[row.name] = method
        print(f"built {row.name} (warm-up {warmup_seconds[row.name]:.1f} s)", flush=True)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, method in methods.items():
            start = time.perf_counter()
            method.step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians.get("dfad")
    result = {"table": args.table, "task": args.task, "threads": torch.get_num_threads(), "rounds": args.rounds,
              "overrides": {r.name: list(r.overrides) for r in rows}, "median_seconds_per_iteration": medians,
              "over_plain_dfad": {n: m / base for n, m in medians.items()} if base else None,
              "times": times, "warmup_seconds": warmup_seconds, **provenance()}
    for name, m in medians.items():
        ratio = f"  {m / base:.2f}x plain dfad" if base else ""
        print(f"{name:>15}: {m:.2f} s/it{ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
