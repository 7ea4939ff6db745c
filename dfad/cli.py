"""Command line: parse, build a config, call the library. `dfad --help` lists the subcommands."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Optional, Sequence

from .config import SHIPPED_CONFIGS, check_mean_and_std
from .errors import DfadError, Interrupted

EPILOG = """examples:
  dfad demo --out runs/demo
  dfad train-teacher --config mnist --data-root DATA --out runs/mnist-teacher
  dfad distill --config mnist --data-root DATA --teacher runs/mnist-teacher/teacher.pt --out runs/mnist-dfad distill.iterations=500
  dfad evaluate --config mnist --data-root DATA --checkpoint runs/mnist-dfad/checkpoints/best.pt
  dfad reproduce table2_mnist --data-root DATA --seeds 2 --budget 400 --results results/reproduce
  torchrun --nproc_per_node=2 -m dfad distill --config mnist --teacher T.pt --out runs/ddp
  # your own model, no data: a state dict (or .pt2 / TorchScript file) and its input shape
  dfad distill --teacher my_teacher.pt --teacher-arch torchvision:resnet18 --input-shape 3,32,32 --student cifar_resnet8 --out runs/mine
  dfad export runs/mine --format onnx --dynamic-batch
  dfad report runs/mine

Overrides are dotted config keys with YAML values, e.g. distill.batch_size=256 data.image_size=32.
Data root: --data-root, else $DFAD_DATA_ROOT, else ~/.cache/dfad/data."""


def _add_common(p: argparse.ArgumentParser, needs_out: bool = True) -> None:
    shipped = ", ".join(sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml")))
    p.add_argument("--config", default=None, help=f"YAML config file or shipped config name ({shipped}; a distill "
                        "run with --input-shape and no --config starts from own_model, the no-data defaults)")
    p.add_argument("--data-root", default=None, help="folder holding the datasets (default: $DFAD_DATA_ROOT, "
                                                      "then ~/.cache/dfad/data)")
    p.add_argument("--download", action="store_true", help="download the dataset if missing (needs internet)")
    if needs_out:
        p.add_argument("--out", required=True, help="run folder to write (config, metrics, checkpoints, samples)")
        p.add_argument("--force", action="store_true", help="overwrite a run folder that already holds a run")
        p.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its newest state checkpoint, even with a changed "
                            "config (without --config: the run's own config.yaml plus any overrides); "
                            "re-running the same command into the same --out resumes anyway")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    if needs_out:
        p.add_argument("--tensorboard", action="store_true",
                       help="also log losses, learning rates and the metric to TensorBoard (OUT/tensorboard)")
        p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"], default=None,
                       help="autocast precision (config key `precision`; fp16 adds gradient scaling and needs CUDA; "
                            "auto: bf16 where the CPU or GPU computes it natively, else fp32)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. distill.iterations=200")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfad", description="Data-Free Adversarial Distillation: compress a trained classifier into a "
                                 "small student without its training data.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_train_teacher(sub)
    _add_distill(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_report(sub)
    _add_reproduce(sub)
    return parser


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="train a teacher on the bundled digits, distill it data-free, compare",
                          description="Offline end-to-end demo on scikit-learn's bundled digits: trains (or "
                                      "reuses a cached) teacher, distills a smaller student with DFAD from "
                                      "generated samples only, and prints accuracy, size and FLOPs of both.")
    demo.add_argument("--out", required=True, help="run folder for the distillation")
    demo.add_argument("--force", action="store_true", help="overwrite a run folder that already holds a run")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the digits config")


def _add_train_teacher(sub) -> None:
    teacher = sub.add_parser("train-teacher", help="supervised training of a teacher on a labelled dataset",
                             description="Train the config's teacher model on the training split; writes "
                                         "OUT/teacher.pt (the best validated teacher) and a run folder.")
    _add_common(teacher)


def _add_distill(sub) -> None:
    distill = sub.add_parser("distill", help="distill a student from a teacher with no training data",
                             description="Data-free distillation (DFAD by default): a generator proposes "
                                         "inputs on which student and teacher disagree; the student learns "
                                         "to match the teacher's logits on them. The test split, if any, is only "
                                         "used to report accuracy; without data, give --input-shape.")
    _add_common(distill)
    distill.add_argument("--teacher", default=None,
                         help="the teacher: a dfad checkpoint (OUT/teacher.pt of train-teacher), a state dict "
                              "(built as --teacher-arch, default the config's teacher.model), an exported "
                              "program (.pt2, torch.export.save), a TorchScript file, or a pickled module "
                              "(with --trust-checkpoint)")
    distill.add_argument("--teacher-arch", default=None, metavar="NAME",
                         help="architecture of a state-dict teacher: a dfad model (e.g. cifar_resnet34) or "
                              "torchvision:NAME (e.g. torchvision:resnet18) or timm:NAME")
    distill.add_argument("--student", default=None, metavar="NAME",
                         help="student architecture: a dfad model, torchvision:NAME or timm:NAME (default: the "
                              "config's)")
    distill.add_argument("--trust-checkpoint", action="store_true",
                         help="allow a teacher file that holds a pickled module; loading it runs code from the "
                              "file, so only for files you trust")
    distill.add_argument("--input-shape", default=None, metavar="C,H,W",
                         help="the teacher's input shape when you have no dataset (sets data.name=none; the "
                              "generator makes H x W images, H = W)")
    distill.add_argument("--num-classes", type=int, default=None,
                         help="the teacher's class count (default: the dataset's, or a dry run of the teacher)")
    distill.add_argument("--input-mean", default=None, metavar="M[,M,M]",
                         help="per-channel mean the teacher's inputs are normalised with (default: the "
                              "dataset's; without data ImageNet's for 3 channels, 0.5 otherwise)")
    distill.add_argument("--input-std", default=None, metavar="S[,S,S]", help="per-channel std, as --input-mean")
    distill.add_argument("--compile", action="store_true",
                         help="torch.compile the generator (config key distill.compile; pays off on long runs)")


def _add_evaluate(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="accuracy, parameters and FLOPs of a checkpoint on the test split",
                              description="Evaluate one model of a dfad checkpoint on the config's test split.")
    _add_common(evaluate, needs_out=False)
    evaluate.add_argument("--checkpoint", required=True, help="a dfad checkpoint (teacher.pt, best.pt, last.pt)")
    evaluate.add_argument("--model", default="student",
                          help="which model of the checkpoint: student (default) or teacher; a checkpoint "
                               "holding one model needs no choice")


def _add_export(sub) -> None:
    export = sub.add_parser("export", help="write a run's student as .pt2, ONNX or TorchScript, checked against PyTorch",
                            description="Export the best (or last) student of a distillation run, load the "
                                        "written file back (torch.export.load, torch.jit.load, or onnxruntime / "
                                        "onnx.checker) and compare its outputs with PyTorch's on a batch of the "
                                        "run's generated samples; fails if the largest difference exceeds "
                                        "1e-4 x max(1, largest output). A student of your own class "
                                        "(Python API) starts from the run's student.pt2.")
    export.add_argument("run_dir", help="folder of a `dfad distill` run")
    export.add_argument("--format", required=True, choices=["pt2", "onnx", "torchscript"], help="file format")
    export.add_argument("--dynamic-batch", action="store_true",
                        help="any batch size (checked with a second batch size); default: the check's batch only")
    export.add_argument("--out", default=None, help="file to write (default RUN_DIR/export/student.EXT)")
    export.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which student (default best)")


def _add_report(sub) -> None:
    report = sub.add_parser("report", help="(re)build RUN_DIR/report.html from a run folder",
                            description="Rebuild a run's report.html: the teacher-vs-student table (metric, "
                                        "parameters, FLOPs, CPU latency), learning curves, sample grids, per-class "
                                        "accuracy and the teacher's predictions on generated samples.")
    report.add_argument("run_dir", help="folder of a `dfad distill` or `dfad train-teacher` run")
    report.add_argument("--data-root", default=None, help="folder holding the test split, for per-class accuracy")
    report.add_argument("--trust-checkpoint", action="store_true",
                        help="allow loading a teacher file that holds a pickled module (runs its code)")


def _add_reproduce(sub) -> None:
    reproduce = sub.add_parser("reproduce", help="run the rows of a paper table and write it beside the paper's figures",
                               description="Runs (or reuses / resumes) every requested row of a table for each seed "
                                           "and writes a Markdown table and JSON with mean ± std beside the paper's "
                                           "figure and the command to rerun each row.")
    reproduce.add_argument("table", help="table name, e.g. table2_mnist (see dfad/configs/tables)")
    reproduce.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                           help="config overrides for every row, e.g. device=cuda (part of each run's identity: "
                                "give them again to reuse those runs)")
    reproduce.add_argument("--rows", default=None,
                           help="comma-separated rows (default: all); ROW:N gives that row N seeds instead of --seeds")
    reproduce.add_argument("--seeds", type=int, default=2, help="seeds per row (default 2)")
    reproduce.add_argument("--only-seed", type=int, default=None, metavar="S",
                           help="run only seed S of each row (to spread seeds over processes sharing --out); "
                                "writes no table")
    reproduce.add_argument("--budget", default="paper",
                           help="distillation iterations per run: 'paper' (the config's) or a number (CPU-scaled)")
    reproduce.add_argument("--data-root", default=None, help="folder holding the datasets")
    reproduce.add_argument("--out", default="runs/reproduce", help="where the runs go (reused across calls)")
    reproduce.add_argument("--results", default=None, help="also write TABLE.md and TABLE.json into this folder")
    reproduce.add_argument("--force", action="store_true",
                           help="redo runs in --out made with another config (default: refuse them)")
    reproduce.add_argument("--quiet", action="store_true", help="no progress bars")


def _load(args) -> "Config":  # noqa: F821
    from pathlib import Path

    from .config import NO_DATA_PRESET, load_config

    config = args.config
    if config is None and getattr(args, "resume", False) and (Path(args.out) / "config.yaml").is_file():
        config = str(Path(args.out) / "config.yaml")
    if config is None and getattr(args, "input_shape", None):
        config = NO_DATA_PRESET  # your own model, no data: the defaults chosen for that case
    cfg = load_config(config, args.overrides)
    if getattr(args, "data_root", None):
        cfg.data.root = args.data_root
    if getattr(args, "download", False):
        cfg.data.download = True
    if getattr(args, "precision", None):
        cfg.precision = args.precision
    if getattr(args, "compile", False):
        cfg.distill.compile = True
    if getattr(args, "tensorboard", False):
        cfg.tensorboard = True
    _apply_model_flags(cfg, args)
    return cfg.validate()


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise DfadError(f"{flag} takes comma-separated numbers, got '{text}'") from None


def _apply_model_flags(cfg, args) -> None:
    """--teacher-arch, --student, --input-shape, --num-classes, --input-mean/--input-std."""
    from .config import ModelSpec

    if getattr(args, "teacher_arch", None):
        cfg.teacher.model = ModelSpec(args.teacher_arch, {})
    if getattr(args, "student", None):
        cfg.distill.student = ModelSpec(args.student, {})
    if getattr(args, "input_shape", None):
        shape = [int(v) for v in _floats(args.input_shape, "--input-shape")]
        if len(shape) != 3 or shape[1] != shape[2] or min(shape) <= 0:
            raise DfadError(f"--input-shape takes C,H,W with H = W (square images), got '{args.input_shape}'")
        cfg.data.name, cfg.data.channels, cfg.data.image_size = "none", shape[0], shape[1]
        cfg.data.mean = cfg.data.std = None  # the dataset's statistics no longer apply
    if getattr(args, "num_classes", None) is not None:
        cfg.data.num_classes = args.num_classes
    mean, std = getattr(args, "input_mean", None), getattr(args, "input_std", None)
    check_mean_and_std(mean, std, "--input-mean", "--input-std")
    if mean is not None:
        cfg.data.mean, cfg.data.std = _floats(mean, "--input-mean"), _floats(std, "--input-std")


def _say(text: str) -> None:
    """Results are printed once, by rank 0 of a torchrun launch."""
    import os

    if os.environ.get("RANK", "0") == "0":
        print(text)


def _export(args) -> None:
    from .export import export_student

    result = export_student(args.run_dir, args.format, dynamic_batch=args.dynamic_batch, out=args.out,
                            checkpoint=args.checkpoint)
    if "max_abs_diff" in result:
        check = (f"max |difference| vs PyTorch {result['max_abs_diff']:.3g} (tolerance {result['tolerance']:.3g}, "
                 f"{result['verified_with']})")
    else:
        check = f"checked with {result['verified_with']}"
    origin = f" (from {result['program']}, your own student class)" if "program" in result else ""
    print(f"wrote {result['path']}{origin}; {check}")


def run(args) -> int:
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, force=args.force, progress=not args.quiet, overrides=tuple(args.overrides))
        return 0
    if args.command == "report":
        from .finished_runs import rebuild_report

        path = rebuild_report(args.run_dir, data_root=args.data_root, trust_checkpoint=args.trust_checkpoint)
        print(f"wrote {path}")
        return 0
    if args.command == "export":
        _export(args)
        return 0
    if args.command == "reproduce":
        from .reproduce import reproduce

        if args.seeds < 1:
            raise DfadError(f"--seeds must be at least 1, got {args.seeds}")
        if args.budget == "paper":
            budget = None
        elif args.budget.isdigit() and int(args.budget) > 0:
            budget = int(args.budget)
        else:
            raise DfadError(f"--budget must be 'paper' or a positive number of iterations, got '{args.budget}'")
        reproduce(args.table, out=args.out, rows=args.rows.split(",") if args.rows else None, seeds=args.seeds,
                  budget=budget, data_root=args.data_root, results=args.results, force=args.force,
                  progress=not args.quiet, only_seed=args.only_seed, overrides=args.overrides)
        return 0
    from . import finished_runs, runs

    cfg = _load(args)
    if args.command == "train-teacher":
        summary = runs.train_teacher(cfg, args.out, force=args.force, resume=args.resume, progress=not args.quiet)
        metric = summary["metric"]
        _say(f"teacher {metric} {summary[f'teacher_{metric}']:.4f} -> {summary['teacher_checkpoint']}")
    elif args.command == "distill":
        if args.teacher:
            cfg.teacher.checkpoint = args.teacher
        summary = runs.distill(cfg, args.out, force=args.force, resume=args.resume, progress=not args.quiet,
                               trust_checkpoint=args.trust_checkpoint)
        m = summary["metric"]
        if summary[f"student_{m}"] is None:
            _say(f"distilled {summary['iterations']} iterations with no validation data; run folder {args.out}")
        else:
            _say(f"teacher {m} {summary[f'teacher_{m}']:.4f}, student {m} {summary[f'student_{m}']:.4f} "
                 f"(best {summary[f'best_student_{m}']:.4f} at iteration {summary['best_iteration']}); "
                 f"run folder {args.out}")
    elif args.command == "evaluate":
        print(json.dumps(finished_runs.evaluate_checkpoint(cfg, args.checkpoint, role=args.model), indent=2))
    return 0


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    # argparse gives a second positional (reproduce's KEY=VALUE overrides) only what stands right
    # after the first; overrides written after the options arrive here.
    if getattr(args, "command", None) == "reproduce":
        args.overrides += [u for u in unknown if "=" in u and not u.startswith("-")]
        unknown = [u for u in unknown if u not in args.overrides]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    formatwarning = warnings.formatwarning
    if not args.debug:  # dfad's warnings speak to the user: one line each, without the source line
        warnings.formatwarning = _one_line_warning
    try:
        return _run_reporting_errors(args)
    finally:
        warnings.formatwarning = formatwarning
        _leave_process_group()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"dfad: warning: {message}\n"


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _run_reporting_errors(args) -> int:
    try:
        return run(args)
    except Interrupted as exc:
        print(f"dfad: {exc}", file=sys.stderr)
        return exc.exit_code
    except DfadError as exc:
        if args.debug:
            raise
        print(f"dfad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dfad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
