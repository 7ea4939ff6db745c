"""The one training loop: iterations, LR schedules, validation, checkpoints, logs, progress.

Every method (DFAD, supervised teacher training, and the baselines) runs through `fit`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from torch import nn
from tqdm.auto import tqdm

from ..errors import DfadError
from ..methods import Method
from .checkpoint import model_entry, save_checkpoint
from .run_dir import RunDir


@dataclass
class FitResult:
    final_metric: Optional[float] = None
    best_metric: Optional[float] = None
    best_iteration: Optional[int] = None
    iterations: int = 0
    wall_seconds: float = 0.0
    stopped_by_time_limit: bool = False
    stopped_at_target: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def fit(method: Method, run: RunDir, *, iterations: int, val_every: int, log_every: int = 10,
        validate: Optional[Callable[[nn.Module], float]] = None, metric_name: str = "accuracy",
        extra_checkpoint: Optional[dict[str, Any]] = None, sample_stats: Optional[tuple[Sequence[float], Sequence[float]]] = None,
        progress: bool = True, desc: str = "train", time_limit_seconds: Optional[float] = None,
        stop_at_metric: Optional[float] = None) -> FitResult:
    """Run `method.step()` `iterations` times.

    Every `val_every` iterations (and at the end): validate `method.evaluated`, save a sample
    grid, write checkpoints/last.pt and, on a new best metric, checkpoints/best.pt.
    With `time_limit_seconds`, the run ends (validated and checkpointed) at the first iteration
    past the limit; with `stop_at_metric`, at the first validation reaching it.
    """
    result = FitResult()
    start = time.perf_counter()
    last_metric: Optional[float] = None

    def checkpoint(iteration: int, metric: Optional[float]) -> dict[str, Any]:
        return {"iteration": iteration, "metric": {metric_name: metric},
                "models": {role: model_entry(m) for role, m in method.models.items()},
                **(extra_checkpoint or {})}

    bar = tqdm(range(1, iterations + 1), desc=desc, disable=not progress, dynamic_ncols=True,
               mininterval=1.0, unit="it")
    for iteration in bar:
        losses = method.step()
        for name, value in losses.items():
            if not math.isfinite(value):
                last = run.checkpoints / "last.pt"
                kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
                raise DfadError(f"{name} became {value} at iteration {iteration}: the run diverged; lower the "
                                f"learning rates and retry ({kept})")
        for scheduler in method.schedulers.values():
            scheduler.step()
        record: dict[str, Any] = {"iteration": iteration, **losses, **method.learning_rates()}
        out_of_time = time_limit_seconds is not None and time.perf_counter() - start > time_limit_seconds

        if iteration % val_every == 0 or iteration == iterations or out_of_time:
            if validate is not None:
                last_metric = validate(method.evaluated)
                record[metric_name] = last_metric
            samples = method.sample_images()
            if samples is not None and sample_stats is not None:
                run.save_samples(samples, iteration, *sample_stats)
            if last_metric is not None and (result.best_metric is None or last_metric > result.best_metric):
                result.best_metric, result.best_iteration = last_metric, iteration
                save_checkpoint(checkpoint(iteration, last_metric), run.checkpoints / "best.pt")
            save_checkpoint(checkpoint(iteration, last_metric), run.checkpoints / "last.pt")

        if metric_name in record or iteration % log_every == 0:
            record["elapsed_seconds"] = round(time.perf_counter() - start, 3)
            run.log(record)
            result.history.append(record)
        bar.set_postfix({**{k: f"{v:.4f}" for k, v in losses.items()}, metric_name: _fmt(last_metric)},
                        refresh=False)
        if out_of_time:
            result.stopped_by_time_limit = True
            break
        if stop_at_metric is not None and metric_name in record and last_metric >= stop_at_metric:
            result.stopped_at_target = True
            break
    bar.close()
    run.write_curve(result.history, metric_name)

    result.final_metric = last_metric
    result.iterations = iteration
    result.wall_seconds = time.perf_counter() - start
    if validate is None:  # nothing to rank by: the final models are also the "best"
        save_checkpoint(checkpoint(result.iterations, None), run.checkpoints / "best.pt")
    return result
