"""Look at finished runs again: one checkpoint's metric on the test split, a run's report rebuilt
from its checkpoints."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from .config import Config, load_config
from .data import DatasetInfo
from .engine import build_model_from_entry, evaluate, load_checkpoint
from .engine.checkpoint import pick_model_entry
from .errors import DfadError
from .model_checks import check_model_outputs, model_profile
from .model_files import load_teacher
from .report import write_report
from .runs import load_split, setup
from .tasks import TASKS


def evaluate_checkpoint(cfg: Config, checkpoint: str | Path, role: str = "student") -> dict[str, Any]:
    """The metric, size and FLOPs of one model in a checkpoint, on the config's test split."""
    device = setup(cfg)
    task = TASKS.build(cfg.task)
    test_set = load_split(cfg, train=False)
    payload = load_checkpoint(checkpoint)
    entry = pick_model_entry(payload, role, checkpoint)
    model = build_model_from_entry(entry, checkpoint).to(device)
    check_model_outputs(model, task, test_set.info, f"model from {checkpoint}", device)
    metric = evaluate(model, test_set, task, cfg.data.eval_batch_size, device, return_metric=True)
    return {"checkpoint": str(checkpoint), "arch": entry["arch"], "dataset": test_set.info.name,
            "samples": len(test_set), task.metric_name: metric.compute(),
            **model_profile(model, test_set.info.input_shape)}


def rebuild_report(run_dir: str | Path, data_root: Optional[str] = None, trust_checkpoint: bool = False) -> Path:
    """`dfad report RUN_DIR`: the run's models from its checkpoints (the teacher of a distillation
    from its config), the test split when it can be read, then report.html."""
    run_dir = Path(run_dir)
    config_path, best = run_dir / "config.yaml", run_dir / "checkpoints" / "best.pt"
    if not config_path.is_file() or not best.is_file():
        raise DfadError(f"{run_dir} is not a finished dfad run (needs config.yaml and checkpoints/best.pt)")
    cfg = load_config(str(config_path))
    if data_root:
        cfg.data.root = data_root
    device = torch.device("cpu")
    task = TASKS.build(cfg.task)
    payload = load_checkpoint(best)
    data = payload.get("data") or {}
    info = DatasetInfo(data.get("name", cfg.data.name), data["num_classes"], data["input_shape"][0],
                       data["input_shape"][1], tuple(data["mean"]), tuple(data["std"]))
    models = {role: build_model_from_entry(entry, best) for role, entry in payload["models"].items()
              if entry.get("arch") is not None}
    if "teacher" not in models and cfg.teacher.checkpoint:
        try:
            models["teacher"] = load_teacher(cfg, info, device, trust_checkpoint)
        except DfadError as exc:
            warnings.warn(f"report without the teacher's latency and predictions: {exc}", stacklevel=2)
    per_class = None
    if cfg.data.name != "none" and task.metric_name == "accuracy":
        try:
            test_set = load_split(cfg, train=False)
            per_class = {role: evaluate(models[role], test_set, task, cfg.data.eval_batch_size, device,
                                        return_metric=True).per_class()
                         for role in ("teacher", "student") if role in models}
        except DfadError as exc:
            warnings.warn(f"report without per-class accuracy (test split unavailable): {exc}", stacklevel=2)
    nz = (payload["models"].get("generator") or {}).get("args", {}).get("nz")
    return write_report(run_dir, teacher=models.get("teacher"), student=models.get("student"),
                        generator=models.get("generator"), nz=nz, per_class=per_class or None, device=device)
