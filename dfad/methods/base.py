"""What the training loop needs from a method: one `step()` per iteration, plus what to save."""
from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Mapping, Optional

import torch
from torch import nn

from ..engine.distributed import SINGLE, Distributed
from ..engine.precision import autocast_factory, grad_scaler, resolve_precision
from ..errors import DfadError
from ..registry import Registry, register_options_check, suggest

METHODS = Registry("method", config_keys=("distill.method",))

# The parts a distillation method may build itself from (it names them in `Method.parts` and asks
# the run for them in `from_config`), and the config keys each part reads: the keys of the parts
# a method does not name are not part of its run's identity.
PART_CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "student": ("distill.student",),
    "student_optimizer": ("distill.student_optimizer", "distill.student_schedule"),
    "generator": ("distill.generator", "distill.nz", "distill.compile"),
    "generator_optimizer": ("distill.generator_optimizer", "distill.generator_schedule",
                            "distill.generation_student_bn"),
    "real_images": (),  # which dataset: method_args.data, read by the method itself
}

# Constructor arguments that the run fills in itself (parts, run facts, compiled views), whatever the
# method: never options in `distill.method_args`.
RUN_ARGUMENTS = frozenset({
    "teacher", "student", "generator", "task", "model", "loader", "images", "optimizer", "scheduler",
    "student_optimizer", "student_scheduler", "generator_optimizer", "generator_scheduler",
    "batch_size", "nz", "imitation_steps", "device", "precision", "grid_size", "grid_seed",
    "generator_forward", "teacher_forward", "generation_student_bn", "input_shape",
})


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: the teacher is a fixed function."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Method:
    """Base class. Subclasses set `evaluated` (the model validated), `models` (what checkpoints hold),
    `optimizers` and `schedulers`, call `setup_precision`, and implement `step` with `update`."""

    evaluated: nn.Module
    models: dict[str, nn.Module]
    distributed: Distributed = SINGLE  # set by the runner under torchrun
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    # Set by setup_precision; methods without optimisers of their own (e.g. test doubles) have none.
    scalers: Mapping[str, torch.amp.GradScaler] = MappingProxyType({})
    # What the method builds itself from (keys of PART_CONFIG_KEYS); `from_config` may ask the run
    # for these parts and no others.
    parts: tuple[str, ...] = ()
    # Config keys this method never reads (with everything under them), derived from `parts`: a
    # finished run differing only there is still the same run.
    unused_config_keys: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        unknown = set(cls.parts) - set(PART_CONFIG_KEYS)
        if unknown:
            raise TypeError(f"{cls.__name__}.parts names unknown parts {sorted(unknown)}; "
                            f"known: {sorted(PART_CONFIG_KEYS)}")
        cls.unused_config_keys = tuple(key for part, keys in PART_CONFIG_KEYS.items() if part not in cls.parts
                                       for key in keys)

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """The names `distill.method_args` may set: the constructor's keyword arguments (and, where
        it passes `**kwargs` on, its parent classes'), less those every run fills in itself."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if klass is object or "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
            names |= {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
            if not any(p.kind is p.VAR_KEYWORD for p in parameters):
                break
        return tuple(sorted(names - RUN_ARGUMENTS - {"self"}))

    @classmethod
    def from_config(cls, parts) -> "Method":
        """The method for one distillation run, built from `parts` (`dfad.assembly.RunParts`: the
        config, the frozen teacher, the task and data facts, and the parts named in `cls.parts`)."""
        raise NotImplementedError(f"method {cls.__name__} does not build itself from a config")

    def setup_precision(self, precision: str, device: torch.device) -> None:
        """`self.autocast()` contexts and one gradient scaler per optimiser (pass-throughs unless fp16);
        `self.precision` is the precision used (`auto` resolved for this device)."""
        self.precision = resolve_precision(precision, device)
        self.autocast = autocast_factory(self.precision, device)
        self.scalers = {name: grad_scaler(self.precision, device) for name in self.optimizers}

    def update(self, name: str, loss: torch.Tensor) -> float:
        """One optimiser step of model `name` on `loss` (scaled for fp16); under torchrun only this
        model's gradients are averaged across ranks. Returns the loss value."""
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        self.distributed.average_gradients(self.models[name].parameters())
        scale = scaler.get_scale() if scaler.is_enabled() else None
        scaler.step(optimizer)
        scaler.update()
        # The scaler skips the optimiser step (and lowers its scale) when it finds inf/NaN gradients.
        skipped = scale is not None and scaler.get_scale() < scale
        steps, skips = self._iteration_steps.get(name, (0, 0))
        self._iteration_steps[name] = (steps + 1, skips + skipped)
        return loss.item()

    @property
    def _iteration_steps(self) -> dict[str, tuple[int, int]]:
        """Optimiser steps taken and skipped per model since the schedules last advanced."""
        if "_steps_since_schedule" not in self.__dict__:
            self._steps_since_schedule: dict[str, tuple[int, int]] = {}
        return self._steps_since_schedule

    def step_schedulers(self) -> None:
        """Advance every learning-rate schedule by one iteration, except a model's whose optimiser
        steps in this iteration were all skipped by the fp16 gradient scaler: a skipped step leaves
        the weights unchanged, so it does not count towards the schedule either (PyTorch's own
        schedulers would advance regardless). Under torchrun every rank sees the same (averaged)
        gradients, so every rank makes the same decision."""
        for name, scheduler in self.schedulers.items():
            steps, skips = self._iteration_steps.get(name, (0, 0))
            if not steps or skips < steps:
                scheduler.step()
        self._iteration_steps.clear()

    def step(self) -> dict[str, float]:
        raise NotImplementedError

    def also_evaluated(self) -> dict[str, nn.Module]:
        """Models validated beside `evaluated` at each validation, by name (e.g. an averaged
        student): their metric is logged as `<name>_<metric>`, never used to pick the best."""
        return {}

    def health(self) -> dict[str, float]:
        """Label-free diagnostics for each validation (dfad.health), or {} when the method has none."""
        return {}

    def sample_images(self) -> Optional[torch.Tensor]:
        """Images to show in a grid at each validation (normalised input space), or None."""
        return None

    def state_dict(self) -> dict:
        """Everything that changes during training (models, optimisers, schedulers, gradient
        scalers, plus `extra_state`), for exact resumption."""
        return {"models": {k: m.state_dict() for k, m in self.models.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
                "extra": self.extra_state()}

    def load_state_dict(self, state: dict) -> None:
        for group in ("models", "optimizers", "schedulers"):
            own = getattr(self, group)
            if set(state[group]) != set(own):
                raise ValueError(f"saved {group} {sorted(state[group])} do not match this method's {sorted(own)}")
            for key, obj in own.items():
                obj.load_state_dict(state[group][key])
        for key, saved in state.get("scalers", {}).items():
            if saved:  # a disabled scaler saves an empty dict
                self.scalers[key].load_state_dict(saved)
        self.load_extra_state(state.get("extra", {}))

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}


def check_method_options(method: str, key: str, options: dict) -> None:
    """A one-line config error for a `distill.method_args` name the method does not take (a typo
    would otherwise fail deep in the run's assembly, after the run folder exists)."""
    known = METHODS.get(method).options()
    if not known:  # a method without options never reads them (a preset's may stay in the config)
        return
    for name in options:
        if name not in known:
            raise DfadError(f"config: {key}.{name} is not an option of method '{method}'{suggest(name, known)}; "
                            f"its options: {', '.join(known)}")


register_options_check("distill.method", check_method_options)
