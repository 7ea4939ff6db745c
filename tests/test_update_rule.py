"""The DFAD update rule: what each stage must do to the discrepancy and to each network."""
from __future__ import annotations

import copy

import pytest
import torch

from dfad.engine.optim import build_optimizer, build_scheduler
from dfad.config import OptimizerConfig, ScheduleConfig
from dfad.methods import DFAD
from dfad.methods.dfad import preserved_buffers
from dfad.models import build_model
from dfad.tasks import Classification

NZ, BATCH = 16, 32


def make_method(seed: int = 0, student_lr: float = 0.05, generator_lr: float = 1e-3, k: int = 5) -> DFAD:
    torch.manual_seed(seed)
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=8)
    student = build_model("convnet", num_classes=10, in_channels=1, width=4)
    generator = build_model("generator_a", nz=NZ, ngf=8, channels=1, image_size=8)
    s_opt = build_optimizer(student.parameters(), OptimizerConfig("sgd", lr=student_lr, momentum=0.9))
    g_opt = build_optimizer(generator.parameters(), OptimizerConfig("adam", lr=generator_lr))
    return DFAD(teacher=teacher, student=student, generator=generator, task=Classification(),
                student_optimizer=s_opt, generator_optimizer=g_opt,
                student_scheduler=build_scheduler(s_opt, ScheduleConfig(), 10),
                generator_scheduler=build_scheduler(g_opt, ScheduleConfig(), 10),
                batch_size=BATCH, nz=NZ, imitation_steps=k, grid_size=4)


def discrepancy_on(method: DFAD, z: torch.Tensor) -> float:
    """L1 between student and teacher on G(z), in the modes training uses, changing nothing."""
    with torch.no_grad(), preserved_buffers(method.generator):
        method.generator.train()
        method.student.train()
        x = method.generator(z)
        return method.task.discrepancy(method.student(x), method.teacher(x)).item()


@pytest.mark.parametrize("seed", range(5))
def test_generation_step_raises_discrepancy_on_its_batch(seed):
    method = make_method(seed)
    torch.manual_seed(100 + seed)
    z = method.noise()
    before = discrepancy_on(method, z)
    torch.manual_seed(100 + seed)  # the step draws the same z
    loss = method.generation_step()
    assert loss == pytest.approx(-before, rel=1e-5)
    after = discrepancy_on(method, z)
    assert after > before


@pytest.mark.parametrize("seed", range(5))
def test_imitation_step_lowers_discrepancy_on_its_batch(seed):
    method = make_method(seed, student_lr=0.01)
    torch.manual_seed(200 + seed)
    z = method.noise()
    before = discrepancy_on(method, z)
    torch.manual_seed(200 + seed)
    loss = method.imitation_step()
    assert loss == pytest.approx(before, rel=1e-5)
    assert discrepancy_on(method, z) < before


def test_generation_step_updates_only_the_generator():
    method = make_method()
    method.imitation_step()  # leaves student gradients in place
    student_before = copy.deepcopy(method.student.state_dict())
    grads_before = [p.grad.clone() for p in method.student.parameters()]
    generator_before = copy.deepcopy(method.generator.state_dict())
    method.generation_step()
    for key, value in method.student.state_dict().items():
        assert torch.equal(value, student_before[key]), key
    # No useless backward into the student's weights during the generator's step.
    for p, g in zip(method.student.parameters(), grads_before):
        assert torch.equal(p.grad, g)
    assert all(p.requires_grad for p in method.student.parameters())
    changed = [k for k, v in method.generator.state_dict().items() if not torch.equal(v, generator_before[k])]
    assert "project.weight" in changed


def test_imitation_step_updates_only_the_student():
    method = make_method()
    generator_params = copy.deepcopy({n: p for n, p in method.generator.named_parameters()})
    student_before = copy.deepcopy(method.student.state_dict())
    method.imitation_step()
    for name, p in method.generator.named_parameters():
        assert torch.equal(p, generator_params[name])
        assert p.grad is None
    assert any(not torch.equal(v, student_before[k]) for k, v in method.student.state_dict().items())


def test_teacher_is_frozen_and_bit_identical_after_training():
    method = make_method()
    teacher_before = copy.deepcopy(method.teacher.state_dict())
    for _ in range(3):
        losses = method.step()
    assert set(losses) == {"student_loss", "generator_loss"}
    assert not method.teacher.training
    assert all(not p.requires_grad and p.grad is None for p in method.teacher.parameters())
    for key, value in method.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_each_step_draws_a_fresh_noise_batch():
    method = make_method(k=5)
    seen = []
    method.generator.register_forward_hook(lambda m, inp, out: seen.append((inp[0].clone(), out.shape, out.dtype)))
    method.step()
    assert len(seen) == 6  # 5 imitation steps + 1 generation step
    for z, shape, dtype in seen:
        assert z.shape == (BATCH, NZ)
        assert shape == (BATCH, 1, 8, 8) and dtype == torch.float32
    noises = [z for z, _, _ in seen]
    assert all(not torch.equal(a, b) for i, a in enumerate(noises) for b in noises[i + 1:])


def test_losses_are_l1_and_minus_l1():
    task = Classification()
    s, t = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 0.0]])
    assert task.discrepancy(s, t).item() == pytest.approx(1.5)
    assert task.generator_loss(s, t).item() == pytest.approx(-1.5)


def test_sample_images_leave_training_state_untouched():
    method = make_method()
    buffers = [b.clone() for b in method.generator.buffers()]
    rng = torch.get_rng_state()
    images = method.sample_images()
    assert images.shape == (4, 1, 8, 8)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(buffers, method.generator.buffers()))
