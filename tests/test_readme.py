"""The README's "distill your own model" examples run as written (in a scratch folder)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- readme-test: (bash|python) -->\s*```(?:bash|python)\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


def test_the_readme_marks_its_examples():
    assert [kind for kind, _ in examples()] == ["bash", "python"]


@pytest.mark.slow
@pytest.mark.parametrize("kind, code", examples(), ids=[kind for kind, _ in examples()])
def test_readme_example_runs_as_written(kind, code, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # the `dfad` entry point of this interpreter's environment
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    command = ["bash", "-euo", "pipefail", "-c", code] if kind == "bash" else [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    if kind == "bash":
        run = tmp_path / "runs" / "my-student"
        assert (run / "export" / "student.pt2").is_file() and (run / "export" / "student.onnx").is_file()
        assert (run / "report.html").is_file() and "max |difference| vs PyTorch" in done.stdout
    else:
        assert "iteration 20 accuracy" in done.stdout and (tmp_path / "runs" / "api-student" / "report.html").is_file()
