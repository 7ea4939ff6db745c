"""Does torch.compile of the teacher or the student pay in DFAD's imitation step, per precision?

Times, alternately in one process (medians), the two network parts of an imitation step on the
`cifar10_cpu` networks (channels_last, batch 128): the frozen ResNet-20 teacher's forward without
gradient, and the ResNet-8 student's update (forward, L1 to the teacher's outputs, backward, SGD
step with momentum), each eager and compiled (`torch.compile(module, dynamic=False)`), in fp32 and
under bf16 autocast. Reports each compile's one-off time (the first call) with the machine's
native bf16 support.

    python benchmarks/compile_probe.py --threads 2 --json benchmarks/results/compile_probe_cifar10_cpu.json
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
from dfad.engine.runtime import configure  # noqa: E402
from dfad.models import MODELS  # noqa: E402
from dfad.provenance import provenance  # noqa: E402


def build(batch_size: int, teacher_name: str, student_name: str, image_size: int, num_classes: int):
    torch.manual_seed(0)
    teacher = MODELS.build(teacher_name, num_classes=num_classes).eval().to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = MODELS.build(student_name, num_classes=num_classes).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(batch_size, 3, image_size, image_size).to(memory_format=torch.channels_last)
    return teacher, student, optimizer, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--teacher", default="cifar_resnet20")
    parser.add_argument("--student", default="cifar_resnet8")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of every variant")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--memory-reuse", action="store_true",
                        help="keep freed memory in the process, as dfad's runs do (memory_reuse: true)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    configure(args.threads, args.memory_reuse)
    teacher, student, optimizer, images = build(args.batch_size, args.teacher, args.student, args.image_size,
                                                args.num_classes)
    compiled_teacher = torch.compile(teacher, dynamic=False)
    compiled_student = torch.compile(student, dynamic=False)
    with torch.no_grad():
        targets = teacher(images).float()

    def teacher_forward(model, autocast):
        with torch.no_grad(), autocast():
            model(images)

    def student_update(model, autocast):
        with autocast():
            out = model(images)
        loss = F.l1_loss(out.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    variants = {}
    for precision in args.precisions.split(","):
        autocast = autocast_factory(precision, torch.device("cpu"))
        for part, function, eager, compiled in (("teacher_forward", teacher_forward, teacher, compiled_teacher),
                                                ("student_update", student_update, student, compiled_student)):
            variants[f"{part}/{precision}/eager"] = (function, eager, autocast)
            variants[f"{part}/{precision}/compiled"] = (function, compiled, autocast)
    compile_seconds = {}
    for name, (function, model, autocast) in variants.items():  # warm-up; a compiled one compiles here
        start = time.perf_counter()
        function(model, autocast)
        first = time.perf_counter() - start
        function(model, autocast)
        if name.endswith("compiled"):
            compile_seconds[name] = round(first, 2)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (function, model, autocast) in variants.items():
            start = time.perf_counter()
            for _ in range(args.repeats):
                function(model, autocast)
            times[name].append((time.perf_counter() - start) / args.repeats)
    result = {"milliseconds": {name: round(1000 * statistics.median(t), 2) for name, t in times.items()},
              "first_call_seconds_compiled": compile_seconds}
    result["compiled_over_eager"] = {
        name.rsplit("/", 1)[0]: round(result["milliseconds"][name] / result["milliseconds"][name.replace("compiled", "eager")], 3)
        for name in variants if name.endswith("compiled")}
    result.update(batch_size=args.batch_size, memory_reuse=args.memory_reuse, teacher=args.teacher, student=args.student, image_size=args.image_size,
                  threads=torch.get_num_threads(), **provenance())
    for name, ms in result["milliseconds"].items():
        print(f"{name:34s} {ms:8.1f} ms")
    print("compiled / eager:", result["compiled_over_eager"])
    print("first call (compile) s:", compile_seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
