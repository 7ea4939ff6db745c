"""DFAD's generator options beyond the paper: the class-balance term and the BatchNorm-statistics
prior. Off (0), the method is the paper's (the update-rule and resume tests guard that); on, each
term must move the generator the way it claims, and refuse what it cannot serve."""
from __future__ import annotations

import copy
import math
import warnings
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dfad.errors import DfadError
from dfad.methods.priors import BatchNormStatistics, class_balance_loss, confidence_loss, total_variation_loss

sys.path.insert(0, str(Path(__file__).parent))
from test_update_rule import bn_teacher, make_method  # noqa: E402


def test_class_balance_loss_is_minus_log_c_when_balanced_and_zero_for_one_class():
    balanced = torch.eye(4).repeat(2, 1) * 50  # each class confidently, equally often
    assert class_balance_loss(balanced).item() == pytest.approx(-math.log(4), abs=1e-4)
    one_class = torch.zeros(8, 4)
    one_class[:, 2] = 50
    assert class_balance_loss(one_class).item() == pytest.approx(0.0, abs=1e-4)


def test_class_balance_loss_counts_pixels_for_segmentation():
    logits = torch.zeros(2, 3, 4, 4)
    logits[:, 0, :2] = 50  # top half class 0, bottom half class 1
    logits[:, 1, 2:] = 50
    assert class_balance_loss(logits).item() == pytest.approx(-math.log(2), abs=1e-4)


def _batch_entropy(method, z) -> float:
    """Entropy of the teacher's softmax averaged over G(z), computed here, not by the code tested."""
    with torch.no_grad():
        method.generator.train()
        mean = torch.softmax(method.teacher(method.generator(z)), 1).mean(0)
        return float(-(mean * mean.log()).sum())


def _student_is_teacher(method):
    # |S(x) - T(x)| = 0 everywhere: the adversarial term's gradient is 0, only the options act.
    method.student = copy.deepcopy(method.teacher)
    return method


def one_class_teacher() -> nn.Module:
    """A linear classifier on 8x8 images that favours class 0 on a fresh generator's samples."""
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        teacher[1].weight.mul_(3)
        teacher[1].bias[0] += 5.0
    return teacher


def test_class_balance_alone_raises_the_entropy_of_the_teachers_classes():
    torch.manual_seed(0)
    z = torch.randn(64, 16)
    on = _student_is_teacher(make_method(0, generator_lr=0.05, teacher=one_class_teacher, class_balance=1.0))
    off = _student_is_teacher(make_method(0, generator_lr=0.05, teacher=one_class_teacher))
    before = _batch_entropy(on, z)
    for _ in range(15):
        on.generation_step()
        off.generation_step()
    assert "generator_class_balance" in on.added_generator_terms
    # Measured: 1.14 -> 2.18 nats over 15 steps (log 10 = 2.30); unchanged without the term.
    assert _batch_entropy(on, z) > before + 0.5
    assert _batch_entropy(off, z) == pytest.approx(before, abs=1e-6)


def test_confidence_loss_is_the_cross_entropy_against_the_teachers_own_argmax():
    sure = torch.tensor([[20.0, 0.0, 0.0], [0.0, 0.0, 20.0]])
    assert confidence_loss(sure).item() == pytest.approx(0.0, abs=1e-6)
    assert confidence_loss(torch.zeros(2, 3)).item() == pytest.approx(math.log(3), abs=1e-6)
    assert confidence_loss(torch.zeros(2, 3, 4, 4)).item() == pytest.approx(math.log(3), abs=1e-6)  # per pixel


def test_confidence_alone_makes_the_teacher_surer_of_the_generated_samples():
    torch.manual_seed(0)
    z = torch.randn(64, 16)
    on = _student_is_teacher(make_method(0, generator_lr=0.05, teacher=one_class_teacher, confidence=1.0))

    def teacher_confidence_loss():
        with torch.no_grad():
            on.generator.train()
            return confidence_loss(on.teacher(on.generator(z))).item()

    before = teacher_confidence_loss()
    for _ in range(10):
        on.generation_step()
    assert "generator_confidence" in on.added_generator_terms
    # Measured: 0.30 -> 0.005 over 10 steps.
    assert teacher_confidence_loss() < 0.2 * before


def test_total_variation_is_zero_for_flat_images_and_counts_both_directions():
    assert total_variation_loss(torch.full((2, 3, 5, 5), 0.7)).item() == 0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., 1::2] = 2.0  # vertical stripes: every horizontal neighbour differs by 2, no vertical one
    assert total_variation_loss(stripes).item() == pytest.approx(2.0)
    assert total_variation_loss(stripes.transpose(2, 3)).item() == pytest.approx(2.0)


def _sample_total_variation(method, z) -> float:
    with torch.no_grad():
        method.generator.train()
        return total_variation_loss(method.generator(z)).item()


def test_total_variation_alone_makes_the_generators_samples_smoother():
    torch.manual_seed(0)
    z = torch.randn(64, 16)
    on = _student_is_teacher(make_method(0, generator_lr=0.05, total_variation=1.0))
    off = _student_is_teacher(make_method(0, generator_lr=0.05))
    before = _sample_total_variation(on, z)
    for _ in range(10):
        on.generation_step()
        off.generation_step()
    assert "generator_total_variation" in on.added_generator_terms
    # Measured: 1.42 -> 0.07 over 10 steps; unchanged without the term.
    assert _sample_total_variation(on, z) < 0.5 * before
    assert _sample_total_variation(off, z) == pytest.approx(before, abs=1e-6)


def test_total_variation_floor_leaves_samples_smoother_than_it_alone():
    torch.manual_seed(0)
    z = torch.randn(64, 16)
    above = _student_is_teacher(make_method(0, generator_lr=0.05, total_variation=1.0, total_variation_floor=10.0))
    before = _sample_total_variation(above, z)
    partway = _student_is_teacher(make_method(0, generator_lr=0.05, total_variation=1.0,
                                              total_variation_floor=before / 2))
    for _ in range(10):
        above.generation_step()
        partway.generation_step()
    # Samples already below the floor: nothing to minimise, the generator does not move.
    assert above.added_generator_terms["generator_total_variation"] == 0
    assert _sample_total_variation(above, z) == pytest.approx(before, abs=1e-6)
    # Measured: 1.42 -> 0.47 with the floor at 0.71 (Adam overshoots it a little); without a
    # floor 1.42 -> 0.07.
    after = _sample_total_variation(partway, z)
    assert 0.3 < after < before


def _bn_distance(method, z) -> float:
    stats = BatchNormStatistics(method.teacher)
    with torch.no_grad():
        method.generator.train()
        stats.start()
        method.teacher(method.generator(z))
        return stats.stop().item()


def test_bn_prior_alone_brings_batch_statistics_towards_the_teachers():
    torch.manual_seed(0)
    teacher = bn_teacher()
    with torch.no_grad():  # running statistics unlike a fresh generator's batches
        teacher.features[1].running_mean.fill_(0.5)
        teacher.features[1].running_var.fill_(0.2)
    z = torch.randn(64, 16)
    method = _student_is_teacher(make_method(0, generator_lr=0.05, teacher=lambda: copy.deepcopy(teacher),
                                             bn_prior=1.0))
    before = _bn_distance(method, z)
    for _ in range(15):
        method.generation_step()
    assert method.added_generator_terms["generator_bn_prior"] > 0
    assert _bn_distance(method, z) < 0.8 * before  # measured: 2.03 -> 1.40


def test_bn_statistics_are_zero_when_the_batch_matches_the_running_statistics_and_see_variance():
    layer = nn.BatchNorm2d(3).eval()
    x = torch.randn(16, 3, 5, 5)
    layer.running_mean.copy_(x.mean((0, 2, 3)))
    layer.running_var.copy_(x.var((0, 2, 3), unbiased=False))
    stats = BatchNormStatistics(nn.Sequential(layer))
    stats.start()
    layer(x)
    assert stats.stop().item() == pytest.approx(0.0, abs=1e-5)
    layer(x + 1)  # not collecting: no term recorded
    assert stats.terms == []
    mean = layer.running_mean.view(1, -1, 1, 1)
    stats.start()
    layer((x - mean) * 2 + mean)  # the same means, four times the variances
    assert stats.stop().item() == pytest.approx(float(torch.linalg.vector_norm(3 * layer.running_var)), rel=1e-4)


def test_bn_statistics_read_an_exported_teachers_batchnorm_ops_as_its_modules(tmp_path):
    """A .pt2 teacher (FrozenGraph) has no BatchNorm modules; identity modules put before its
    BatchNorm ops give the same distance as hooks on the original layers, outputs unchanged."""
    from dfad.model_files import FrozenGraph, load_model_file

    torch.manual_seed(0)
    teacher = bn_teacher().eval()
    with torch.no_grad():
        teacher.features[1].running_mean.fill_(0.5)
        teacher.features[1].running_var.fill_(0.2)
    x = torch.randn(16, 1, 8, 8)
    path = tmp_path / "teacher.pt2"
    torch.export.save(torch.export.export(teacher, (x,)), path)
    exported = load_model_file(path)
    assert isinstance(exported, FrozenGraph)
    with torch.no_grad():
        before = exported(x)
        module_stats, graph_stats = BatchNormStatistics(teacher), BatchNormStatistics(exported)
        for model, stats in ((teacher, module_stats), (exported, graph_stats)):
            stats.start()
            model(x)
        expected, measured = module_stats.stop().item(), graph_stats.stop().item()
        assert len(graph_stats.layers) == len(module_stats.layers) >= 1
        assert measured == pytest.approx(expected, rel=1e-5) and expected > 0.1
        assert torch.equal(exported(x), before)


def test_bn_prior_refuses_a_teacher_without_visible_batchnorm():
    with pytest.raises(DfadError, match="bn_prior needs a teacher with BatchNorm layers"):
        make_method(0, bn_prior=1.0)  # the default convnet teacher has no BatchNorm


def test_optional_bn_prior_runs_without_the_term_and_says_so_when_the_teacher_has_no_batchnorm():
    with pytest.warns(UserWarning, match="bn_prior is off for this run"):
        method = make_method(0, bn_prior=1.0, bn_prior_optional=True)  # convnet teacher: no BatchNorm
    method.generation_step()
    assert method.bn_statistics is None and "generator_bn_prior" not in method.added_generator_terms
    with_batchnorm = make_method(0, teacher=bn_teacher, bn_prior=1.0, bn_prior_optional=True)
    with_batchnorm.generation_step()
    assert with_batchnorm.added_generator_terms["generator_bn_prior"] > 0


def test_fallback_total_variation_replaces_an_unreachable_bn_prior_only():
    with pytest.warns(UserWarning, match=r"total-variation image prior \(weight 0.5\) takes its place"):
        without_batchnorm = make_method(0, bn_prior=1.0, bn_prior_optional=True, fallback_total_variation=0.5)
    without_batchnorm.generation_step()
    assert without_batchnorm.total_variation == 0.5
    assert set(without_batchnorm.added_generator_terms) == {"generator_total_variation"}
    with_batchnorm = make_method(0, teacher=bn_teacher, bn_prior=1.0, bn_prior_optional=True,
                                 fallback_total_variation=0.5)
    with_batchnorm.generation_step()
    assert with_batchnorm.total_variation == 0
    assert set(with_batchnorm.added_generator_terms) == {"generator_bn_prior"}


@pytest.mark.parametrize("weight", [-1.0, "high"])
def test_option_weights_must_be_non_negative_numbers(weight):
    with pytest.raises(DfadError, match="class_balance must be a number >= 0"):
        make_method(0, class_balance=weight)


def test_methods_that_do_not_train_dfads_generator_refuse_its_options():
    from dfad.methods import METHODS

    method = make_method(0)
    parts = dict(teacher=method.teacher, student=method.student, generator=method.generator, task=method.task,
                 student_optimizer=method.optimizers["student"], generator_optimizer=method.optimizers["generator"],
                 student_scheduler=method.schedulers["student"], generator_scheduler=method.schedulers["generator"],
                 batch_size=8, nz=16)
    for name in ("random", "dafl"):
        for option in ("class_balance", "total_variation", "total_variation_floor"):
            with pytest.raises(DfadError, match=f"{option} is an option of method 'dfad', not of '{name}'"):
                METHODS.build(name, **{option: 1.0}, **parts)
    # DAFL trains its student with its own KL: DFAD's imitation options would be ignored.
    for option, value in (("imitation_loss", "kl"), ("temperature", 4.0)):
        with pytest.raises(DfadError, match="imitation_loss and temperature are options of method 'dfad'"):
            METHODS.build("dafl", **{option: value}, **parts)
    # RANDOM's student does imitate; its generator is never trained, so no warning about the generator's loss.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        METHODS.build("random", imitation_loss="kl", temperature=4.0, **parts)
