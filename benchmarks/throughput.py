"""Seconds per DFAD iteration: dfad's engine against a plain PyTorch loop.

The plain baseline (written out below) is eager fp32, NCHW, one generator call per step and exactly
DFAD's default update rule; it stays fp32 whatever `--precision` ours runs in, so `speedup` is
always plain fp32 seconds / our seconds. Both sides start from the same weights and seed and are
timed alternately in one process after a warm-up. Also reports where our iteration's time goes
(generator, teacher forward, student update, generation step; each timed alone), this machine's
matmul throughput in our precision, our effective TFLOP/s (the plain formulation's FLOPs per
iteration / our seconds per iteration), and the CPU's native bf16 support.

    python benchmarks/throughput.py --task cifar10_cpu --precision bf16 --json out.json

The last line printed is `speedup: X.XX` (plain fp32 seconds / ours).
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

CIFAR10 = DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
# config, data facts, overrides, default batch size. The benchmark never reads data; the teacher
# is the config's (untrained: speed does not depend on the weights). "cifar10" is the paper's
# CIFAR-10 networks (ResNet-34 -> ResNet-18, nz 256) on the mnist config's other settings.
TASK_SETUPS = {
    "mnist": ("mnist", DatasetInfo("mnist", 10, 1, 32, (0.1307,), (0.3081,)), (), 256),
    "cifar10": ("mnist", CIFAR10,
                ("teacher.model={arch: cifar_resnet34}", "distill.student.arch=cifar_resnet18", "distill.nz=256",
                 "distill.student_optimizer.lr=0.1", "distill.student_optimizer.weight_decay=5e-4"), 64),
    "cifar10_cpu": ("cifar10_cpu", CIFAR10, (), 128),
    "camvid_cpu": ("camvid_cpu", DatasetInfo("camvid", 11, 3, 64, (0.5,) * 3, (0.5,) * 3), (), 32),
}


def plain_iteration(teacher, student, generator, s_opt, g_opt, batch_size: int, nz: int, k: int,
                    device="cpu", segmentation: bool = False) -> None:
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
    discrepancy = F.l1_loss(student(fake), teacher(fake))
    loss_g = -torch.log(discrepancy + 1) if segmentation else -discrepancy
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


def build(task: str, batch_size: int | None = None, seed: int = 0, overrides=(), device="cpu"):
    config_name, info, task_overrides, default_batch = TASK_SETUPS[task]
    cfg = load_config(config_name, [*task_overrides, f"distill.batch_size={batch_size or default_batch}",
                                    f"seed={seed}", f"device={device}", *overrides])
    torch.manual_seed(seed)
    tc = cfg.teacher.model
    teacher = build_model(tc.arch, num_classes=info.num_classes, in_channels=info.channels, **tc.args).to(device)
    method = build_distillation(cfg, teacher, info, TASKS.build(cfg.task), device)
    return cfg, method


def matmul_gflops(device="cpu", dtype=torch.float32, repeats: int = 5) -> float:
    n = 2048 if torch.device(device).type == "cpu" else 8192
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
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
                        cfg.distill.imitation_steps, cfg.device, cfg.task == "segmentation")
    return int(counter.get_total_flops())


def component_seconds(method, repeats: int, device="cpu") -> dict[str, float]:
    """Median seconds of each part of our iteration, timed alone with the method's own networks,
    layout and precision: one generator forward, teacher forward and student update (each made k
    times per iteration, in the imitation steps) and one generation step."""
    method.teacher.eval(), method.student.train(), method.generator.train()
    with torch.no_grad(), method.autocast():
        images = method.generate(method.noise())

    def generator_forward():
        with torch.no_grad(), method.autocast():
            method.generate(method.noise())

    def teacher_forward():
        with torch.no_grad(), method.autocast():
            method.teacher(images)

    def student_update():
        with torch.no_grad(), method.autocast():
            target = method.teacher(images)
        with method.autocast():
            out = method.student(images)
        method.update("student", method.task.discrepancy(out.float(), target.float()))

    parts = {"generator_forward": generator_forward, "teacher_forward": teacher_forward,
             "student_update_with_teacher": student_update, "generation_step": method.generation_step}
    timed = {}
    for name, fn in parts.items():
        fn()
        timed[name] = statistics.median(_time(fn, device) for _ in range(repeats))
    # The student update above includes its teacher forward; report the student's own share.
    timed["student_update"] = max(timed.pop("student_update_with_teacher") - timed["teacher_forward"], 0.0)
    return timed


def shares(parts: dict[str, float], k: int) -> dict[str, float]:
    per_iteration = {"generator (imitation forwards)": k * parts["generator_forward"],
                     "teacher forward (imitation)": k * parts["teacher_forward"],
                     "student forward/backward/step": k * parts["student_update"],
                     "generation step": parts["generation_step"]}
    total = sum(per_iteration.values())
    return {name: value / total for name, value in per_iteration.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASK_SETUPS), default="mnist")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the task's (mnist 256, cifar10 64, "
                                                                     "cifar10_cpu 128, camvid_cpu 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per side per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between baseline and ours")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                        help="ours (autocast); the plain baseline is always fp32")
    parser.add_argument("--channels-last", choices=["on", "off"], default="on",
                        help="ours: teacher, student and generator in channels_last layout (distill.channels_last)")
    parser.add_argument("--compile", choices=["on", "off"], default="on",
                        help="ours: distill.compile (generator, eager under bf16 on CPU; teacher imitation forwards); the baseline is always eager")
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
                        overrides=[f"distill.compile={args.compile == 'on'}", f"memory_reuse={memory_reuse}",
                                   f"distill.channels_last={args.channels_last == 'on'}",
                                   f"precision={args.precision}"])
    plain = make_plain(method, cfg)
    dc = cfg.distill
    segmentation = cfg.task == "segmentation"
    precision = method.precision  # "auto" resolved for this machine
    flops = plain_flops_per_iteration(plain, cfg)
    print(f"task {args.task}, batch {dc.batch_size}, device {args.device}, threads {torch.get_num_threads()}, "
          f"ours: precision {precision}, channels_last {args.channels_last}, compile {args.compile}, "
          f"memory reuse {memory_reuse}; plain formulation {flops / 1e9:.1f} GFLOP per iteration; "
          f"CPU {origin['machine']['cpu']} (bf16: {origin['machine']['cpu_bf16']})")

    def run_plain():
        plain_iteration(*plain, dc.batch_size, dc.nz, dc.imitation_steps, args.device, segmentation)

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
    parts = component_seconds(method, args.repeats, args.device)
    part_shares = shares(parts, dc.imitation_steps)
    peak = matmul_gflops(args.device, torch.bfloat16 if precision == "bf16" else torch.float32)
    effective = flops / ours_s / 1e9
    result = {
        "task": args.task, "batch_size": dc.batch_size, "device": args.device,
        "threads": torch.get_num_threads(), "precision": precision, "channels_last": args.channels_last == "on",
        "compile": args.compile == "on", "memory_reuse": memory_reuse,
        "plain_precision": "fp32", "plain_seconds_per_iteration": plain_s, "ours_seconds_per_iteration": ours_s,
        "plain_times": plain_times, "ours_times": ours_times, "ours_warmup_seconds_two_iterations": warmup_ours,
        "ours_component_seconds": parts, "ours_time_shares": part_shares,
        "plain_gflop_per_iteration": flops / 1e9, "matmul_precision": precision, "matmul_gflops": peak,
        "ours_effective_gflops": effective, "fraction_of_matmul_peak": effective / peak,
        "speedup": plain_s / ours_s, **origin,
    }
    print(f"plain fp32: {plain_s:.3f} s/it   ours ({precision}): {ours_s:.3f} s/it   "
          f"(ours' first two iterations: {warmup_ours:.1f} s)")
    print("ours, where the time goes: " + ", ".join(f"{name} {100 * v:.0f}%" for name, v in part_shares.items()))
    print(f"matmul {precision}: {peak / 1e3:.2f} TFLOP/s   ours effective: {effective / 1e3:.3f} TFLOP/s "
          f"({100 * effective / peak:.0f}% of matmul)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"speedup: {plain_s / ours_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
