"""The command line, end to end, on the bundled digits (real code path, tiny budget)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfad.cli import main

# Measured (150 DFAD iterations, 1 thread, seeds 0-3): student 0.938-0.955, teacher 0.973-0.978.
# Chance is 0.10; the thresholds leave a wide margin for other machines and thread counts.
MIN_TEACHER_ACCURACY = 0.93
MIN_STUDENT_ACCURACY = 0.85


def dfad(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "dfad", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    teacher = dfad("train-teacher", "--config", "digits", "--out", str(root / "teacher"), "--quiet",
                   "teacher.iterations=300")
    assert teacher.returncode == 0, teacher.stderr
    student = dfad("distill", "--config", "digits", "--teacher", str(root / "teacher" / "teacher.pt"),
                   "--out", str(root / "student"), "distill.iterations=150", "distill.val_every=50")
    assert student.returncode == 0, student.stderr
    return root, student


@pytest.mark.slow
def test_tiny_digits_distillation_beats_chance_by_far(digits_runs):
    root, _ = digits_runs
    summary = json.loads((root / "student" / "summary.json").read_text())
    assert summary["teacher_accuracy"] >= MIN_TEACHER_ACCURACY
    assert summary["student_accuracy"] >= MIN_STUDENT_ACCURACY
    assert summary["best_student_accuracy"] >= summary["student_accuracy"]
    assert summary["iterations"] == 150
    assert summary["student_params"] < summary["teacher_params"]
    assert 0 < summary["student_flops"] < summary["teacher_flops"] and summary["wall_seconds"] > 0
    assert summary["command"].startswith("python -m dfad distill --config digits --teacher ")
    assert summary["machine"]["torch"] and "git_commit" in summary  # None outside a git checkout


@pytest.mark.slow
def test_run_folder_is_self_describing(digits_runs):
    root, student = digits_runs
    run = root / "student"
    for name in ("config.yaml", "metrics.jsonl", "curve.csv", "summary.json", "checkpoints/best.pt",
                 "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "iter_000050.png", "iter_000100.png", "iter_000150.png"]
    # Each grid holds distill.sample_grid_size generated 8x8 digits (square grid, 1 px padding).
    from PIL import Image

    from dfad.config import load_config

    side = math.ceil(math.sqrt(load_config("digits").distill.sample_grid_size))
    with Image.open(run / "samples" / "iter_000150.png") as grid:
        assert grid.size == (side * 9 + 1, side * 9 + 1)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    validated = [r for r in records if "accuracy" in r]
    assert [r["iteration"] for r in validated] == [50, 100, 150]
    for r in records:
        assert {"iteration", "student_loss", "generator_loss", "elapsed_seconds"} <= set(r)
    elapsed = [r["elapsed_seconds"] for r in records]
    assert elapsed == sorted(elapsed)
    curve = (run / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("iteration,elapsed_seconds,accuracy") and len(curve) == 4
    # The progress bar reports losses, the last accuracy and the rate.
    assert "student_loss=" in student.stderr and "accuracy=" in student.stderr and "it/s" in student.stderr


@pytest.mark.slow
def test_evaluate_reproduces_the_final_accuracy(digits_runs):
    root, _ = digits_runs
    summary = json.loads((root / "student" / "summary.json").read_text())
    result = dfad("evaluate", "--config", "digits", "--checkpoint", str(root / "student" / "checkpoints" / "last.pt"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(summary["student_accuracy"])
    assert report["params"] == summary["student_params"] and report["samples"] == 450


@pytest.mark.slow
def test_rerunning_a_finished_run_changes_nothing(digits_runs, capsys):
    """The same command into the same --out resumes; a finished run has nothing left to do."""
    root, _ = digits_runs
    before = {name: (root / "student" / name).read_bytes()
              for name in ("metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt")}
    code = main(["distill", "--config", "digits", "--teacher", str(root / "teacher" / "teacher.pt"),
                 "--out", str(root / "student"), "distill.iterations=150", "distill.val_every=50", "--quiet"])
    assert code == 0
    for name, content in before.items():
        assert (root / "student" / name).read_bytes() == content, name


@pytest.mark.slow
def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    from dfad.engine import model_entry, save_checkpoint
    from dfad.models import build_model

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    five_class_teacher = tmp_path / "five.pt"
    save_checkpoint({"models": {"teacher": model_entry(build_model("convnet", num_classes=5, in_channels=1))}},
                    five_class_teacher)
    cases = [
        (["distill", "--config", "digits", "--teacher", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "a")],
         "does not exist"),
        (["distill", "--config", "digits", "--teacher", str(corrupt), "--out", str(tmp_path / "b")],
         "corrupt or not a PyTorch file"),
        (["train-teacher", "--config", "mnist", "--data-root", str(tmp_path / "nodata"), "--out", str(tmp_path / "c")],
         "MNIST not found: expected train-images-idx3-ubyte"),
        (["distill", "--config", "digits", "--out", str(tmp_path / "d")], "no teacher given"),
        (["distill", "--config", "digits", "--out", str(tmp_path / "e"), "distill.imitation_steps=0"],
         "distill.imitation_steps must be positive"),
        (["distill", "--config", "digits", "--teacher", str(five_class_teacher), "--out", str(tmp_path / "f")],
         "has 5 outputs but the data has 10 classes"),
        (["distill", "--config", "digits", "--teacher", str(five_class_teacher), "--out", str(tmp_path / "g"),
          "--precision", "fp16"], "precision fp16 needs a CUDA device"),
        (["distill", "--config", "digits", "--out", str(tmp_path / "h"), "distil.iterations=3"],
         "unknown key 'distil' (did you mean 'distill'?)"),
    ]
    # Started together: each is mostly Python and torch start-up, so 2 cores halve the wait.
    running = [subprocess.Popen([sys.executable, "-m", "dfad", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for argv, _ in cases]
    for (argv, message), process in zip(cases, running):
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 2, argv
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in stderr, stderr
        assert not (Path(argv[argv.index("--out") + 1]) / "config.yaml").exists(), "a failed run wrote its folder"


def test_a_run_folder_in_use_is_refused_to_a_second_process(tmp_path):
    """Two processes writing one folder would interleave checkpoints and metrics (or one's --force
    would clear the other's files): the second is refused with one line, and nothing is touched."""
    from dfad.engine import model_entry, save_checkpoint
    from dfad.engine.run_dir import RunDir
    from dfad.models import build_model

    teacher = tmp_path / "teacher.pt"
    save_checkpoint({"models": {"teacher": model_entry(build_model("convnet", num_classes=10, in_channels=1))}},
                    teacher)
    folder = tmp_path / "run"
    running = RunDir(folder)  # this process is writing a run there
    (folder / "metrics.jsonl").write_text("the running run's log\n")
    second = dfad("distill", "--config", "digits", "--teacher", str(teacher), "--out", str(folder), "--force",
                  "distill.iterations=1")
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "another process is writing a run in" in lines[0], second.stderr
    assert (folder / "metrics.jsonl").read_text() == "the running run's log\n"
    assert not (folder / "config.yaml").exists()
    assert RunDir(folder, resume=True) is not None  # the same process may reopen it (re-entrant)
    running.close()
    take = [sys.executable, "-c", f"from dfad.engine.folder_lock import FolderLock; FolderLock({str(folder)!r})"]
    assert subprocess.run(take, capture_output=True, timeout=120).returncode == 0, "not released after close()"


def test_help_lists_every_subcommand():
    result = dfad("--help")
    assert result.returncode == 0
    for command in ("demo", "train-teacher", "distill", "evaluate", "reproduce"):
        assert command in result.stdout


def test_warnings_reach_the_user_as_one_line_each(monkeypatch, capsys, tmp_path):
    import sys
    import warnings

    from dfad import cli

    def warn(args):
        warnings.warn("bn_prior is off for this run", UserWarning)
        return 0

    monkeypatch.setattr(cli, "run", warn)
    formatwarning = warnings.formatwarning
    def show(message, category, filename, lineno, file=None, line=None):  # Python's, which pytest replaces
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        assert cli.main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().err == "dfad: warning: bn_prior is off for this run\n"
    assert warnings.formatwarning is formatwarning  # the library's callers keep Python's format
