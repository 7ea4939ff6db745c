"""`dfad export`: every format round-trips and matches PyTorch on generated samples."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import dfad
from dfad import export as export_module
from dfad.cli import main
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
