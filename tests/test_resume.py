"""Runs survive interruption: state checkpoints, exact resume, kill -9, SIGTERM, full disks."""
from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dfad.config import load_config
from dfad.engine import read_metrics
from dfad.engine.checkpoint import list_states, load_checkpoint
from dfad.errors import DfadError
from dfad.runs import distill

# Small and quick (well under a second per iteration on one core), with every part of a DFAD run:
# validation, sample grids, best/last checkpoints and state checkpoints every 10 iterations.
TINY = ["distill.iterations=30", "distill.val_every=10", "distill.batch_size=32", "checkpointing.every=10",
        "checkpointing.keep=2", "distill.generator.args.ngf=8", "distill.sample_grid_size=4"]


def tiny_config(teacher: Path, extra=()):
    cfg = load_config("digits", [*TINY, *extra])
    cfg.teacher.checkpoint = str(teacher)
    return cfg


def final_student(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")["models"]["student"]["state_dict"]


def assert_same_parameters(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def uninterrupted(digits_teacher, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    distill(tiny_config(digits_teacher), out, progress=False)
    return out


@pytest.mark.slow
def test_crashed_run_resumes_bit_identically(digits_teacher, uninterrupted, tmp_path, monkeypatch):
    restore = crash_at(monkeypatch, 25)
    with pytest.raises(RuntimeError, match="simulated crash"):
        distill(tiny_config(digits_teacher), tmp_path / "run", progress=False)
    assert [i for i, _ in list_states(tmp_path / "run" / "checkpoints")] == [20, 10]
    restore()

    summary = distill(tiny_config(digits_teacher), tmp_path / "run", progress=False)  # same command: resumes
    assert summary["iterations"] == 30
    assert_same_parameters(final_student(tmp_path / "run"), final_student(uninterrupted))
    # The log holds each iteration once: the records written after state 20 by the crashed
    # session were dropped on resume.
    iterations = [r["iteration"] for r in read_metrics(tmp_path / "run")]
    assert iterations == sorted(set(iterations))
    assert [i for i, _ in list_states(tmp_path / "run" / "checkpoints")] == [30, 20]  # keep = 2


def crash_at(monkeypatch, iteration: int):
    from dfad.methods.dfad import DFAD

    original_step, calls = DFAD.step, {"n": 0}

    def crashing_step(self):
        calls["n"] += 1
        if calls["n"] == iteration:
            raise RuntimeError("simulated crash")
        return original_step(self)

    monkeypatch.setattr(DFAD, "step", crashing_step)
    return lambda: monkeypatch.setattr(DFAD, "step", original_step)


@pytest.mark.slow
def test_damaged_newest_state_falls_back_to_the_previous_one(digits_teacher, uninterrupted, tmp_path, monkeypatch):
    run = tmp_path / "run"
    restore = crash_at(monkeypatch, 25)
    with pytest.raises(RuntimeError, match="simulated crash"):
        distill(tiny_config(digits_teacher), run, progress=False)
    restore()
    (run / "checkpoints" / "state-00000020.pt").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="skipping unreadable state checkpoint"):
        distill(tiny_config(digits_teacher), run, resume=True, progress=False)  # continues from 10 to 30
    assert_same_parameters(final_student(run), final_student(uninterrupted))


def _dfad_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dfad", *args]


def _wait_for_state(folder: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list_states(folder):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no state checkpoint appeared"
        time.sleep(0.05)  # polling a subprocess, not waiting for time to pass


def _start_until_first_state(digits_teacher: Path, out: Path) -> tuple[list[str], subprocess.Popen]:
    """`dfad distill` of the tiny run in a subprocess, returned once it has written a state checkpoint."""
    command = _dfad_cli("distill", "--config", "digits", "--teacher", str(digits_teacher), "--out", str(out),
                        "--quiet", *TINY)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_state(out / "checkpoints", process)
    return command, process


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_exactly(digits_teacher, uninterrupted, tmp_path):
    out = tmp_path / "run"
    command, process = _start_until_first_state(digits_teacher, out)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_parameters(final_student(out), final_student(uninterrupted))


@pytest.mark.slow
def test_sigterm_saves_state_and_says_how_to_resume(digits_teacher, uninterrupted, tmp_path):
    out = tmp_path / "run"
    _, process = _start_until_first_state(digits_teacher, out)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:  # the run finished before the signal arrived: nothing to check
        pytest.skip("run completed before SIGTERM was delivered")
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "to continue, rerun the same command" in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    stopped_at = list_states(out / "checkpoints")[0][0]
    assert 10 <= stopped_at < 30
    resumed = subprocess.run(_dfad_cli("distill", "--out", str(out), "--resume", "--quiet"), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_parameters(final_student(out), final_student(uninterrupted))


@pytest.mark.slow
def test_output_folder_of_a_different_run_is_refused_and_kept(digits_teacher, uninterrupted, tmp_path):
    config_before = (uninterrupted / "config.yaml").read_text()
    result = subprocess.run(_dfad_cli("distill", "--config", "digits", "--teacher", str(digits_teacher),
                                      "--out", str(uninterrupted), *TINY, "distill.iterations=31"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "holds a different run (distill.iterations 31 here vs 30 there)" in result.stderr
    assert "--resume" in result.stderr and "--force" in result.stderr
    assert (uninterrupted / "config.yaml").read_text() == config_before


@pytest.mark.slow
def test_validation_schedule_does_not_change_training(digits_teacher, uninterrupted, tmp_path):
    """Validation (and so an early stop, which validates) must not consume training randomness."""
    distill(tiny_config(digits_teacher, ["distill.val_every=3"]), tmp_path / "often", progress=False)
    assert_same_parameters(final_student(tmp_path / "often"), final_student(uninterrupted))


def test_resume_without_a_run_is_an_error(digits_teacher, tmp_path):
    result = subprocess.run(_dfad_cli("distill", "--config", "digits", "--teacher", str(digits_teacher),
                                      "--out", str(tmp_path / "none"), "--resume"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "holds no run to continue" in result.stderr


def test_full_disk_while_saving_keeps_the_previous_checkpoint(digits_teacher, tmp_path, monkeypatch):
    import dfad.engine.checkpoint as checkpoint_module

    real_save, calls = torch.save, {"n": 0}

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:  # best, last and state at 10, best at 20; then last.pt at 20 hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_until_the_disk_fills)
    with pytest.raises(DfadError, match="no space left on the device while writing .*intact"):
        distill(tiny_config(digits_teacher), tmp_path / "run", progress=False)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    folder = tmp_path / "run" / "checkpoints"
    assert not list(folder.glob("*.tmp"))
    assert load_checkpoint(folder / "last.pt")["iteration"] == 10  # the previous file, intact
    assert load_checkpoint(folder / "state-00000010.pt", kind="state")["state"]["iteration"] == 10


def test_run_identity_ignores_what_a_run_does_not_depend_on(tmp_path, digits_teacher):
    """Finished runs are reused (by `dfad reproduce`) or resumed only when their config matches in
    what they depend on: not the keys their method never reads, not the other kind's keys, and a
    teacher copied to another path is the same teacher; a different teacher file is not."""
    import shutil

    from dfad.runs import config_differences

    short = ["distill.iterations=2", "distill.val_every=2"]
    run = tmp_path / "random"
    distill(tiny_config(digits_teacher, ["distill.method=random", *short]), run, progress=False)
    unused_by_random = ["distill.generator_schedule={name: cosine}", "distill.generator_optimizer.lr=0.5",
                        "teacher.iterations=7"]
    assert config_differences(run, tiny_config(digits_teacher, ["distill.method=random", *short,
                                                                *unused_by_random]), "distill") == []
    as_dfad = config_differences(run, tiny_config(digits_teacher, [*short, *unused_by_random]), "distill")
    assert [d.split()[0] for d in as_dfad] == ["distill.generator_optimizer.lr", "distill.generator_schedule.name",
                                               "distill.method"]

    copied = tmp_path / "copied.pt"
    shutil.copy(digits_teacher, copied)
    cfg = tiny_config(copied, ["distill.method=random", *short])
    assert config_differences(run, cfg, "distill") == []
    other = tmp_path / "other.pt"
    data = bytearray(copied.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other contents
    other.write_bytes(bytes(data))
    cfg.teacher.checkpoint = str(other)
    assert [d.split()[0] for d in config_differences(run, cfg, "distill")] == ["teacher.checkpoint"]

    teacher_run = digits_teacher.parent
    same_teacher = load_config("digits", ["teacher.iterations=150", "teacher.val_every=150", "distill.nz=7"])
    assert config_differences(teacher_run, same_teacher, "teacher") == []
    # The machine is not identity (a CPU-trained teacher is reused on a GPU); the precision is.
    on_gpu = load_config("digits", ["teacher.iterations=150", "teacher.val_every=150", "device=cuda"])
    assert config_differences(teacher_run, on_gpu, "teacher") == []
    in_bf16 = load_config("digits", ["teacher.iterations=150", "teacher.val_every=150", "precision=bf16"])
    assert [d.split()[0] for d in config_differences(teacher_run, in_bf16, "teacher")] == ["precision"]
    assert config_differences(teacher_run, load_config("digits", ["teacher.iterations=151", "teacher.val_every=150"]),
                              "teacher") != []
    # A schedule's unread fields are not identity (the digits teacher's schedule is cosine) ...
    assert config_differences(teacher_run, load_config("digits", ["teacher.iterations=150", "teacher.val_every=150",
                                                                  "teacher.schedule.milestones=[5]"]), "teacher") == []
    # ... the fields it reads are.
    step = config_differences(teacher_run, load_config("digits", ["teacher.iterations=150", "teacher.val_every=150",
                                                                  "teacher.schedule={name: step, step_size: 5}"]),
                              "teacher")
    assert [d.split()[0] for d in step] == ["teacher.schedule.gamma", "teacher.schedule.name",
                                            "teacher.schedule.step_size"]
