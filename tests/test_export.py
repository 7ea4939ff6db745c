"""`dfad export`: every format round-trips and matches PyTorch on generated samples, also for a
student of the user's own class (Python API), which its run keeps as student.pt2."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import dfad
from dfad import export as export_module
from dfad.cli import main
from dfad.engine import load_checkpoint, save_checkpoint
from dfad.errors import DfadError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from tiny_models import TinyClassifier  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A two-iteration data-free run whose student is a registry model (rebuildable)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export") / "run"
    dfad.distill(TinyClassifier(num_classes=6).eval(), "cifar_resnet8", input_shape=(3, 16, 16), iterations=2,
                 batch_size=8, nz=16, generator_args={"ngf": 8}, out=out, progress=False)
    return out


@pytest.mark.parametrize("fmt", ["pt2", "onnx", "torchscript"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_export_round_trip_matches_pytorch(run_dir, fmt, dynamic, tmp_path, capsys):
    out = tmp_path / f"student.{fmt}"
    args = ["export", str(run_dir), "--format", fmt, "--out", str(out)] + (["--dynamic-batch"] if dynamic else [])
    assert main(args) == 0
    assert out.is_file() and not list(tmp_path.glob("*.partial*"))
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max |difference| vs PyTorch" in printed
    result = export_module.export_student(run_dir, fmt, dynamic_batch=dynamic, out=out)
    assert result["max_abs_diff"] <= result["tolerance"] <= 1e-3
    if fmt == "pt2":  # the file serves other batch sizes only when exported with --dynamic-batch
        program = torch.export.load(str(out)).module()
        assert program(torch.randn(8, 3, 16, 16)).shape == (8, 6)
        if dynamic:
            assert program(torch.randn(5, 3, 16, 16)).shape == (5, 6)


def test_an_unfaithful_export_fails_and_leaves_no_file(run_dir, tmp_path, monkeypatch):
    real = export_module.EXPORTERS["pt2"]

    def off_by_one(model, x, path, dynamic):
        run, how = real(model, x, path, dynamic)
        return (lambda inputs: run(inputs) + 1.0), how

    monkeypatch.setitem(export_module.EXPORTERS, "pt2", off_by_one)
    out = tmp_path / "student.pt2"
    with pytest.raises(DfadError, match="differs from PyTorch by 1 .*nothing was written"):
        export_module.export_student(run_dir, "pt2", out=out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_errors_name_the_fix(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "pt2"]) == 2
    assert "no checkpoints/best.pt" in capsys.readouterr().err


class OwnStudent(nn.Module):
    """A student class dfad knows nothing about: checkpoints hold its weights only."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


class UnexportableStudent(OwnStudent):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if out.sum() > -1e9 else -out  # a branch on data: torch.export refuses it


def distill_into(student: nn.Module, out: Path) -> dfad.DistillResult:
    torch.manual_seed(0)
    return dfad.distill(TinyClassifier(num_classes=6).eval(), student, input_shape=(3, 16, 16), iterations=2,
                        batch_size=8, nz=16, generator_args={"ngf": 8}, out=out, progress=False)


def student_with(checkpoint: Path) -> nn.Module:
    """The student as it should behave: OwnStudent holding that checkpoint's weights."""
    model = OwnStudent()
    model.load_state_dict(load_checkpoint(checkpoint)["models"]["student"]["state_dict"])
    return model.eval()


def assert_same_outputs(run, reference: nn.Module, *batches: int) -> None:
    torch.manual_seed(1)
    for batch in batches:
        x = torch.randn(batch, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(run(x), reference(x), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> dfad.DistillResult:
    return distill_into(OwnStudent(), tmp_path_factory.mktemp("own") / "run")


def test_a_run_with_your_own_student_class_keeps_its_program(own_run):
    program = own_run.run_dir / "student.pt2"
    assert program.is_file()
    # The best checkpoint's student, for any batch size (dynamic batch dimension).
    assert_same_outputs(torch.export.load(str(program)).module(), student_with(own_run.best_checkpoint), 8, 5, 1)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_cli_export_of_your_own_student_starts_from_its_program(own_run, tmp_path, capsys):
    out = tmp_path / "student.torchscript.pt"
    assert main(["export", str(own_run.run_dir), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"from {own_run.run_dir / 'student.pt2'}" in printed and "max |difference| vs PyTorch" in printed
    assert_same_outputs(torch.jit.load(str(out)), student_with(own_run.best_checkpoint), 8)


def test_exports_take_the_chosen_checkpoints_weights(own_run, tmp_path):
    """student.pt2 and the live student hold other weights; `--checkpoint last` / checkpoint="last"
    export last.pt's, whatever they are."""
    last = own_run.run_dir / "checkpoints" / "last.pt"
    payload = load_checkpoint(last)
    weights = payload["models"]["student"]["state_dict"]
    original = {k: v.clone() for k, v in weights.items()}
    for key in ("head.weight", "head.bias"):  # last.pt's weights made different from best.pt's
        weights[key].mul_(-3.0)
    save_checkpoint(payload, last)
    try:
        out = tmp_path / "last.pt2"
        assert main(["export", str(own_run.run_dir), "--format", "pt2", "--checkpoint", "last", "--out", str(out)]) == 0
        assert_same_outputs(torch.export.load(str(out)).module(), student_with(last), 8)
        api_out = own_run.export("pt2", tmp_path / "api.pt2", checkpoint="last")
        assert_same_outputs(torch.export.load(str(api_out)).module(), student_with(last), 8)
    finally:
        payload["models"]["student"]["state_dict"] = original
        save_checkpoint(payload, last)


def test_the_api_exports_your_own_student_to_onnx(own_run):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the dfad[export] extra runs ONNX files")
    path = own_run.export("onnx", dynamic_batch=True)
    assert path == own_run.run_dir / "export" / "student.onnx" and path.is_file()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run_onnx(x):
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])

    assert_same_outputs(run_onnx, student_with(own_run.best_checkpoint), 8, 3)


def test_a_registry_student_run_writes_no_program(run_dir):
    assert (run_dir / "summary.json").is_file() and not (run_dir / "student.pt2").exists()


def test_a_student_torch_export_refuses_gets_a_one_line_warning_and_the_run_succeeds(tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"student\.pt2 not written \(.*\); .*result\.export\('torchscript'\)"):
        result = distill_into(UnexportableStudent(), tmp_path / "run")
    assert capsys.readouterr().err == ""  # torch.export's pages of logs are not shown: the warning says it
    assert (result.run_dir / "summary.json").is_file() and not (result.run_dir / "student.pt2").exists()
    assert main(["export", str(result.run_dir), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "your own model class 'UnexportableStudent'" in err and "student.pt2 is missing" in err
    assert "result.export('onnx')" in err and len(err.strip().splitlines()) == 1
