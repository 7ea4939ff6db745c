"""Whole DFAD iterations with the generator's image layer as an ordinary convolution against its
per-tap form, alternated in one process (same networks, weights and precision; medians).

The per-tap form (`FewOutputConv2d.formulation = "taps"`) exists because oneDNN's fp32 kernels are
slow for a few output channels; `distill.compile` leaves the generator eager under bf16 on CPU, and
there `choose_eager_formulations` makes the image layer ordinary on CPUs with AMX. This is the
measurement behind that rule:

    python benchmarks/image_layer_ab.py --task cifar10_cpu --precision bf16 --json out.json
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
from throughput import TASK_SETUPS, build  # noqa: E402

from dfad.engine.runtime import reuse_freed_memory  # noqa: E402
from dfad.models.generators import set_image_layer_formulation  # noqa: E402
from dfad.provenance import provenance  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASK_SETUPS), default="cifar10_cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per form per round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    # Compilation off: under bf16 on CPU the generator is eager anyway, and the comparison is of
    # the eager forms; the teacher's compiled forward would only add the same time to both.
    cfg, method = build(args.task, overrides=[f"precision={args.precision}", "distill.compile=false"])
    method.teacher.eval(), method.student.train(), method.generator.train()
    forms = ("taps", "plain")
    times = {form: [] for form in forms}
    for form in forms:  # warm-up
        set_image_layer_formulation(method.generator, form)
        method.step(), method.step()
    for _ in range(args.rounds):
        for form in forms:
            set_image_layer_formulation(method.generator, form)
            for _ in range(args.repeats):
                start = time.perf_counter()
                method.step()
                times[form].append(time.perf_counter() - start)
    medians = {form: statistics.median(values) for form, values in times.items()}
    for form in forms:
        print(f"image layer {form}: {medians[form]:.3f} s/it")
    print(f"plain / taps: {medians['plain'] / medians['taps']:.3f}")
    if args.json:
        record = {"task": args.task, "precision": args.precision, "threads": args.threads, "compile": False,
                  "seconds_per_iteration": medians, "times": times, **provenance()}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
