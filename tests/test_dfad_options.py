"""DFAD's options beyond the paper on what the student learns from (issue 17): a momentum
generator, sample replay, augmented imitation and an averaged student. Each changes what it is
documented to change, off changes nothing, and a run with all of them resumes exactly."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dfad.config import load_config
from dfad.data import DatasetInfo
from dfad.errors import DfadError
from dfad.methods.sample_augment import flip_and_shift
from dfad.models import build_model
from dfad.runs import build_distillation, distill
from dfad.tasks import Classification, Segmentation

sys.path.insert(0, str(Path(__file__).parent))
from test_resume import assert_same_parameters, crash_at, final_student, tiny_config  # noqa: E402

INFO = DatasetInfo("none", 10, 1, 16, (0.5,), (0.5,))


def make(method_args: str = "{}", batch_size: int = 16, *overrides: str):
    torch.manual_seed(0)
    teacher = build_model("convnet_bn", num_classes=10, in_channels=1, width=4).eval()
    cfg = load_config("own_model", ["distill.generator.args={ngf: 4}", "data.channels=1", "data.image_size=16",
                                    f"distill.batch_size={batch_size}", "distill.nz=8",
                                    f"distill.method_args={method_args}", *overrides])
    torch.manual_seed(1)
    return build_distillation(cfg, teacher, INFO, Classification(), "cpu")


def input_sizes(model: torch.nn.Module) -> list[int]:
    """Batch sizes of the inputs `model` is called with, from now on."""
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    return sizes


def test_options_off_change_nothing():
    plain, off = make(), make("{generator_ema: 0, student_ema: 0, replay_size: 0, augment: false}")
    for seed in range(2):
        torch.manual_seed(seed)
        plain_losses = plain.step()
        torch.manual_seed(seed)
        assert off.step() == plain_losses
    assert_same_parameters(plain.student.state_dict(), off.student.state_dict())
    assert sorted(off.models) == ["generator", "student"] and off.also_evaluated() == {}


def test_the_momentum_generator_makes_the_imitation_samples_and_follows_the_live_one():
    method = make("{generator_ema: 0.5}")
    live, average = method.generator, method.generator_average.average
    live_calls, average_calls = input_sizes(live), input_sizes(average)
    before = [p.detach().clone() for p in average.parameters()]
    method.step()
    assert average_calls == [16] * 5 and live_calls == [16]  # 5 imitation batches; 1 generation step
    for old, now, source in zip(before, average.parameters(), live.parameters()):
        torch.testing.assert_close(now, 0.5 * old + 0.5 * source)  # one EMA update per iteration
    assert "generator_ema" in method.models  # checkpointed and rebuilt like the others


def test_a_compiled_run_makes_its_imitation_samples_with_a_compiled_momentum_generator():
    """The average inherits the generator's per-tap up-convolutions, which only pay when compiled
    (eager, they made a cifar10_cpu iteration 1.29x slower: benchmarks/option_cost.py)."""
    method = make("{generator_ema: 0.5}", 16, "distill.compile=true")
    average = method.generator_average.average
    assert getattr(method.generate_average, "_orig_mod", None) is average
    calls = []
    compiled = method.generate_average
    method.generate_average = lambda z: calls.append(len(z)) or compiled(z)
    method.imitation_step()
    assert calls == [16]
    z = torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled(z), average(z), atol=1e-4, rtol=1e-4)


def test_replay_mixes_stored_samples_with_their_teacher_outputs_into_imitation():
    method = make("{replay_size: 40, replay_share: 0.25}")
    teacher_sizes, student_sizes = input_sizes(method.teacher), input_sizes(method.student)
    method.imitation_step()
    method.imitation_step()
    # First batch: all 16 generated; then 12 generated + 4 replayed, which skip the teacher.
    assert teacher_sizes == [16, 12] and student_sizes == [16, 16]
    assert method.replay.size == 28
    images, outputs = method.replay.sample(8, torch.float32)
    with torch.no_grad():
        recomputed = method.teacher(images)
    # The stored outputs are the teacher's on the stored samples (images kept in bf16).
    torch.testing.assert_close(outputs, recomputed, atol=0.05, rtol=0.05)


def test_augmentation_flips_half_and_shifts_within_the_bound_differentiably():
    images = torch.randn(200, 1, 6, 6)
    torch.manual_seed(0)
    only_flipped = flip_and_shift(images, 0)
    flipped = [bool((o == x.flip(-1)).all()) for o, x in zip(only_flipped, images)]
    assert all(f or bool((o == x).all()) for f, o, x in zip(flipped, only_flipped, images))
    assert 70 < sum(flipped) < 130
    source = images.clone().requires_grad_()
    shifted = flip_and_shift(source, 2)
    offsets = set()
    for out, image in zip(shifted.detach(), images):
        views = [(dy, dx) for view in (image, image.flip(-1)) for dy in range(5) for dx in range(5)
                 if torch.equal(out, F.pad(view, (2,) * 4)[:, dy:dy + 6, dx:dx + 6])]
        assert views, "not a flip and shift of at most 2 pixels"
        offsets.add(views[0])
    assert len(offsets) > 15  # of 25: offsets vary from sample to sample
    shifted.sum().backward()
    assert source.grad.abs().sum() > 0


def test_augmentation_reaches_both_steps(monkeypatch):
    import dfad.methods.dfad as dfad_module

    calls = []
    monkeypatch.setattr(dfad_module, "flip_and_shift",
                        lambda images, shift: calls.append((images.requires_grad, shift)) or images.flip(-1))
    make("{augment: true}").step()
    # Default shift: 1/8 of the 16-pixel side; the generation step's samples carry gradients.
    assert calls == [(False, 2)] * 5 + [(True, 2)]


def test_the_averaged_student_is_reported_beside_the_raw_one(digits_teacher, tmp_path):
    summary = distill(tiny_config(digits_teacher, ["distill.iterations=20", "distill.method_args={student_ema: 0.9}"]),
                      tmp_path / "run", progress=False)
    assert 0 <= summary["student_ema_accuracy"] <= 1
    assert summary["student_ema_accuracy"] != summary["student_accuracy"]


@pytest.mark.parametrize("arguments", ["{generator_ema: 1.5}", "{replay_share: 1.0}", "{replay_size: -4}",
                                       "{student_ema: true}"])
def test_option_values_are_checked(arguments):
    with pytest.raises(DfadError, match="distill.method_args"):
        make(arguments)


def test_dafl_refuses_the_imitation_options():
    from dfad.methods import METHODS

    method = make()
    with pytest.raises(DfadError, match="replay_size"):
        METHODS.build("dafl", teacher=method.teacher, student=method.student, generator=method.generator,
                      task=method.task, student_optimizer=method.optimizers["student"],
                      generator_optimizer=method.optimizers["generator"],
                      student_scheduler=method.schedulers["student"],
                      generator_scheduler=method.schedulers["generator"], batch_size=8, nz=8, replay_size=16)


@pytest.mark.slow
def test_a_run_with_every_option_resumes_bit_identically(digits_teacher, tmp_path, monkeypatch):
    options = ["distill.method_args={generator_ema: 0.9, student_ema: 0.9, replay_size: 64, augment: true}"]
    distill(tiny_config(digits_teacher, options), tmp_path / "straight", progress=False)
    restore = crash_at(monkeypatch, 25)
    with pytest.raises(RuntimeError, match="simulated crash"):
        distill(tiny_config(digits_teacher, options), tmp_path / "run", progress=False)
    restore()
    distill(tiny_config(digits_teacher, options), tmp_path / "run", progress=False)
    assert_same_parameters(final_student(tmp_path / "run"), final_student(tmp_path / "straight"))


@pytest.mark.parametrize("name, arch, channels, task", [("table_dfad_plus_cifar10_cpu", "cifar_resnet20", 3, Classification()),
                                                        ("table_dfad_plus_mnist", "lenet5", 1, Classification()),
                                                        ("table_camvid_cpu", "deeplabv3_resnet18", 3, Segmentation())],
                         ids=["cifar10_cpu", "mnist", "camvid_cpu"])
def test_every_row_of_the_side_by_side_tables_builds_its_method(name, arch, channels, task):
    """The options tables' method_args build their method (config validation checks only their
    names, not their values or the task); the CamVid table's DFAD rows too, with a segmentation task
    (its rows with other methods are the paper's baselines)."""
    from dfad.reproduce import _row_config, load_table

    table = load_table(name)
    teacher = build_model(arch, num_classes=10, in_channels=channels).eval()
    info = DatasetInfo("x", 10, channels, 32, (0.5,) * channels, (0.5,) * channels)
    built = set()
    for row in table.rows[1:]:
        cfg, _ = _row_config(table, row, seed=0, budget=7, data_root=None, teacher_path=None)
        if cfg.distill.method != "dfad":
            continue
        method = build_distillation(cfg, teacher, info, task, "cpu")
        built.add(type(method).__name__)
    assert built == {"DFAD"}
