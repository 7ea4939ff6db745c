"""The one training loop: iterations, LR schedules, validation, checkpoints, logs, progress.

Every method (DFAD, supervised teacher training, and the baselines) runs through `fit`.
"""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from torch import nn
from tqdm.auto import tqdm

from ..errors import DfadError
from ..errors import Interrupted
from ..health import HEALTH_FIELDS, NOTES, HealthMonitor
from .checkpoint import list_states, load_newest_state, model_entry, prune_states, save_checkpoint, state_path
from .run_dir import RunDir
from .distributed import SINGLE, Distributed
from .signals import StopRequests
from .state import capture_rng, restore_rng

if TYPE_CHECKING:  # the methods package imports the engine
    from ..methods import Method


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
    health_warnings: list[str] = field(default_factory=list)


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def fit(method: Method, run: RunDir, *, iterations: int, val_every: int, log_every: int = 10,
        validate: Optional[Callable[[nn.Module], float]] = None, metric_name: str = "accuracy",
        extra_checkpoint: Optional[dict[str, Any]] = None, sample_stats: Optional[tuple[Sequence[float], Sequence[float]]] = None,
        progress: bool = True, desc: str = "train", time_limit_seconds: Optional[float] = None,
        stop_at_metric: Optional[float] = None, state_every: int = 0, keep_states: int = 2,
        resume: bool = False, resume_hint: str = "rerun the same command",
        distributed: Distributed = SINGLE, on_iteration: Optional[Callable[[dict], Any]] = None,
        on_validation: Optional[Callable[[dict], Any]] = None) -> FitResult:
    """Run `method.step()` until `iterations`.

    Every `val_every` iterations (and at the end): validate `method.evaluated`, save a sample
    grid, write checkpoints/last.pt and, on a new best metric, checkpoints/best.pt.
    Every `state_every` iterations (0: never), at the end, when stopping early and on SIGINT /
    SIGTERM: a resumable state checkpoint (models, optimisers, schedulers, RNG states, counters),
    keeping the newest `keep_states`. With `resume`, continues from the newest readable one.
    With `time_limit_seconds`, the run ends (validated and checkpointed) at the first iteration
    past the limit (counted from this call); with `stop_at_metric`, at the first validation reaching it.
    At each validation, the method's label-free health (`method.health()`: agreement with the
    teacher on fixed generated samples, the teacher's class balance) joins the record, the progress
    bar shows the agreement, and `dfad.health.HealthMonitor`'s warnings are printed as they start.
    Hooks (rank 0): `on_iteration(record)` after every iteration, `on_validation(record)` after each
    validation and its checkpoints; `record` holds the iteration, losses, learning rates and metric.
    Under torch.distributed, rank 0 alone validates and writes; every rank stops at the same iteration.
    """
    main = distributed.is_main
    result = FitResult()
    last_metric: Optional[float] = None
    first, elapsed_before = 1, 0.0
    found = load_newest_state(run.checkpoints) if resume else None
    if resume and found is None:
        run.truncate_log(0)  # killed before its first state checkpoint: start again from scratch
    if found is not None:
        path, payload = found
        saved = payload["state"]
        try:
            method.load_state_dict(saved["method"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise DfadError(f"cannot resume from {path}: it does not match this run's models ({exc}); "
                            f"pass --force to start over") from exc
        if len(saved["rng"]) != distributed.world_size:
            raise DfadError(f"cannot resume from {path}: it was written by {len(saved['rng'])} process(es), this run "
                            f"has {distributed.world_size}; resume with the same number of processes")
        restore_rng(saved["rng"][distributed.rank])
        first = saved["iteration"] + 1
        last_metric, elapsed_before = saved["last_metric"], saved["elapsed_seconds"]
        result.best_metric, result.best_iteration = saved["best_metric"], saved["best_iteration"]
        result.history = run.truncate_log(saved["iteration"])
    # Label-free health (dfad.health): warnings as they start; a resumed run remembers its best agreement.
    monitor = HealthMonitor()
    for past in result.history:
        monitor.remember(past)
    last_agreement: Optional[float] = None
    session_start = time.perf_counter()
    start = session_start - elapsed_before  # elapsed time counts earlier sessions of a resumed run

    def checkpoint(iteration: int, metric: Optional[float]) -> dict[str, Any]:
        return {"iteration": iteration, "metric": {metric_name: metric},
                "models": {role: model_entry(m) for role, m in method.models.items()},
                **(extra_checkpoint or {})}

    def save_state(iteration: int) -> Path:
        rng = distributed.gather_objects(capture_rng())  # every rank's generators, for an exact resume
        path = state_path(run.checkpoints, iteration)
        if main:
            state = {"iteration": iteration, "method": method.state_dict(), "rng": rng,
                     "last_metric": last_metric, "best_metric": result.best_metric,
                     "best_iteration": result.best_iteration, "elapsed_seconds": time.perf_counter() - start}
            save_checkpoint({"state": state, **(extra_checkpoint or {})}, path)
            prune_states(run.checkpoints, keep_states)
        distributed.barrier()
        return path

    iteration = first - 1
    bar = tqdm(total=iterations, initial=iteration, desc=desc, disable=not (progress and main), dynamic_ncols=True,
               mininterval=1.0, unit="it")
    with StopRequests() as stop:
        while iteration < iterations:
            iteration += 1
            losses = method.step()
            diverged = distributed.first_non_finite(losses)  # any rank's NaN/Inf stops every rank, with one message
            if diverged is not None:
                name, value, rank = diverged
                kept = list_states(run.checkpoints)
                last = run.checkpoints / "last.pt"
                kept_text = (f"the last good checkpoint is {kept[0][1]}" if kept
                             else f"the last good checkpoint is {last}" if last.exists()
                             else "no checkpoint was written yet")
                kept_text = distributed.gather_objects(kept_text)[0]  # rank 0 wrote the checkpoints
                where = f" on rank {rank}" if distributed.enabled else ""
                raise DfadError(f"{name} became {value} at iteration {iteration}{where}: the run diverged; lower the "
                                f"learning rates and retry ({kept_text})")
            for model in method.models.values():  # each rank's BatchNorm statistics drift: keep them identical
                distributed.average_buffers(model)
            method.step_schedulers()
            record: dict[str, Any] = {"iteration": iteration, **losses, **method.learning_rates()}
            out_of_time = time_limit_seconds is not None and time.perf_counter() - session_start > time_limit_seconds

            if distributed.enabled:  # one decision for all ranks: any rank's signal, rank 0's clock
                signalled, out_of_time = distributed.any_flag(stop.received is not None, out_of_time and main)
                if signalled and stop.received is None:
                    stop.received = "SIGTERM"
            validating = iteration % val_every == 0 or iteration == iterations or out_of_time or stop.received
            if validating and main:
                if validate is not None:
                    last_metric = validate(method.evaluated)
                    record[metric_name] = last_metric
                health = method.health()
                if health:
                    record.update({k: v for k, v in health.items() if k in HEALTH_FIELDS})
                    last_agreement = health["agreement"]
                    for kind, message in monitor.new_warnings(health, iteration).items():
                        result.health_warnings.append(message)
                        tqdm.write(f"dfad: {'note' if kind in NOTES else 'warning'}: {message}")
                samples = method.sample_images()
                if samples is not None and sample_stats is not None:
                    run.save_samples(samples, iteration, *sample_stats)
                if last_metric is not None and (result.best_metric is None or last_metric > result.best_metric):
                    result.best_metric, result.best_iteration = last_metric, iteration
                    save_checkpoint(checkpoint(iteration, last_metric), run.checkpoints / "best.pt")
                save_checkpoint(checkpoint(iteration, last_metric), run.checkpoints / "last.pt")

            if validating:
                distributed.barrier()  # the other ranks wait for rank 0's validation and checkpoints
            if main and (validating or iteration % log_every == 0):
                record["elapsed_seconds"] = round(time.perf_counter() - start, 3)
                run.log(record)
                result.history.append(record)
            if main and on_iteration is not None:
                on_iteration(dict(record))
            if main and validating and on_validation is not None:
                on_validation(dict(record))
            bar.update(1)
            bar.set_postfix({**{k: f"{v:.4f}" for k, v in losses.items()}, metric_name: _fmt(last_metric),
                             **({"agreement": f"{last_agreement:.2f}"} if last_agreement is not None else {})},
                            refresh=False)
            reached = stop_at_metric is not None and metric_name in record and last_metric >= stop_at_metric
            if distributed.enabled and validating:
                (reached,) = distributed.main_flags(reached)
            finishing = out_of_time or reached or iteration == iterations or stop.received
            if finishing or (state_every and iteration % state_every == 0):
                saved_path = save_state(iteration)
            if stop.received:
                bar.close()
                if main:
                    run.write_curve(result.history, metric_name)
                code = 130 if stop.received == "SIGINT" else 143
                raise Interrupted(f"stopped by {stop.received} after iteration {iteration}; state saved to "
                                  f"{saved_path}; to continue, {resume_hint}", code)
            if out_of_time:
                result.stopped_by_time_limit = True
                break
            if reached:
                result.stopped_at_target = True
                break
    bar.close()
    if main:
        run.write_curve(result.history, metric_name)

    if distributed.enabled:  # every rank returns rank 0's view of the run
        last_metric, result.best_metric, result.best_iteration = distributed.gather_objects(
            (last_metric, result.best_metric, result.best_iteration))[0]
    result.final_metric = last_metric
    result.iterations = iteration
    result.wall_seconds = time.perf_counter() - start
    if validate is None and main:  # nothing to rank by: the final models are also the "best"
        save_checkpoint(checkpoint(result.iterations, None), run.checkpoints / "best.pt")
    return result
