"""The generator's loss option of DFAD (`method_args.generator_loss`): `task` is the paper's L1
bound on the logits; `probability_l1` and `kl` are bounded discrepancies between class
distributions, which a teacher's logit scale cannot inflate."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from dfad.errors import DfadError
from dfad.methods.adversarial import GENERATOR_LOSSES
from dfad.tasks import Classification, Segmentation

sys.path.insert(0, str(Path(__file__).parent))
from test_update_rule import make_method  # noqa: E402

probability_l1 = GENERATOR_LOSSES.get("probability_l1")


def test_probability_l1_is_bounded_and_blind_to_the_logit_scale_once_classes_are_decided():
    student, teacher = torch.tensor([[10.0, 0.0, 0.0]]), torch.tensor([[0.0, 10.0, 0.0]])
    opposite = probability_l1(student, teacher, task=Classification()).item()
    # Two confident, different answers: close to the bound of -2, and no lower at 10x the logits.
    assert -2.0 <= opposite < -1.99
    assert probability_l1(10 * student, 10 * teacher, task=Classification()).item() == pytest.approx(opposite, abs=1e-3)
    # The paper's bound grows with the logits' size for the same disagreement.
    task_bound = GENERATOR_LOSSES.get("task")
    assert task_bound(10 * student, 10 * teacher, task=Classification()).item() == pytest.approx(
        10 * task_bound(student, teacher, task=Classification()).item(), rel=1e-6)
    assert probability_l1(teacher + 5.0, teacher, task=Classification()).item() == pytest.approx(0, abs=1e-6)


def test_probability_l1_per_pixel_is_the_mean_over_pixels():
    torch.manual_seed(0)
    s_map, t_map = torch.randn(2, 5, 3, 3), torch.randn(2, 5, 3, 3)
    flat = lambda m: m.permute(0, 2, 3, 1).reshape(-1, 5)  # noqa: E731
    expected = -(flat(s_map).softmax(1) - flat(t_map).softmax(1)).abs().sum(1).mean().item()
    assert probability_l1(s_map, t_map, task=Segmentation()).item() == pytest.approx(expected, rel=1e-5)


def test_dfad_generation_step_maximises_the_chosen_loss_and_the_student_keeps_l1():
    method = make_method(0, generator_loss="probability_l1")
    z = torch.randn(8, 16)
    method.noise = lambda *count: z
    def measured():
        with torch.no_grad():
            x = method.generator(z)
            s, t = method.student(x), method.teacher(x)
            return (s - t).abs().mean().item(), probability_l1(s, t, task=method.task).item()

    l1, _ = measured()
    assert method.imitation_step() == pytest.approx(l1, rel=1e-5)  # the student's loss is still L1
    _, expected = measured()
    assert method.generation_step() == pytest.approx(expected, rel=1e-5)


def test_unknown_generator_loss_is_refused_with_the_fix():
    with pytest.raises(DfadError, match="unknown generator loss 'probability_l2' \\(did you mean 'probability_l1'"):
        make_method(0, generator_loss="probability_l2")


def test_methods_without_dfads_generator_take_its_default_generator_loss_and_refuse_another():
    from dfad.methods.dfad import refuse_generator_options

    refuse_generator_options("random", {"generator_loss": "task", "class_balance": 0.0})  # DFAD's defaults: no-ops
    with pytest.raises(DfadError, match="generator_loss is an option of method 'dfad', not of 'random'"):
        refuse_generator_options("random", {"generator_loss": "kl"})
