"""The engine's fast paths compute what the plain formulation of DFAD computes."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from dfad.engine.compile import cpu_compiler_available

from conftest import PROJECT_ROOT


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Adam turns float-rounding noise in near-zero gradients (e.g. conv biases that BatchNorm cancels)
# into full +-lr steps, so the comparison drives the generator with SGD: same update rule, and
# differences stay at rounding level.
SGD_GENERATOR = ["distill.generator_optimizer={name: sgd, lr: 0.01, momentum: 0.9}"]
# channels_last against NCHW changes the student's float rounding, and the L1 gradient's sign turns
# a rounding flip at a near-zero residual into a step of 2/N. Measured after 3 iterations, largest
# difference: student 2.4e-6 on AMD EPYC family 26 and earlier CPUs, 1.25e-4 on family 25 model 17
# (Zen 4, where oneDNN picks other kernels); generator <= 2.4e-6 on both. One imitation step fewer
# per iteration moves the student by more than 1e-2 (tests/mutations.py).
STUDENT_TOLERANCE = {"rtol": 1e-3, "atol": 3e-4}
GENERATOR_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["eager", "compiled"])
def test_engine_iterations_equal_the_plain_loop(compiled):
    """Eager: channels_last + sub-pixel generator. Compiled: torch.compile + per-tap generator."""
    throughput = load_benchmark("throughput")
    if compiled and not cpu_compiler_available():
        pytest.skip("torch.compile on CPU needs a C++ compiler (g++/clang++)")
    cfg, method = throughput.build("mnist", batch_size=16, seed=3,
                                   overrides=[*SGD_GENERATOR, f"distill.compile={compiled}"])
    assert (method.generate is not method.generator) == compiled
    assert (method.teacher_forward is not method.teacher) == compiled  # imitation steps' teacher, compiled too
    plain = throughput.make_plain(method, cfg)
    teacher, student, generator, s_opt, g_opt = plain
    dc = cfg.distill

    torch.manual_seed(11)
    for _ in range(3):
        method.step()
    torch.manual_seed(11)
    for _ in range(3):
        throughput.plain_iteration(teacher, student, generator, s_opt, g_opt, dc.batch_size, dc.nz,
                                   dc.imitation_steps)

    for ours, ref, tolerance in ((method.student, student, STUDENT_TOLERANCE),
                                 (method.generator, generator, GENERATOR_TOLERANCE)):
        for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(a, b, **tolerance, msg=name)
    initial = throughput.build("mnist", 16, 3, overrides=SGD_GENERATOR)[1]
    for trained, start in ((method.student, initial.student), (method.generator, initial.generator)):
        # The comparison is between trained networks, not two copies of the initial ones.
        # Measured: student moves 0.079, generator 6.7e-4 (max per parameter), vs differences <= 2.4e-6.
        assert any((a - b).abs().max() > 1e-4 for a, b in zip(trained.parameters(), start.parameters()))


def test_segmentation_iterations_equal_the_plain_loop():
    """camvid_cpu's networks, with the segmentation generator loss -log(L1 + 1), exactly. In NCHW:
    channels_last changes float rounding (and which elements the ASPP dropout drops), and the
    student's train-mode BatchNorm over a few 4 x 4 feature maps plus the sign of the L1 gradient
    amplify that within one iteration (measured at batch 8, dropout off: weights 0.13 apart where
    they moved 0.31), beyond any tolerance that would still catch a wrong loss. Layout equality is
    checked on mnist above."""
    throughput = load_benchmark("throughput")
    cfg, method = throughput.build("camvid_cpu", batch_size=4, seed=5,
                                   overrides=[*SGD_GENERATOR, "distill.imitation_steps=2", "distill.channels_last=false"])
    plain = throughput.make_plain(method, cfg)
    teacher, student, generator, s_opt, g_opt = plain
    dc = cfg.distill
    torch.manual_seed(13)
    method.step()
    torch.manual_seed(13)
    throughput.plain_iteration(teacher, student, generator, s_opt, g_opt, dc.batch_size, dc.nz, dc.imitation_steps,
                               segmentation=True)
    for ours, ref in ((method.student, student), (method.generator, generator)):
        for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_puts_every_network_in_nhwc(channels_last):
    throughput = load_benchmark("throughput")
    _, method = throughput.build("cifar10_cpu", batch_size=4, overrides=[f"distill.channels_last={channels_last}"])
    for name, model in (("teacher", method.teacher), ("student", method.student), ("generator", method.generator)):
        weights = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]  # 1x1: both layouts at once
        assert weights, name
        assert all(p.is_contiguous(memory_format=torch.channels_last) == channels_last for p in weights), name


def test_compile_without_a_cpu_compiler_warns_and_runs_eagerly(monkeypatch):
    from dfad.engine import compile as compile_module
    from dfad.models import build_model

    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    generator = build_model("generator_a", nz=8, ngf=4)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        forward = compile_module.compile_generator(generator, torch.device("cpu"))
    assert forward is generator


def test_bf16_on_cpu_keeps_the_generator_eager_and_sub_pixel(recwarn):
    """Compiled per-tap up-convolutions gain nothing from bf16 on CPU and the eager sub-pixel ones
    do, so `distill.compile` under bf16 leaves the generator eager."""
    from dfad.engine import compile as compile_module
    from dfad.models import build_model
    from dfad.models.generators import NearestUpConv2d

    generator = build_model("generator_a", nz=8, ngf=4)
    assert compile_module.compile_generator(generator, torch.device("cpu"), "bf16") is generator
    formulations = {m.formulation for m in generator.modules() if isinstance(m, NearestUpConv2d)}
    assert formulations == {"subpixel"}


@pytest.mark.parametrize("amx, precision, expected", [(True, "bf16", "plain"), (False, "bf16", "taps"),
                                                      (True, "fp32", "taps")],
                         ids=["bf16-amx", "bf16-without-amx", "fp32-amx"])
def test_image_layer_is_an_ordinary_convolution_under_bf16_on_cpus_with_amx(amx, precision, expected, monkeypatch):
    """Under bf16 on a CPU with AMX, a built run's generator (and its momentum copy) computes its
    image layer as an ordinary convolution (0.721 -> 0.625 s per cifar10_cpu iteration there); the
    per-tap form stays everywhere else, measured or not."""
    from dfad.data import DatasetInfo
    from dfad.engine import compile as compile_module
    from dfad.engine import precision as precision_module
    from dfad.models.generators import FewOutputConv2d
    from dfad.config import load_config
    from dfad.models import build_model
    from dfad.runs import build_distillation
    from dfad.tasks import Classification

    monkeypatch.setattr(compile_module, "_cpu_has_amx", lambda: amx)
    monkeypatch.setattr(precision_module, "_cpu_has_native_bf16", lambda: True)
    cfg = load_config("digits", [f"precision={precision}", "distill.generator.args.ngf=4",
                                 "distill.method_args={generator_ema: 0.9}"])
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4)
    info = DatasetInfo("digits", 10, 1, 8, (0.5,), (0.5,))
    method = build_distillation(cfg, teacher, info, Classification(), torch.device("cpu"))
    for generator in (method.generator, method.generator_average.average):
        assert {m.formulation for m in generator.modules() if isinstance(m, FewOutputConv2d)} == {expected}


@pytest.mark.parametrize("view, compiled", [(lambda g: g, False), (lambda g: (lambda z: g(z)), True)],
                         ids=["generator-left-eager", "generator-compiled"])
def test_generator_average_is_compiled_exactly_when_the_generator_is(view, compiled, monkeypatch):
    """The momentum generator makes every imitation sample: compiled with the generator (its
    per-tap up-convolutions are slow eager), eager where the compile rule left the generator eager
    (bf16 on CPU, where the eager sub-pixel form is the fast one)."""
    import dfad.methods.dfad as dfad_module
    from test_update_rule import make_method

    compiled_modules = []

    def recording_compile(module, device, *precision):
        compiled_modules.append(module)
        return lambda z: module(z)

    monkeypatch.setattr(dfad_module, "compile_generator", recording_compile)
    method = make_method(0, generator_view=view, generator_ema=0.5)
    average = method.generator_average.average
    assert compiled_modules == ([average] if compiled else [])
    assert (method.generate_average is average) != compiled


def test_imitation_targets_come_from_the_teacher_forward_it_is_given():
    """`distill.compile` hands imitation steps a compiled view of the teacher: what that callable
    returns is what the student learns, and it is called once per imitation step."""
    from test_update_rule import make_method

    calls = []

    def zero_teacher(images):
        calls.append(images.shape[0])
        return torch.zeros(images.shape[0], 10)

    method = make_method(0, teacher_forward=zero_teacher)
    z = torch.randn(method.batch_size, method.nz)
    method.noise = lambda *count: z
    with torch.no_grad():
        expected = method.student(method.generator(z)).abs().mean().item()  # L1 to all-zero targets
    assert method.imitation_step() == pytest.approx(expected, rel=1e-5)
    assert calls == [method.batch_size]


def test_frozen_compile_leaves_torchscript_and_compilerless_cpus_eager(monkeypatch):
    from dfad.engine import compile as compile_module
    from dfad.models import build_model

    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4).eval()
    scripted = torch.jit.script(teacher)
    assert compile_module.compile_frozen(scripted, torch.device("cpu")) is scripted
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert compile_module.compile_frozen(teacher, torch.device("cpu")) is teacher
