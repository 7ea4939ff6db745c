"""`dfad demo`: the whole story on the bundled digits, offline, in about a minute on 2 CPU cores."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .config import config_to_dict, load_config
from .data import default_cache_dir
from . import runs

DEMO_CONFIG = "digits"


def cached_teacher_dir(cfg) -> Path:
    """Teachers are cached by everything that shapes them (data, model, training, seed)."""
    resolved = config_to_dict(cfg)
    key = json.dumps({"data": resolved["data"], "teacher": resolved["teacher"], "seed": cfg.seed}, sort_keys=True)
    return default_cache_dir() / "teachers" / f"{cfg.data.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def format_table(summary: dict[str, Any], teacher_seconds: float, teacher_cached: bool) -> str:
    t_acc, s_acc = summary["teacher_accuracy"], summary["student_accuracy"]
    rows = [
        ("", "teacher", "student"),
        ("model", summary["teacher_model"], summary["student_model"]),
        ("test accuracy", f"{t_acc:.4f}", f"{s_acc:.4f}"),
        ("parameters", f"{summary['teacher_params']:,}", f"{summary['student_params']:,}"),
        ("MACs / image", _si(summary["teacher_macs"]), _si(summary["student_macs"])),
        ("FLOPs / image", _si(summary["teacher_flops"]), _si(summary["student_flops"])),
        ("wall time", f"{teacher_seconds:.1f} s" + (" (cached)" if teacher_cached else ""),
         f"{summary['wall_seconds']:.1f} s"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"student / teacher accuracy: {s_acc / t_acc:.3f}  (target >= 0.95); "
                 f"best student accuracy {summary['best_student_accuracy']:.4f}")
    return "\n".join(lines)


def run_demo(out: str | Path, *, force: bool = False, progress: bool = True,
             overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    start = time.perf_counter()
    cfg = load_config(DEMO_CONFIG, overrides)
    teacher_dir = cached_teacher_dir(cfg)
    teacher_path = teacher_dir / "teacher.pt"
    cached = teacher_path.exists()
    if cached:
        teacher_seconds = json.loads((teacher_dir / "summary.json").read_text())["wall_seconds"]
        print(f"reusing cached teacher {teacher_path}")
    else:
        print(f"training the teacher on {cfg.data.name} (train split) -> {teacher_dir}")
        teacher_seconds = runs.train_teacher(cfg, teacher_dir, force=True, progress=progress)["wall_seconds"]
    cfg.teacher.checkpoint = str(teacher_path)
    print(f"distilling a student with {cfg.distill.method.upper()} from generated samples only -> {out}")
    summary = runs.distill(cfg, out, force=force, progress=progress)
    table = format_table(summary, teacher_seconds, cached)
    total = time.perf_counter() - start
    table += f"\ntotal wall time: {total:.1f} s"
    (Path(out) / "demo_table.txt").write_text(table + "\n")
    summary = {**summary, "teacher_cached": cached, "teacher_wall_seconds": teacher_seconds,
               "demo_wall_seconds": round(total, 2)}
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table)
    return summary
