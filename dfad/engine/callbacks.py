"""What happens around each iteration of the training loop, one job per callback.

`fit` (engine/loop.py) calls each callback's `on_start` before the first iteration, `on_step` after
every `method.step()` (in the order of `standard_callbacks`), and `on_end` after the last. They
share a `LoopState`. Order matters where one reads what another decides: the stop decision comes
before validation (a stopping run validates), validation before the log (the record gains the
metric), and state checkpoints before the interruption they make resumable.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from torch import nn
from tqdm.auto import tqdm

from ..errors import DfadError, Interrupted
from ..health import HEALTH_FIELDS, NOTES, HealthMonitor
from .checkpoint import list_states, load_newest_state, model_entry, prune_states, save_checkpoint, state_path
from .distributed import Distributed
from .run_dir import RunDir
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


@dataclass
class LoopState:
    """What the loop and its callbacks share. `record` is this iteration's metrics line."""
    method: Method
    run: RunDir
    iterations: int
    metric_name: str
    distributed: Distributed
    extra_checkpoint: Optional[dict[str, Any]] = None
    result: FitResult = field(default_factory=FitResult)
    iteration: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    last_metric: Optional[float] = None
    last_agreement: Optional[float] = None
    validating: bool = False
    out_of_time: bool = False
    reached: bool = False
    stop: Optional[StopRequests] = None
    saved_state: Optional[Path] = None
    # perf_counter() values (set by Resume): this session's start, and the run's (earlier sessions
    # of a resumed run count).
    session_start: float = 0.0
    start: float = 0.0

    @property
    def main(self) -> bool:
        return self.distributed.is_main

    @property
    def stopping(self) -> bool:
        return bool(self.out_of_time or self.reached or self.iteration == self.iterations or self.stop.received)

    def checkpoint(self, metric: Optional[float]) -> dict[str, Any]:
        """A model checkpoint (last.pt / best.pt) of this iteration."""
        return {"iteration": self.iteration, "metric": {self.metric_name: metric},
                "models": {role: model_entry(m) for role, m in self.method.models.items()},
                **(self.extra_checkpoint or {})}


class Callback:
    def on_start(self, state: LoopState) -> None:
        pass

    def on_step(self, state: LoopState) -> None:
        pass

    def on_end(self, state: LoopState) -> None:
        pass


class Resume(Callback):
    """With `resume`, continue from the newest readable state checkpoint (models, optimisers,
    schedulers, RNG states, counters, the metrics log up to it)."""

    def __init__(self, resume: bool):
        self.resume = resume

    def on_start(self, state: LoopState) -> None:
        found = load_newest_state(state.run.checkpoints) if self.resume else None
        if self.resume and found is None:
            state.run.truncate_log(0)  # killed before its first state checkpoint: start again from scratch
        elapsed_before = self._restore(state, *found) if found is not None else 0.0
        state.session_start = time.perf_counter()
        state.start = state.session_start - elapsed_before  # elapsed time counts earlier sessions

    @staticmethod
    def _restore(state: LoopState, path: Path, payload: dict) -> float:
        saved, distributed = payload["state"], state.distributed
        try:
            state.method.load_state_dict(saved["method"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise DfadError(f"cannot resume from {path}: it does not match this run's models ({exc}); "
                            f"pass --force to start over") from exc
        if len(saved["rng"]) != distributed.world_size:
            raise DfadError(f"cannot resume from {path}: it was written by {len(saved['rng'])} process(es), this run "
                            f"has {distributed.world_size}; resume with the same number of processes")
        restore_rng(saved["rng"][distributed.rank])
        state.iteration, state.last_metric = saved["iteration"], saved["last_metric"]
        state.result.best_metric, state.result.best_iteration = saved["best_metric"], saved["best_iteration"]
        state.result.history = state.run.truncate_log(saved["iteration"])
        return saved["elapsed_seconds"]


class StateCheckpoints(Callback):
    """A resumable state checkpoint every `every` iterations (0: never) and whenever the run stops
    (end, time limit, target, signal), keeping the newest `keep`."""

    def __init__(self, every: int, keep: int):
        self.every, self.keep = every, keep

    def on_step(self, state: LoopState) -> None:
        if state.stopping or (self.every and state.iteration % self.every == 0):
            state.saved_state = self._save(state)

    def _save(self, state: LoopState) -> Path:
        rng = state.distributed.gather_objects(capture_rng())  # every rank's generators, for an exact resume
        path = state_path(state.run.checkpoints, state.iteration)
        if state.main:
            result = state.result
            saved = {"iteration": state.iteration, "method": state.method.state_dict(), "rng": rng,
                     "last_metric": state.last_metric, "best_metric": result.best_metric,
                     "best_iteration": result.best_iteration, "elapsed_seconds": time.perf_counter() - state.start}
            save_checkpoint({"state": saved, **(state.extra_checkpoint or {})}, path)
            prune_states(state.run.checkpoints, self.keep)
        state.distributed.barrier()
        return path


class DivergenceCheck(Callback):
    """Any rank's NaN/Inf loss stops every rank, with one message naming the last good checkpoint."""

    def on_step(self, state: LoopState) -> None:
        distributed = state.distributed
        diverged = distributed.first_non_finite(state.losses)
        if diverged is None:
            return
        name, value, rank = diverged
        kept, last = list_states(state.run.checkpoints), state.run.checkpoints / "last.pt"
        kept_text = (f"the last good checkpoint is {kept[0][1]}" if kept
                     else f"the last good checkpoint is {last}" if last.exists()
                     else "no checkpoint was written yet")
        kept_text = distributed.gather_objects(kept_text)[0]  # rank 0 wrote the checkpoints
        where = f" on rank {rank}" if distributed.enabled else ""
        raise DfadError(f"{name} became {value} at iteration {state.iteration}{where}: the run diverged; lower the "
                        f"learning rates and retry ({kept_text})")


class SynchronisedBuffers(Callback):
    """Under torchrun each rank's BatchNorm statistics drift: keep them identical."""

    def on_step(self, state: LoopState) -> None:
        for model in state.method.models.values():
            state.distributed.average_buffers(model)


class StopDecision(Callback):
    """Whether this iteration validates and whether the run ends on time: one decision for all
    ranks (any rank's signal, rank 0's clock)."""

    def __init__(self, val_every: int, time_limit_seconds: Optional[float]):
        self.val_every, self.time_limit_seconds = val_every, time_limit_seconds

    def on_step(self, state: LoopState) -> None:
        limit, stop = self.time_limit_seconds, state.stop
        state.out_of_time = limit is not None and time.perf_counter() - state.session_start > limit
        if state.distributed.enabled:
            signalled, state.out_of_time = state.distributed.any_flag(stop.received is not None,
                                                                      state.out_of_time and state.main)
            if signalled and stop.received is None:
                stop.received = "SIGTERM"
        state.validating = bool(state.iteration % self.val_every == 0 or state.iteration == state.iterations
                                or state.out_of_time or stop.received)


class Validation(Callback):
    """On rank 0 at each validation: the metric, the method's label-free health (with the health
    monitor's warnings and notes printed as they start), a sample grid, last.pt and, on a new best
    metric, best.pt. The other ranks wait for it."""

    def __init__(self, validate: Optional[Callable[[nn.Module], float]],
                 sample_stats: Optional[tuple[Sequence[float], Sequence[float]]]):
        self.validate, self.sample_stats = validate, sample_stats
        self.monitor = HealthMonitor()

    def on_start(self, state: LoopState) -> None:
        for past in state.result.history:  # a resumed run remembers its best agreement
            self.monitor.remember(past)

    def on_step(self, state: LoopState) -> None:
        if state.validating and state.main:
            self._validate(state)
        if state.validating:
            state.distributed.barrier()

    def _validate(self, state: LoopState) -> None:
        method, record, result = state.method, state.record, state.result
        if self.validate is not None:
            state.last_metric = record[state.metric_name] = self.validate(method.evaluated)
            for name, model in method.also_evaluated().items():  # reported beside it, e.g. an averaged student
                record[f"{name}_{state.metric_name}"] = self.validate(model)
        health = method.health()
        if health:
            record.update({k: v for k, v in health.items() if k in HEALTH_FIELDS})
            state.last_agreement = health["agreement"]
            for kind, message in self.monitor.new_warnings(health, state.iteration).items():
                result.health_warnings.append(message)
                tqdm.write(f"dfad: {'note' if kind in NOTES else 'warning'}: {message}")
        samples = method.sample_images()
        if samples is not None and self.sample_stats is not None:
            state.run.save_samples(samples, state.iteration, *self.sample_stats)
        metric = state.last_metric
        if metric is not None and (result.best_metric is None or metric > result.best_metric):
            result.best_metric, result.best_iteration = metric, state.iteration
            save_checkpoint(state.checkpoint(metric), state.run.checkpoints / "best.pt")
        save_checkpoint(state.checkpoint(metric), state.run.checkpoints / "last.pt")


class MetricsLog(Callback):
    """metrics.jsonl (and the history behind curve.csv): every validation and every `every` iterations."""

    def __init__(self, every: int):
        self.every = every

    def on_step(self, state: LoopState) -> None:
        if state.main and (state.validating or state.iteration % self.every == 0):
            state.record["elapsed_seconds"] = round(time.perf_counter() - state.start, 3)
            state.run.log(state.record)
            state.result.history.append(state.record)

    def on_end(self, state: LoopState) -> None:
        if state.main:
            state.run.write_curve(state.result.history, state.metric_name)


class UserHooks(Callback):
    """The caller's hooks, on rank 0, each given its own copy of the record."""

    def __init__(self, on_iteration: Optional[Callable[[dict], Any]], on_validation: Optional[Callable[[dict], Any]]):
        self.on_iteration, self.on_validation = on_iteration, on_validation

    def on_step(self, state: LoopState) -> None:
        if state.main and self.on_iteration is not None:
            self.on_iteration(dict(state.record))
        if state.main and state.validating and self.on_validation is not None:
            self.on_validation(dict(state.record))


class ProgressBar(Callback):
    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc, self.bar = enabled, desc, None

    def on_start(self, state: LoopState) -> None:
        self.bar = tqdm(total=state.iterations, initial=state.iteration, desc=self.desc, dynamic_ncols=True,
                        disable=not (self.enabled and state.main), mininterval=1.0, unit="it")

    def on_step(self, state: LoopState) -> None:
        metric = "-" if state.last_metric is None else f"{state.last_metric:.4f}"
        agreement = {"agreement": f"{state.last_agreement:.2f}"} if state.last_agreement is not None else {}
        self.bar.update(1)
        self.bar.set_postfix({**{k: f"{v:.4f}" for k, v in state.losses.items()}, state.metric_name: metric,
                              **agreement}, refresh=False)

    def on_end(self, state: LoopState) -> None:
        self.bar.close()


class TargetStop(Callback):
    """Ends the run at the first validation whose metric reaches `target` (rank 0's decision)."""

    def __init__(self, target: Optional[float]):
        self.target = target

    def on_step(self, state: LoopState) -> None:
        reached = (self.target is not None and state.metric_name in state.record
                   and state.last_metric >= self.target)
        if state.distributed.enabled and state.validating:
            (reached,) = state.distributed.main_flags(reached)
        state.reached = reached


class Interruption(Callback):
    """On SIGINT / SIGTERM (after the state checkpoint): the curve so far, and an exit naming how to resume."""

    def __init__(self, resume_hint: str, progress: ProgressBar, log: MetricsLog):
        self.resume_hint, self.progress, self.log = resume_hint, progress, log

    def on_step(self, state: LoopState) -> None:
        received = state.stop.received
        if not received:
            return
        self.progress.on_end(state)
        self.log.on_end(state)
        raise Interrupted(f"stopped by {received} after iteration {state.iteration}; state saved to "
                          f"{state.saved_state}; to continue, {self.resume_hint}", 130 if received == "SIGINT" else 143)


class Outcome(Callback):
    """The result: rank 0's view of the metrics on every rank, and best.pt = the final models when
    there is no metric to rank by."""

    def __init__(self, validate: Optional[Callable[[nn.Module], float]]):
        self.validate = validate

    def on_end(self, state: LoopState) -> None:
        result = state.result
        if state.distributed.enabled:
            state.last_metric, result.best_metric, result.best_iteration = state.distributed.gather_objects(
                (state.last_metric, result.best_metric, result.best_iteration))[0]
        result.final_metric, result.iterations = state.last_metric, state.iteration
        result.wall_seconds = time.perf_counter() - state.start
        if self.validate is None and state.main:
            save_checkpoint(state.checkpoint(None), state.run.checkpoints / "best.pt")


def standard_callbacks(*, val_every: int, log_every: int, validate, sample_stats, progress: bool, desc: str,
                       time_limit_seconds, stop_at_metric, state_every: int, keep_states: int, resume: bool,
                       resume_hint: str, on_iteration, on_validation) -> list[Callback]:
    """fit's callbacks, in the order they run."""
    bar, log = ProgressBar(progress, desc), MetricsLog(log_every)
    return [Resume(resume), DivergenceCheck(), SynchronisedBuffers(), StopDecision(val_every, time_limit_seconds),
            Validation(validate, sample_stats), log, UserHooks(on_iteration, on_validation), bar,
            TargetStop(stop_at_metric), StateCheckpoints(state_every, keep_states),
            Interruption(resume_hint, bar, log), Outcome(validate)]
