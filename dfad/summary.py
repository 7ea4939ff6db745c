"""What summary.json says of a finished run: its metrics, models, input facts and provenance."""
from __future__ import annotations

from typing import Any

from .data import DatasetInfo
from .health import HEALTH_FIELDS
from .model_checks import model_profile
from .models import count_parameters, describe_model


def data_facts(info: DatasetInfo) -> dict[str, Any]:
    return {"name": info.name, "num_classes": info.num_classes, "input_shape": list(info.input_shape),
            "mean": list(info.mean), "std": list(info.std)}


def teacher_summary(cfg, model, method, result, best, metric, teacher_path, info, origin) -> dict[str, Any]:
    return {
        f"teacher_{metric}": best["metric"][metric],
        f"final_teacher_{metric}": result.final_metric,
        "best_iteration": result.best_iteration,
        "iterations": result.iterations,
        "wall_seconds": round(result.wall_seconds, 2),
        "metric": metric,
        "precision": method.precision,
        "teacher_arch": cfg.teacher.model.arch,
        "teacher_model": describe_model(model),
        **{f"teacher_{k}": v for k, v in model_profile(model, info.input_shape).items()},
        "teacher_checkpoint": str(teacher_path),
        "input": data_facts(info),
        "seed": cfg.seed,
        **origin,
    }


def _last_value(history: list[dict], key: str) -> Any:
    return next((record[key] for record in reversed(history) if key in record), None)


def distillation_summary(cfg, method, teacher, result, teacher_scores, metric, info, origin) -> dict[str, Any]:
    dc = cfg.distill
    student, generator = method.student, getattr(method, "generator", None)  # KD has no generator
    return {
        f"teacher_{metric}": teacher_scores.compute() if teacher_scores is not None else None,
        f"student_{metric}": result.final_metric,
        f"best_student_{metric}": result.best_metric,
        "best_iteration": result.best_iteration,
        # Models validated beside the student (an averaged student), at the last validation.
        **{f"{name}_{metric}": _last_value(result.history, f"{name}_{metric}") for name in method.also_evaluated()},
        # Label-free health at the last validation (dfad.health) and the warnings raised.
        **{k: result.history[-1][k] for k in HEALTH_FIELDS if result.history and k in result.history[-1]},
        "health_warnings": result.health_warnings,
        "iterations": result.iterations,
        "planned_iterations": dc.iterations,
        "stopped_by_time_limit": result.stopped_by_time_limit,
        "stopped_at_target": result.stopped_at_target,
        "wall_seconds": round(result.wall_seconds, 2),
        "seconds_per_iteration": round(result.wall_seconds / max(1, result.iterations), 4),
        "metric": metric,
        "method": dc.method,
        "precision": getattr(method, "precision", cfg.precision),  # `auto` as resolved on this machine
        "channels_last": dc.channels_last,
        "teacher_arch": describe_model(teacher),
        "student_arch": describe_model(student),
        "teacher_model": describe_model(teacher),
        "student_model": describe_model(student),
        "generator_model": describe_model(generator) if generator is not None else None,
        **{f"teacher_{k}": v for k, v in model_profile(teacher, info.input_shape).items()},
        **{f"student_{k}": v for k, v in model_profile(student, info.input_shape).items()},
        "generator_params": count_parameters(generator) if generator is not None else 0,
        "teacher_checkpoint": str(cfg.teacher.checkpoint) if cfg.teacher.checkpoint else None,
        "input": data_facts(info),
        "seed": cfg.seed,
        **origin,
    }
