"""Distilling a user's own model: every --teacher form, data-free runs, and the Python API."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import dfad
from dfad.cli import main
from dfad.engine import load_checkpoint, read_metrics
from dfad.errors import DfadError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from tiny_models import TinyClassifier  # noqa: E402

# A data-free CLI run at tiny sizes: the teacher's input shape instead of a dataset.
TINY = ["--input-shape", "3,16,16", "--student", "cifar_resnet8", "distill.iterations=3", "distill.batch_size=8",
        "distill.val_every=3", "distill.generator.args.ngf=8", "distill.sample_grid_size=4", "distill.nz=16"]


def teacher_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyClassifier(num_classes=7).eval()


def run_cli(tmp_path, teacher_file, *extra) -> dict:
    out = tmp_path / "run"
    assert main(["distill", "--teacher", str(teacher_file), "--out", str(out), "--quiet", "--force",
                 *TINY, *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def assert_distilled(summary: dict, classes: int = 7) -> None:
    assert summary["iterations"] == 3 and summary["input"]["num_classes"] == classes
    assert summary["input"]["input_shape"] == [3, 16, 16] and summary["student_accuracy"] is None


@pytest.fixture
def saved(tmp_path):
    """The same tiny teacher saved in every form; returns {form: path}."""
    model = teacher_module()
    x = torch.randn(2, 3, 16, 16)
    paths = {"state_dict": tmp_path / "sd.pt", "export": tmp_path / "t.pt2", "torchscript": tmp_path / "t.ts",
             "pickle": tmp_path / "whole.pt", "fixed_export": tmp_path / "fixed.pt2"}
    torch.save({"model": model.state_dict(), "epoch": 3}, paths["state_dict"])
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(paths["export"]))
    torch.export.save(torch.export.export(model, (x,)), str(paths["fixed_export"]))
    torch.jit.save(torch.jit.script(model), str(paths["torchscript"]))
    torch.save(model, paths["pickle"])
    return paths


@pytest.mark.parametrize("form", ["export", "torchscript"])
def test_exported_and_torchscript_teachers_distill_with_gradients_into_the_generator(tmp_path, saved, form):
    summary = run_cli(tmp_path, saved[form])
    assert_distilled(summary)
    assert summary["teacher_model"].startswith("exported program" if form == "export" else "TorchScript")
    # The generator learnt through the teacher: its parameters moved from their initial values.
    generator_losses = [r["generator_loss"] for r in read_metrics(tmp_path / "run") if "generator_loss" in r]
    assert generator_losses and all(v < 0 for v in generator_losses)
    moved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["models"]["generator"]["state_dict"]
    torch.manual_seed(0)
    fresh = dfad.models.build_model("generator_a", nz=16, channels=3, image_size=16, ngf=8).state_dict()
    assert any(not torch.equal(moved[k], fresh[k]) for k in fresh if fresh[k].is_floating_point())


def test_data_free_cli_run_without_a_config_takes_five_imitation_steps_per_generator_step(tmp_path, monkeypatch):
    """Without --config every setting is a DistillConfig default (the shipped YAMLs state k
    themselves): the paper's k = 5 must be the default."""
    from dfad.engine import model_entry, save_checkpoint
    from dfad.methods.dfad import DFAD

    teacher = tmp_path / "teacher.pt"
    torch.manual_seed(0)
    save_checkpoint({"models": {"teacher": model_entry(dfad.models.build_model("convnet", num_classes=7,
                                                                               in_channels=3, width=4))}}, teacher)
    calls = []

    def counted(name):
        original = getattr(DFAD, name)

        def step(self):
            calls.append(name)
            return original(self)
        return step

    for name in ("imitation_step", "generation_step"):
        monkeypatch.setattr(DFAD, name, counted(name))
    assert_distilled(run_cli(tmp_path, teacher))
    assert calls == (["imitation_step"] * 5 + ["generation_step"]) * 3


def test_state_dict_teacher_is_built_from_the_named_architecture(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), path)
    summary = run_cli(tmp_path, path, "--teacher-arch", "torchvision:resnet18")
    assert_distilled(summary, classes=5)
    assert summary["teacher_model"] == "torchvision:resnet18"


def test_state_dict_of_another_architecture_names_the_mismatch(tmp_path, saved, capsys):
    assert main(["distill", "--teacher", str(saved["state_dict"]), "--teacher-arch", "torchvision:resnet18",
                 "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "does not fit architecture 'torchvision:resnet18'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_pickled_module_needs_trust(tmp_path, saved, capsys):
    assert main(["distill", "--teacher", str(saved["pickle"]), "--out", str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "holds pickled code" in err and "--trust-checkpoint" in err and not (tmp_path / "run").exists()
    assert_distilled(run_cli(tmp_path, saved["pickle"], "--trust-checkpoint"))


def test_fixed_batch_export_and_wrong_shapes_are_refused_with_the_fix(tmp_path, saved, capsys):
    assert main(["distill", "--teacher", str(saved["fixed_export"]), "--out", str(tmp_path / "a"), *TINY]) == 2
    assert "dynamic batch" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(saved["export"]), "--out", str(tmp_path / "b"), *TINY,
                 "--num-classes", "9"]) == 2
    assert "has 7 outputs but the data has 9 classes" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(saved["export"]), "--out", str(tmp_path / "c"), *TINY,
                 "--input-mean", "0.5,0.5", "--input-std", "0.2,0.2,0.2"]) == 2
    assert "one per channel" in capsys.readouterr().err


def test_python_api_distills_a_torchvision_teacher_into_a_registry_student(tmp_path):
    torch.manual_seed(0)
    teacher = torchvision.models.resnet18(num_classes=10).eval()
    # Before distilling, buffers included: a teacher run in train mode would move its BatchNorm
    # running statistics without any optimiser touching its weights.
    teacher_before = copy.deepcopy(teacher.state_dict())
    images = torch.randn(6, 3, 16, 16)
    with torch.no_grad():
        labels = teacher(images).argmax(1)
    val = [(images, labels)]  # labelled with the teacher's own predictions: its accuracy on them is 1
    iterations, validations = [], []
    result = dfad.distill(teacher, "cifar_resnet8", input_shape=(3, 16, 16), iterations=4, batch_size=8, nz=16,
                          generator_args={"ngf": 8}, val_loader=val, val_every=2, out=tmp_path / "api",
                          progress=False, on_iteration=lambda r: iterations.append(r["iteration"]),
                          on_validation=lambda r: validations.append((r["iteration"], r["accuracy"])))
    assert iterations == [1, 2, 3, 4] and [i for i, _ in validations] == [2, 4]
    assert result.student(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert result.generator is not None and result.run_dir == tmp_path / "api"
    assert result.history[-1]["iteration"] == 4
    assert (result.run_dir / "summary.json").is_file() and result.best_checkpoint.is_file()
    after = teacher.state_dict()
    assert after.keys() == teacher_before.keys()
    assert [k for k in after if not torch.equal(after[k], teacher_before[k])] == []
    assert not any(m.training for m in teacher.modules())
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    # The reported accuracies are those of the models on val_loader: the teacher's, and the final
    # student's at the last validation (iteration 4 is the last iteration).
    assert result.summary["teacher_accuracy"] == 1.0
    with torch.no_grad():
        student_accuracy = (result.student.eval()(images).argmax(1) == labels).float().mean().item()
    assert validations[-1][1] == pytest.approx(student_accuracy)


def test_python_api_takes_a_student_module_and_validates_inputs_up_front(tmp_path):
    with pytest.raises(DfadError, match="input_shape must be"):
        dfad.distill(teacher_module(), "cifar_resnet8", input_shape=(3, 16, 8), out=tmp_path / "x")
    with pytest.raises(DfadError, match="cannot take inputs of shape"):
        dfad.distill(teacher_module(), "cifar_resnet8", input_shape=(1, 16, 16), out=tmp_path / "y")
    result = dfad.distill(teacher_module(), TinyClassifier(num_classes=7, width=4), input_shape=(3, 16, 16),
                          iterations=2, batch_size=8, nz=16, generator_args={"ngf": 8}, out=tmp_path / "z",
                          progress=False, options={"tensorboard": True})
    assert isinstance(result.student, TinyClassifier) and result.summary["student_model"] == "TinyClassifier"
    # The losses went to TensorBoard too: a scalar per iteration, the values the metrics log holds.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "z" / "tensorboard"))
    board.Reload()
    student_losses = {e.step: e.value for e in board.Scalars("student_loss")}
    assert sorted(student_losses) == [1, 2]
    assert student_losses[2] == pytest.approx(result.history[-1]["student_loss"], rel=1e-6)
    entry = load_checkpoint(result.best_checkpoint)["models"]["student"]
    assert entry["module"] == "TinyClassifier"
    with pytest.raises(DfadError, match="your own model class 'TinyClassifier'"):
        dfad.runs.build_model_from_entry(entry, result.best_checkpoint)


@pytest.mark.parametrize("arch", ["torchvision:mobilenet_v3_small", "timm:resnet10t"])
def test_students_from_other_libraries_are_rebuilt_from_checkpoints(arch, tmp_path):
    if arch.startswith("timm:"):
        pytest.importorskip("timm", reason="timm students need the optional extra dfad[timm]")
    result = dfad.distill(teacher_module(), arch, input_shape=(3, 16, 16), iterations=1, batch_size=4, nz=16,
                          generator_args={"ngf": 8}, out=tmp_path / "run", progress=False)
    assert result.summary["student_model"] == arch
    rebuilt = dfad.runs.build_model_from_entry(load_checkpoint(result.best_checkpoint)["models"]["student"], "x")
    # The run's student computes in channels_last (distill.channels_last): in the same layout, the
    # rebuilt model must give bit-identical outputs.
    rebuilt = rebuilt.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(rebuilt.eval()(x), result.student.eval()(x))
    with pytest.raises(DfadError, match="did you mean"):
        dfad.models.check_arch(arch + "x")


def test_python_api_distills_a_segmentation_teacher(tmp_path):
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 5, 1))
    student = torch.nn.Conv2d(3, 5, 3, padding=1)
    result = dfad.distill(teacher, student, input_shape=(3, 16, 16), task="segmentation", iterations=3,
                          batch_size=4, nz=16, generator="generator_b", generator_args={"ngf": 8},
                          out=tmp_path / "seg", progress=False)
    assert result.summary["metric"] == "miou" and result.summary["input"]["num_classes"] == 5
    losses = [r for r in result.history if "generator_loss" in r]
    assert losses and all(r["generator_loss"] <= 0 for r in losses)  # -log(L1 + 1)
    with pytest.raises(DfadError, match="segmentation model must return per-pixel logits"):
        dfad.distill(teacher_module(), student, input_shape=(3, 16, 16), task="segmentation", out=tmp_path / "x")


def _stated(preset: dict, prefix: str = "") -> dict:
    """The preset's values by dotted key (a model spec counts as one value)."""
    flat = {}
    for key, value in preset.items():
        if isinstance(value, dict) and not {"arch"} & set(value) and key != "method_args":
            flat.update(_stated(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _config_value(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def test_no_config_runs_start_from_the_no_data_preset_on_the_cli_and_in_the_api(tmp_path, saved):
    import yaml

    from dfad.config import NO_DATA_PRESET, SHIPPED_CONFIGS

    preset = _stated(yaml.safe_load((SHIPPED_CONFIGS / f"{NO_DATA_PRESET}.yaml").read_text()))
    assert "distill.student_optimizer.lr" in preset  # the preset states what it chose
    run_cli(tmp_path, saved["export"])
    cli_cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    overridden = {item.split("=")[0] for item in TINY if "=" in item}
    named = ("distill.generator", "distill.student")  # TINY shrinks the generator and names a student
    for key, value in preset.items():
        if key not in overridden and not key.startswith(named):
            assert _config_value(cli_cfg, key) == value, key
    result = dfad.distill(teacher_module(), input_shape=(3, 16, 16), iterations=2, batch_size=4,
                          nz=16, generator_args={"ngf": 8}, out=tmp_path / "api", progress=False)
    api_cfg = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert api_cfg["distill"]["iterations"] == 2 and api_cfg["distill"]["generator"]["args"] == {"ngf": 8}
    for key, value in preset.items():  # the student too: none was named
        if key not in {"distill.iterations", "distill.batch_size", "distill.nz"} and not key.startswith("distill.generator"):
            assert _config_value(api_cfg, key) == value, key
