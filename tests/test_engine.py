"""The shared loop and checkpoints: validation cadence, time limits, divergence, safe loading."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dfad.engine import RunDir, build_model_from_entry, fit, load_checkpoint, model_entry, save_checkpoint
from dfad.engine.checkpoint import pick_model_entry
from dfad.errors import DfadError
from dfad.methods import Method
from dfad.models import build_model


class ScriptedMethod(Method):
    """Returns losses from a list: lets the loop be tested without training anything."""

    def __init__(self, losses):
        self.model = build_model("convnet", num_classes=10, in_channels=1, width=2)
        self.losses = iter(losses)
        self.evaluated = self.model
        self.models = {"student": self.model}
        opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.optimizers = {"student": opt}
        self.schedulers = {"student": torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)}

    def step(self):
        self.optimizers["student"].step()  # no gradients: changes nothing, keeps the scheduler order valid
        return {"student_loss": next(self.losses)}


def test_fit_validates_on_cadence_and_keeps_the_best(tmp_path):
    scores = iter([0.5, 0.9, 0.7])
    result = fit(ScriptedMethod([1.0] * 6), RunDir(tmp_path), iterations=6, val_every=2, log_every=1,
                 validate=lambda m: next(scores), progress=False)
    assert (result.best_metric, result.best_iteration, result.final_metric) == (0.9, 4, 0.7)
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["iteration"] == 4
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 6
    assert [r["lr_student"] for r in result.history] == [0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]


def test_divergence_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    method = ScriptedMethod([1.0, 1.0, math.nan])
    with pytest.raises(DfadError, match=r"student_loss became nan at iteration 3: the run diverged; lower the "
                                        r"learning rates .*last good checkpoint is"):
        fit(method, RunDir(tmp_path), iterations=5, val_every=2, validate=lambda m: 0.5, progress=False)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 2


def test_time_limit_ends_the_run_validated_and_checkpointed(tmp_path):
    result = fit(ScriptedMethod([1.0] * 100), RunDir(tmp_path), iterations=100, val_every=50,
                 validate=lambda m: 0.5, progress=False, time_limit_seconds=0.0)
    assert result.stopped_by_time_limit and result.iterations == 1
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 1


def test_stop_at_metric_ends_the_run_at_the_first_validation_reaching_it(tmp_path):
    scores = iter([0.5, 0.97, 0.99, 0.995])
    result = fit(ScriptedMethod([1.0] * 8), RunDir(tmp_path), iterations=8, val_every=2, validate=lambda m: next(scores),
                 progress=False, stop_at_metric=0.98)
    assert result.stopped_at_target and result.iterations == 6 and result.final_metric == 0.99


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    model = build_model("lenet5_half", num_classes=10, in_channels=1)
    save_checkpoint({"models": {"student": model_entry(model)}}, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt.tmp").exists()
    payload = load_checkpoint(tmp_path / "c.pt")
    rebuilt = build_model_from_entry(pick_model_entry(payload, "student", "c.pt"), "c.pt")
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(rebuilt(x), model(x))


def test_checkpoint_of_another_architecture_is_explained(tmp_path):
    model = build_model("lenet5", num_classes=10, in_channels=1)
    entry = model_entry(model)
    entry["arch"] = "lenet5_half"
    save_checkpoint({"models": {"teacher": entry}}, tmp_path / "c.pt")
    with pytest.raises(DfadError, match=r"does not fit architecture 'lenet5_half'.*shape mismatch: "
                                        r"features.0.weight \(6, 1, 5, 5\) vs \(3, 1, 5, 5\)"):
        build_model_from_entry(load_checkpoint(tmp_path / "c.pt")["models"]["teacher"], tmp_path / "c.pt")


def test_checkpoints_needing_code_are_refused(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module, not a state dict
    with pytest.raises(DfadError, match=r"needs arbitrary code to load \(torch.nn.modules.linear.Linear\) and was refused"):
        load_checkpoint(tmp_path / "module.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(DfadError, match="is not a dfad checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


@pytest.mark.parametrize("name, expected", [
    ("none", [1.0, 1.0, 1.0, 1.0]),
    ("step", [1.0, 1.0, 0.5, 0.5]),           # step_size 2: iterations 3-4 run at the decayed rate
    ("multistep", [1.0, 1.0, 1.0, 0.5]),      # milestones [3]: decay once 3 iterations are done
    ("cosine", [1.0, 0.8535534, 0.5, 0.1464466]),
])
def test_schedules_count_iterations(name, expected):
    from dfad.config import OptimizerConfig, ScheduleConfig
    from dfad.engine.optim import build_optimizer, build_scheduler

    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerConfig("sgd", lr=1.0))
    sched = build_scheduler(opt, ScheduleConfig(name, step_size=2, milestones=[3], gamma=0.5), total_iterations=4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(expected)


def _parameters_after_steps(make_optimizer, steps: int = 10) -> torch.Tensor:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n)) for n in (300, 7, 1024)]
    optimizer = make_optimizer(params)
    grads = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=grads)
        optimizer.step()
    return torch.cat([p.detach() for p in params])


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimisers_take_multi_tensor_steps_with_the_loops_exact_values(name):
    """Every registered optimiser updates its parameters with one multi-tensor (foreach) step, which
    on CPU is bit-identical to PyTorch's default per-parameter loop there (and faster: the
    generator's Adam step 30.9 -> 16.3 ms, benchmarks/optimizer_step.py)."""
    from dfad.config import OptimizerConfig
    from dfad.engine.optim import OPTIMIZERS, build_optimizer

    assert set(OPTIMIZERS.names()) == {"sgd", "adam"}, "a new optimiser: add it here"
    cfg = OptimizerConfig(name, lr=0.01, momentum=0.9, weight_decay=5e-4)
    ours = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    assert ours.defaults["foreach"] is True
    settings_as_a_loop = {**ours.defaults, "foreach": False}
    assert torch.equal(_parameters_after_steps(lambda ps: build_optimizer(ps, cfg)),
                       _parameters_after_steps(lambda ps: type(ours)(ps, **settings_as_a_loop)))
