"""The one training loop: `method.step()` once per iteration, then the callbacks (engine/callbacks.py).

Every method (DFAD, supervised teacher training, and the baselines) runs through `fit`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from torch import nn

from .callbacks import Callback, FitResult, LoopState, standard_callbacks
from .distributed import SINGLE, Distributed
from .run_dir import RunDir
from .signals import StopRequests

if TYPE_CHECKING:  # the methods package imports the engine
    from ..methods import Method

__all__ = ["Callback", "FitResult", "LoopState", "fit"]


def fit(method: Method, run: RunDir, *, iterations: int, val_every: int, log_every: int = 10,
        validate: Optional[Callable[[nn.Module], float]] = None, metric_name: str = "accuracy",
        extra_checkpoint: Optional[dict[str, Any]] = None, sample_stats: Optional[tuple[Sequence[float], Sequence[float]]] = None,
        progress: bool = True, desc: str = "train", time_limit_seconds: Optional[float] = None,
        stop_at_metric: Optional[float] = None, state_every: int = 0, keep_states: int = 2,
        resume: bool = False, resume_hint: str = "rerun the same command",
        distributed: Distributed = SINGLE, on_iteration: Optional[Callable[[dict], Any]] = None,
        on_validation: Optional[Callable[[dict], Any]] = None) -> FitResult:
    """Run `method.step()` until `iterations`, with the standard callbacks (engine/callbacks.py):
    validation every `val_every` iterations and at the end (metric, label-free health, sample grid,
    last.pt / best.pt), resumable state every `state_every` iterations and when stopping (with
    `resume`, continue from the newest one), a stop at `time_limit_seconds` or at `stop_at_metric`,
    SIGINT / SIGTERM, NaN/Inf checks, metrics log, progress bar and the user's hooks (rank 0):
    `on_iteration(record)` after every iteration, `on_validation(record)` after each validation."""
    state = LoopState(method, run, iterations, metric_name, distributed, extra_checkpoint)
    callbacks = standard_callbacks(
        val_every=val_every, log_every=log_every, validate=validate, sample_stats=sample_stats, progress=progress,
        desc=desc, time_limit_seconds=time_limit_seconds, stop_at_metric=stop_at_metric, state_every=state_every,
        keep_states=keep_states, resume=resume, resume_hint=resume_hint, on_iteration=on_iteration,
        on_validation=on_validation)
    for callback in callbacks:
        callback.on_start(state)
    with StopRequests() as state.stop:
        while state.iteration < iterations:
            state.iteration += 1
            state.losses = method.step()
            method.step_schedulers()
            state.record = {"iteration": state.iteration, **state.losses, **method.learning_rates()}
            for callback in callbacks:
                callback.on_step(state)
            if state.out_of_time:
                state.result.stopped_by_time_limit = True
                break
            if state.reached:
                state.result.stopped_at_target = True
                break
    for callback in callbacks:
        callback.on_end(state)
    return state.result
