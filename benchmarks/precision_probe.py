"""Is bf16 worth it on this CPU? A minute's probe where `throughput.py --precision bf16` would take
most of an hour (CPUs without native bf16 run it many times slower than fp32).

Times, alternately in one process, a square matmul and a `cifar_resnet20` forward plus a
`cifar_resnet8` forward/backward (the imitation step's networks, channels_last) in fp32 and under
bf16 autocast, and prints the bf16 / fp32 time ratios with the CPU's native bf16 support (the
flags `--precision auto` reads).

    python benchmarks/precision_probe.py --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dfad.engine.precision import autocast_factory  # noqa: E402
from dfad.models import MODELS  # noqa: E402
from dfad.provenance import provenance  # noqa: E402


def workloads(batch_size: int, matmul_size: int):
    teacher = MODELS.build("cifar_resnet20", num_classes=10).eval().to(memory_format=torch.channels_last)
    student = MODELS.build("cifar_resnet8", num_classes=10).to(memory_format=torch.channels_last)
    images = torch.randn(batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    a, b = torch.randn(matmul_size, matmul_size), torch.randn(matmul_size, matmul_size)

    def matmul(precision):
        if precision == "bf16":
            torch.mm(a.bfloat16(), b.bfloat16())
        else:
            torch.mm(a, b)

    autocast = {p: autocast_factory(p, torch.device("cpu")) for p in ("fp32", "bf16")}  # what the engine uses

    def imitation_step(precision):
        with autocast[precision]():
            with torch.no_grad():
                target = teacher(images)
            loss = F.l1_loss(student(images), target.float())
        loss.backward()

    return {"matmul": matmul, "imitation_step": imitation_step}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--matmul-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of fp32 and bf16")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seconds: dict[str, dict[str, list[float]]] = {}
    for name, run in workloads(args.batch_size, args.matmul_size).items():
        seconds[name] = {"fp32": [], "bf16": []}
        for precision in ("fp32", "bf16"):
            run(precision)  # warm-up
        for _ in range(args.rounds):
            for precision in ("fp32", "bf16"):
                start = time.perf_counter()
                run(precision)
                seconds[name][precision].append(time.perf_counter() - start)
    result = {"batch_size": args.batch_size, "matmul_size": args.matmul_size, "rounds": args.rounds,
              "median_seconds": {n: {p: statistics.median(t) for p, t in s.items()} for n, s in seconds.items()},
              "times": seconds, **provenance()}
    result["bf16_over_fp32_time"] = {n: m["bf16"] / m["fp32"] for n, m in result["median_seconds"].items()}
    print(f"CPU {result['machine']['cpu']} (bf16: {result['machine']['cpu_bf16']}), "
          f"{torch.get_num_threads()} threads")
    for name, m in result["median_seconds"].items():
        print(f"{name}: fp32 {m['fp32'] * 1000:.0f} ms, bf16 {m['bf16'] * 1000:.0f} ms "
              f"(bf16 takes {result['bf16_over_fp32_time'][name]:.2f}x fp32's time)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
