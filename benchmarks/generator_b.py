"""The authors' GeneratorB (`generator_b`) beside dfad's earlier one (`generator_b_nearest`): parameters,
FLOPs and seconds per forward+backward pass (what a generation step costs the generator) on this CPU.

    python benchmarks/generator_b.py --image-size 128 --batch-size 64 --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from dfad.engine.precision import _cpu_has_native_bf16
from dfad.models import build_model
from dfad.provenance import provenance


def one_pass(generator: torch.nn.Module, z: torch.Tensor) -> float:
    start = time.perf_counter()
    generator(z).square().mean().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nz", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    z = torch.randn(args.batch_size, args.nz)
    generators, rows = {}, {}
    for arch in ("generator_b", "generator_b_nearest"):
        generator = build_model(arch, nz=args.nz, ngf=args.ngf, channels=3, image_size=args.image_size)
        generators[arch] = generator.to(memory_format=torch.channels_last).train()
        with FlopCounterMode(display=False) as flops:
            one_pass(generators[arch], z)  # also the warm-up
        rows[arch] = {"parameters": sum(p.numel() for p in generator.parameters()),
                      "gflop_forward_backward": round(flops.get_total_flops() / 1e9, 2), "seconds_all": []}
    for _ in range(args.repeats):  # alternated, so that a busy moment costs both alike
        for arch, generator in generators.items():
            rows[arch]["seconds_all"].append(round(one_pass(generator, z), 4))
    for arch, row in rows.items():
        row["seconds_median"] = statistics.median(row["seconds_all"])
        print(f"{arch:20s} params {row['parameters']:>11,}  GFLOP fwd+bwd {row['gflop_forward_backward']:8.2f}"
              f"  s/pass {row['seconds_median']:.4f}")
    result = {"settings": vars(args), "rows": rows, **provenance()}
    result["machine"]["native_bf16"] = _cpu_has_native_bf16()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
