"""Round 10 diagnostic: is a BatchNorm student held back by running statistics estimated on generated
samples? Prints each run's student test accuracy as shipped and with its BatchNorm running
statistics re-estimated on 5,120 real training images (20 batches of 256, cumulative average).
The second figure needs *real* images (no labels), which a no-data user does not have: it
diagnoses, it is not a remedy.

    python results/foreign/bn_reestimate_probe.py DATASET MEAN STD RUN... [--out FILE.json]

DATASET: a dfad dataset name (mnist, fashion_mnist); MEAN/STD: the teacher's input statistics
(one channel); RUN: run folders of run_foreign.sh / distill_teacher.py (checkpoints/last.pt).
"""
from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from dfad.data import DATASETS
from dfad.engine.checkpoint import build_model_from_entry

BATCHES, BATCH_SIZE = 20, 256


def accuracy(model: nn.Module, test) -> float:
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in test.loader(1000, shuffle=False):
            right += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return right / total


def reestimate_batchnorm(model: nn.Module, train) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for i, (x, _) in enumerate(train.loader(BATCH_SIZE, shuffle=True, generator=torch.Generator().manual_seed(0))):
            if i == BATCHES:
                break
            model(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("mean", type=float)
    parser.add_argument("std", type=float)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-root", default="/tmp/dfad-data")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = dict(image_size=28, mean=[args.mean], std=[args.std])
    train = DATASETS.get(args.dataset)(args.data_root, train=True, **options)
    test = DATASETS.get(args.dataset)(args.data_root, train=False, **options)
    results = []
    for run in args.runs:
        state = torch.load(f"{run}/checkpoints/last.pt", weights_only=True, map_location="cpu")
        student = build_model_from_entry(state["models"]["student"], run)
        shipped = accuracy(student, test)
        reestimate_batchnorm(student, train)
        results.append({"run": run, "shipped": shipped, "batchnorm_reestimated_on_real": accuracy(student, test)})
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
