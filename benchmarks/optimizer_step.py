"""One optimiser step of DFAD's networks: per-parameter loop, `foreach` (multi-tensor) and `fused`,
with whether each gives bit-identical parameters to the loop after 20 steps.

The generator's Adam step (GeneratorA, 2.3M parameters) is once per iteration and the student's
SGD step (ResNet-8) k = 5 times; dfad's optimisers use `foreach`, which is bit-identical to the loop
on CPU (`fused` rounds differently).

    python benchmarks/optimizer_step.py --threads 1 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from dfad.models import build_model
from dfad.provenance import provenance

VARIANTS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
OPTIMIZERS = {
    "generator adam (generator_a, nz 256, ngf 64, 32 px)":
        (lambda: build_model("generator_a", nz=256, ngf=64, channels=3, image_size=32),
         lambda params, **kw: torch.optim.Adam(params, lr=1e-3, **kw)),
    "student sgd (cifar_resnet8)":
        (lambda: build_model("cifar_resnet8", num_classes=10, in_channels=3),
         lambda params, **kw: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4, **kw)),
}


def _median_ms(fn, repeats: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _after_steps(build, make, variant: dict, steps: int = 20) -> torch.Tensor:
    torch.manual_seed(0)
    model = build()
    optimizer = make(model.parameters(), **variant)
    grads = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=grads)
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for name, (build, make) in OPTIMIZERS.items():
        model = build()
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        loop = _after_steps(build, make, VARIANTS["loop"])
        for variant, kwargs in VARIANTS.items():
            ms = _median_ms(make(model.parameters(), **kwargs).step)
            identical = torch.equal(_after_steps(build, make, kwargs), loop)
            results.setdefault(name, {})[variant] = {"ms_per_step": ms, "bit_identical_to_loop": identical}
            print(f"{name}: {variant} {ms:.2f} ms, bit-identical to the loop: {identical}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "results": results, **provenance()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
