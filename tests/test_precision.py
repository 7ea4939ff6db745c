"""--precision and --compile: a few real iterations each on CPU."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dfad.config import load_config
from dfad.engine.compile import cpu_compiler_available
from dfad.errors import DfadError
from dfad.runs import distill

FEW = ["distill.iterations=6", "distill.val_every=3", "distill.batch_size=32", "distill.generator.args.ngf=8",
       "distill.sample_grid_size=4"]


def run_few(digits_teacher, out, extra=()):
    cfg = load_config("digits", [*FEW, *extra])
    cfg.teacher.checkpoint = str(digits_teacher)
    return distill(cfg, out, progress=False)


def test_bf16_autocast_runs_and_keeps_fp32_weights(digits_teacher, tmp_path):
    summary = run_few(digits_teacher, tmp_path / "bf16", ["precision=bf16"])
    assert summary["iterations"] == 6 and 0.0 <= summary["student_accuracy"] <= 1.0
    from dfad.engine import read_metrics

    losses = [r["student_loss"] for r in read_metrics(tmp_path / "bf16") if "student_loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    payload = torch.load(tmp_path / "bf16" / "checkpoints" / "last.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in payload["models"]["student"]["state_dict"].values()
               if t.is_floating_point())


def test_bf16_changes_the_arithmetic(digits_teacher, tmp_path):
    """bf16 really is used: the same seed gives a (slightly) different first loss than fp32."""
    from dfad.engine import read_metrics

    run_few(digits_teacher, tmp_path / "fp32", ["distill.log_every=1"])
    run_few(digits_teacher, tmp_path / "bf16", ["precision=bf16", "distill.log_every=1"])
    fp32 = read_metrics(tmp_path / "fp32")[0]["student_loss"]
    bf16 = read_metrics(tmp_path / "bf16")[0]["student_loss"]
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.05 * abs(fp32)


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "no-native-bf16"])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(native, monkeypatch, digits_teacher,
                                                                          tmp_path):
    from dfad.engine import precision

    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: native)
    expected = "bf16" if native else "fp32"
    assert precision.resolve_precision("auto", torch.device("cpu")) == expected
    summary = run_few(digits_teacher, tmp_path / "auto", ["precision=auto", "distill.log_every=1"])
    assert summary["precision"] == expected  # what was used, not the word "auto"
    from dfad.engine import read_metrics

    # The arithmetic is the resolved precision's: the first loss equals that of an explicit run.
    run_few(digits_teacher, tmp_path / "explicit", [f"precision={expected}", "distill.log_every=1"])
    assert read_metrics(tmp_path / "auto")[0]["student_loss"] == read_metrics(tmp_path / "explicit")[0]["student_loss"]


def test_bf16_without_native_support_is_warned_once_per_process(monkeypatch):
    from dfad.engine import precision

    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(precision, "_warned", set())
    with pytest.warns(UserWarning, match="no native bf16") as caught:
        for _ in range(3):  # the method, the evaluator and the compile rule each resolve it
            assert precision.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert len([w for w in caught if "no native bf16" in str(w.message)]) == 1


def test_summary_records_the_threads_the_run_used(digits_teacher, tmp_path):
    """Not the process's default: a run given threads=1 in a process set to 2 records 1 (the
    CamVid rows of 2026-12-03 recorded 2 for a 1-thread run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        summary = run_few(digits_teacher, tmp_path / "one", ["threads=1"])
    finally:
        torch.set_num_threads(before)
    assert summary["machine"]["torch_threads"] == 1


def test_fp16_on_cpu_is_refused_with_the_fix(digits_teacher, tmp_path):
    with pytest.raises(DfadError, match="fp16 needs a CUDA device.*bf16 or fp32"):
        run_few(digits_teacher, tmp_path / "fp16", ["precision=fp16"])
    assert not (tmp_path / "fp16").exists()


@pytest.mark.skipif(not cpu_compiler_available(), reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.slow  # compiles the generator
def test_compiled_generator_runs_end_to_end(digits_teacher, tmp_path):
    summary = run_few(digits_teacher, tmp_path / "compiled", ["distill.compile=true"])
    assert summary["iterations"] == 6 and 0.0 <= summary["student_accuracy"] <= 1.0


@pytest.mark.parametrize("formulation", ["plain", "subpixel"])
def test_upconv_under_bf16_autocast_takes_low_precision_inputs(formulation):
    """On CUDA, autocast hands layers bf16 activations while weights stay fp32 (the sub-pixel
    path's backward once failed there with a dtype mismatch). Gradients come back in each
    tensor's own dtype and agree with fp32 to bf16 accuracy."""
    from dfad.models.generators import NearestUpConv2d

    torch.manual_seed(0)
    layer = NearestUpConv2d(8, 4)
    layer.formulation = formulation
    x32 = torch.randn(2, 8, 6, 6)
    reference = layer(x32).square().mean()
    ref_grad = torch.autograd.grad(reference, layer.weight)[0]
    x = x32.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)

    class ConvolutionDtypes(TorchDispatchMode):  # cuDNN refuses mixed dtypes; CPU kernels tolerate them
        seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution_backward.default:
                self.seen.append((args[0].dtype, args[1].dtype, args[2].dtype))
            return func(*args, **(kwargs or {}))

    with ConvolutionDtypes():
        grad_w, grad_x = torch.autograd.grad(out.float().square().mean(), [layer.weight, x])
    assert ConvolutionDtypes.seen and all(len(set(d)) == 1 for d in ConvolutionDtypes.seen), ConvolutionDtypes.seen
    assert grad_w.dtype == torch.float32 and grad_x.dtype == torch.bfloat16
    assert torch.allclose(grad_w, ref_grad, rtol=0.05, atol=0.02 * ref_grad.abs().max().item())


def _tiny_dfad_with_enabled_scalers():
    """A DFAD method whose gradient scalers are switched on (as under fp16), on CPU: a scaler skips
    a step whenever it finds inf/NaN gradients, whatever the dtype."""
    from dfad.config import OptimizerConfig, ScheduleConfig
    from dfad.engine.optim import build_optimizer, build_scheduler
    from dfad.methods import DFAD
    from dfad.models import build_model
    from dfad.tasks import Classification

    torch.manual_seed(0)
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4)
    student = build_model("convnet", num_classes=10, in_channels=1, width=2)
    generator = build_model("generator_a", nz=8, ngf=4, channels=1, image_size=8)
    s_opt = build_optimizer(student.parameters(), OptimizerConfig("sgd", lr=0.1))
    g_opt = build_optimizer(generator.parameters(), OptimizerConfig("adam", lr=1e-3))
    halve_every_iteration = ScheduleConfig("step", step_size=1, gamma=0.5)
    method = DFAD(teacher=teacher, student=student, generator=generator, task=Classification(),
                  student_optimizer=s_opt, generator_optimizer=g_opt,
                  student_scheduler=build_scheduler(s_opt, halve_every_iteration, 10),
                  generator_scheduler=build_scheduler(g_opt, halve_every_iteration, 10),
                  batch_size=8, nz=8, imitation_steps=2, grid_size=4)
    method.scalers = {name: torch.amp.GradScaler("cpu", init_scale=2.0**8) for name in method.optimizers}
    return method


def test_a_step_the_scaler_skips_does_not_advance_that_models_schedule():
    method = _tiny_dfad_with_enabled_scalers()
    # Infinite gradients for the generator only: its scaler skips its step, the student's does not.
    hook = method.generator.project.weight.register_hook(lambda grad: grad * float("inf"))
    generator_before = {k: v.detach().clone() for k, v in method.generator.named_parameters()}
    method.step()
    method.step_schedulers()
    assert method.scalers["generator"].get_scale() < 2.0**8  # the skip really happened
    assert all(torch.equal(p, generator_before[k]) for k, p in method.generator.named_parameters())
    assert method.schedulers["generator"].last_epoch == 0 and method.learning_rates()["lr_generator"] == 1e-3
    assert method.schedulers["student"].last_epoch == 1 and method.learning_rates()["lr_student"] == 0.05
    hook.remove()
    method.step()  # finite gradients again: both schedules advance
    method.step_schedulers()
    assert method.schedulers["generator"].last_epoch == 1 and method.schedulers["student"].last_epoch == 2
