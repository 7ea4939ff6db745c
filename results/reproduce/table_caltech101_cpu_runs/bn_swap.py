"""Why the Caltech-101 DFAD student lost 0.10 between iterations 1,000 and 1,200 while both learning
rates were ~0: its weights or its BatchNorm running statistics? Evaluates the best (1,000) and
last (1,200) students and the two hybrids (weights of one, BatchNorm statistics of the other) on the
test split, and how far each part moved.

    python results/reproduce/table_caltech101_cpu_runs/bn_swap.py RUN_DIR DATA_ROOT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dfad.config import load_config
from dfad.data.splits import load_split
from dfad.engine import build_model_from_entry, evaluate, load_checkpoint
from dfad.tasks import TASKS

run, data_root = Path(sys.argv[1]), sys.argv[2]
cfg = load_config(str(run / "config.yaml"))
cfg.data.root = data_root
test = load_split(cfg, train=False)
task = TASKS.build(cfg.task)
entries = {name: load_checkpoint(run / "checkpoints" / f"{name}.pt")["models"]["student"] for name in ("best", "last")}


def is_bn_statistic(key: str) -> bool:
    return key.endswith(("running_mean", "running_var"))


def hybrid(weights_from: str, statistics_from: str) -> dict:
    state = dict(entries[weights_from]["state_dict"])
    state.update({k: v for k, v in entries[statistics_from]["state_dict"].items() if is_bn_statistic(k)})
    return {**entries[weights_from], "state_dict": state}


def accuracy(entry: dict) -> float:
    model = build_model_from_entry(entry, run)
    return evaluate(model, test, task, 256, torch.device("cpu"))


def relative_change(select) -> float:
    a, b = entries["best"]["state_dict"], entries["last"]["state_dict"]
    keys = [k for k in a if select(k) and a[k].is_floating_point()]
    num = sum((b[k] - a[k]).float().pow(2).sum() for k in keys).sqrt()
    den = sum(a[k].float().pow(2).sum() for k in keys).sqrt()
    return float(num / den)


result = {
    "best_iteration_weights_and_statistics": accuracy(entries["best"]),
    "last_iteration_weights_and_statistics": accuracy(entries["last"]),
    "last_weights_best_statistics": accuracy(hybrid("last", "best")),
    "best_weights_last_statistics": accuracy(hybrid("best", "last")),
    "relative_change_of_weights": relative_change(lambda k: not is_bn_statistic(k) and "num_batches" not in k),
    "relative_change_of_bn_statistics": relative_change(is_bn_statistic),
    "best_iteration": load_checkpoint(run / "checkpoints" / "best.pt").get("iteration"),
}
print(json.dumps(result, indent=1))
