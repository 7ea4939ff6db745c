"""Seconds per DFAD iteration: dfad's engine against a plain PyTorch loop with identical math.

The plain baseline (written out below) is eager fp32, NCHW, one generator call per step and exactly
DFAD's default update rule. Both sides start from the same weights and seed and are timed
alternately in one process after a warm-up. Also reports this machine's fp32 matmul throughput
and our effective GFLOP/s (the plain formulation's FLOPs per iteration / our seconds per iteration).

    python benchmarks/throughput.py --task mnist --batch-size 256 --repeats 3 --json out.json

The last line printed is `speedup: X.XX` (baseline seconds / ours).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from dfad.config import load_config
from dfad.data import DatasetInfo
from dfad.engine.optim import build_optimizer
from dfad.engine.runtime import reuse_freed_memory
from dfad.models import build_model
from dfad.models.generators import set_upconv_formulation
from dfad.provenance import provenance
from dfad.runs import build_distillation
from dfad.tasks import TASKS

# config, teacher arch, data facts, overrides. The benchmark never reads data, so the CIFAR-10
# setup borrows the mnist config and replaces what differs (the paper's CIFAR-10 networks,
# nz = 256 and student optimiser; 3-channel 32 px images).
TASK_SETUPS = {
    "mnist": ("mnist", "lenet5", DatasetInfo("mnist", 10, 1, 32, (0.1307,), (0.3081,)), ()),
    "cifar10": ("mnist", "cifar_resnet34",
                DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                ("distill.student.arch=cifar_resnet18", "distill.nz=256", "distill.student_optimizer.lr=0.1",
                 "distill.student_optimizer.weight_decay=5e-4")),
}


def plain_iteration(teacher, student, generator, s_opt, g_opt, batch_size: int, nz: int, k: int,
                    device="cpu") -> None:
    """DFAD's update rule written the obvious way: the reference for speed and for results."""
    for _ in range(k):
        z = torch.randn(batch_size, nz, device=device)
        with torch.no_grad():
            fake = generator(z)
            t_logits = teacher(fake)
        loss_s = F.l1_loss(student(fake), t_logits)
        s_opt.zero_grad()
        loss_s.backward()
        s_opt.step()
    z = torch.randn(batch_size, nz, device=device)
    fake = generator(z)
    loss_g = -F.l1_loss(student(fake), teacher(fake))
    g_opt.zero_grad()
    loss_g.backward()
    g_opt.step()


def make_plain(method, cfg):
    """Copies of the engine's networks and optimisers, as the plain loop uses them."""
    teacher = copy.deepcopy(method.teacher).to(memory_format=torch.contiguous_format)
    student = copy.deepcopy(method.student).to(memory_format=torch.contiguous_format)
    generator = copy.deepcopy(method.generator).to(memory_format=torch.contiguous_format)
    set_upconv_formulation(generator, "plain")
    teacher.eval(), student.train(), generator.train()
    dc = cfg.distill
    s_opt = build_optimizer(student.parameters(), dc.student_optimizer)
    g_opt = build_optimizer(generator.parameters(), dc.generator_optimizer)
    return teacher, student, generator, s_opt, g_opt


def build(task: str, batch_size: int, seed: int = 0, overrides=(), device="cpu"):
    config_name, teacher_arch, info, task_overrides = TASK_SETUPS[task]
    cfg = load_config(config_name, [*task_overrides, f"distill.batch_size={batch_size}", f"seed={seed}",
                                    f"device={device}", *overrides])
    torch.manual_seed(seed)
    teacher = build_model(teacher_arch, num_classes=info.num_classes, in_channels=info.channels).to(device)
    method = build_distillation(cfg, teacher, info, TASKS.build(cfg.task), device)
    return cfg, method


def matmul_gflops(device="cpu", repeats: int = 5) -> float:
    n = 2048 if torch.device(device).type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = min(_time(lambda: torch.mm(a, b), device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _time(fn, device="cpu") -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def plain_flops_per_iteration(plain, cfg) -> int:
    teacher, student, generator, s_opt, g_opt = copy.deepcopy(plain)
    with FlopCounterMode(display=False) as counter:
        plain_iteration(teacher, student, generator, s_opt, g_opt, cfg.distill.batch_size, cfg.distill.nz,
                        cfg.distill.imitation_steps, cfg.device)
    return int(counter.get_total_flops())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASK_SETUPS), default="mnist")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per side per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between baseline and ours")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", choices=["on", "off"], default="on",
                        help="ours: torch.compile the generator (distill.compile); the baseline is always eager")
    parser.add_argument("--memory-reuse", choices=["on", "off"], default="on",
                        help="keep freed memory in the process (dfad's default); process-wide, so the "
                             "baseline in the same process benefits too")
    parser.add_argument("--json", default=None, help="write the measurements to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    memory_reuse = args.memory_reuse == "on" and reuse_freed_memory()
    if torch.device(args.device).type == "cuda":
        torch.backends.cudnn.benchmark = True

    origin = provenance()
    cfg, method = build(args.task, args.batch_size, device=args.device,
                        overrides=[f"distill.compile={args.compile == 'on'}", f"memory_reuse={memory_reuse}"])
    plain = make_plain(method, cfg)
    dc = cfg.distill
    flops = plain_flops_per_iteration(plain, cfg)
    print(f"task {args.task}, batch {args.batch_size}, device {args.device}, threads {torch.get_num_threads()}, "
          f"compile {args.compile}, memory reuse {memory_reuse}; "
          f"plain formulation {flops / 1e9:.1f} GFLOP per iteration")

    def run_plain():
        plain_iteration(*plain, dc.batch_size, dc.nz, dc.imitation_steps, args.device)

    # Warm-up: compilation (two graphs: with and without grad), allocator, oneDNN primitive caches.
    start = time.perf_counter()
    method.step(), method.step()
    warmup_ours = time.perf_counter() - start
    run_plain()
    ours_times, plain_times = [], []
    for _ in range(args.rounds):
        plain_times += [_time(run_plain, args.device) for _ in range(args.repeats)]
        ours_times += [_time(method.step, args.device) for _ in range(args.repeats)]
    plain_s, ours_s = statistics.median(plain_times), statistics.median(ours_times)
    peak = matmul_gflops(args.device)
    effective = flops / ours_s / 1e9
    result = {
        "task": args.task, "batch_size": args.batch_size, "device": args.device,
        "threads": torch.get_num_threads(), "compile": args.compile == "on", "memory_reuse": memory_reuse,
        "plain_seconds_per_iteration": plain_s, "ours_seconds_per_iteration": ours_s,
        "plain_times": plain_times, "ours_times": ours_times, "ours_warmup_seconds_two_iterations": warmup_ours,
        "plain_gflop_per_iteration": flops / 1e9, "matmul_gflops": peak,
        "ours_effective_gflops": effective, "fraction_of_matmul_peak": effective / peak,
        "speedup": plain_s / ours_s, **origin,
    }
    print(f"plain: {plain_s:.3f} s/it   ours: {ours_s:.3f} s/it   (ours' first two iterations: {warmup_ours:.1f} s)")
    print(f"matmul fp32: {peak:.1f} GFLOP/s   ours effective: {effective:.1f} GFLOP/s "
          f"({100 * effective / peak:.0f}% of matmul)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"speedup: {plain_s / ours_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
