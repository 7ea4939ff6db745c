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
import itertools
import json

import torch
from torch.optim.swa_utils import update_bn

from dfad.data import DATASETS
from dfad.engine import build_model_from_entry, evaluate
from dfad.tasks import TASKS

BATCHES, BATCH_SIZE = 20, 256


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
    task = TASKS.build("classification")
    results = []
    for run in args.runs:
        state = torch.load(f"{run}/checkpoints/last.pt", weights_only=True, map_location="cpu")
        student = build_model_from_entry(state["models"]["student"], run)
        shipped = evaluate(student, test, task)
        # torch's SWA helper: reset the running statistics, then average them (momentum None) over
        # the first BATCHES shuffled training batches, forwards in train mode.
        real_batches = train.loader(BATCH_SIZE, shuffle=True, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            update_bn(itertools.islice(real_batches, BATCHES), student)
        results.append({"run": run, "shipped": shipped, "batchnorm_reestimated_on_real": evaluate(student, test, task)})
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
