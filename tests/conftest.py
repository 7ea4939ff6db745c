"""Shared fixtures. Real datasets come from ../shared/data (prepared once per session) and tests
that need them skip with a reason when it is absent."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DFAD_TEST_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's ~/.cache/dfad."""
    monkeypatch.setenv("DFAD_CACHE", str(tmp_path_factory.getbasetemp() / "dfad-cache"))
    monkeypatch.delenv("DFAD_DATA_ROOT", raising=False)


@pytest.fixture(scope="session")
def prepared_data_root(tmp_path_factory) -> Path:
    """The offline dataset copies unpacked with ../shared/data/prepare.sh (a few seconds)."""
    script = SHARED_DATA / "prepare.sh"
    if not script.exists():
        pytest.skip(f"offline datasets not found at {SHARED_DATA} (set DFAD_TEST_SHARED_DATA to the folder "
                    f"holding prepare.sh)")
    dest = tmp_path_factory.mktemp("data")
    subprocess.run(["bash", str(script), str(dest)], check=True, capture_output=True)
    return dest


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory) -> Path:
    """A small trained digits teacher (a few seconds), shared by the tests that distill."""
    from dfad.config import load_config
    from dfad.runs import train_teacher

    out = tmp_path_factory.mktemp("digits-teacher")
    train_teacher(load_config("digits", ["teacher.iterations=150", "teacher.val_every=150"]), out / "run",
                  progress=False)
    return out / "run" / "teacher.pt"


def assert_finite_losses(run) -> None:
    """Every loss a run logged is a finite number (and there is at least one)."""
    import math

    from dfad.engine import read_metrics

    losses = [v for r in read_metrics(run) for k, v in r.items() if k.endswith("loss")]
    assert losses and all(math.isfinite(v) for v in losses)


def smoke_run_config(config: str, overrides: list[str], data_root, out: Path, methods=("dfad",)) -> dict:
    """A shipped config's real code path at tiny sizes: train its teacher, then distill with each of
    `methods`; every metric must lie in [0, 1], every logged loss be finite. Returns the summaries
    by run name ("teacher" and each method)."""
    from dfad.config import load_config
    from dfad.runs import distill, train_teacher

    def tiny(extra=()):
        cfg = load_config(config, [*overrides, *extra])
        cfg.data.root = str(data_root)
        return cfg

    teacher = train_teacher(tiny(), out / "teacher", progress=False)
    metric = teacher["metric"]
    assert 0.0 <= teacher[f"teacher_{metric}"] <= 1.0
    summaries = {"teacher": teacher}
    for method in methods:
        cfg = tiny([f"distill.method={method}"])
        cfg.teacher.checkpoint = teacher["teacher_checkpoint"]
        summary = summaries[method] = distill(cfg, out / method, progress=False)
        assert 0.0 <= summary[f"student_{metric}"] <= 1.0 and summary["iterations"] == cfg.distill.iterations
        assert_finite_losses(out / method)
    return summaries
