"""Data-parallel DFAD under torchrun (gloo on CPU, two processes)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available")


def torchrun(*args: str, nproc: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={nproc}", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=PROJECT_ROOT)


@pytest.mark.slow  # starts torchrun
def test_ranks_stay_identical_and_each_step_reduces_only_its_own_model(digits_teacher, tmp_path):
    iterations = 3
    result = torchrun(str(PROJECT_ROOT / "tests" / "helpers" / "ddp_worker.py"), str(digits_teacher),
                      str(tmp_path), str(iterations))
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["world_size"] == 2 and rank0["batch"] == 16  # the global batch of 32, split
    for role in ("student", "generator"):
        # Everything, BatchNorm running statistics and batch counts included (each rank normalised
        # its own batch; the statistics are averaged after every iteration).
        for name, tensor in rank0[role].items():
            assert torch.equal(tensor, rank1[role][name]), f"{role}.{name} differs between ranks"
        running = {n: t for n, t in rank0[role].items() if n.endswith("running_mean")}
        assert running and all(t.abs().sum() > 0 for t in running.values()), f"{role}: no BatchNorm statistics"
        # 6 training-mode forward passes per iteration on every rank (5 imitation steps, 1 generation step)
        assert all(t.item() == iterations * 6 for n, t in rank0[role].items() if n.endswith("num_batches_tracked"))

    def numel(role: str, buffers: bool) -> int:
        return sum(t.numel() for n, t in rank0[role].items()
                   if ("running_" in n) == buffers and "num_batches" not in n)

    # Per iteration: 5 imitation steps all-reduce the student's gradients, one generation step the
    # generator's (no student all-reduce there); then the loop agrees on NaN/Inf losses (a 2x2 table),
    # averages each model's BatchNorm statistics once and agrees on stopping (2 flags).
    per_iteration = ([numel("student", False)] * 5 + [numel("generator", False)]
                     + [4, numel("student", True), numel("generator", True), 2])
    assert rank0["all_reduce_sizes"] == rank1["all_reduce_sizes"] == per_iteration * iterations


@pytest.mark.slow  # starts torchrun
def test_nan_loss_on_one_rank_stops_every_rank_with_the_same_message(digits_teacher, tmp_path):
    """Rank 1 alone sees a NaN at iteration 3: both ranks stop there, print the same one-line
    error (naming the loss, iteration, rank and rank 0's last checkpoint) and exit with 2."""
    out = tmp_path / "run"
    result = torchrun("--tee", "3", str(PROJECT_ROOT / "tests" / "helpers" / "nan_on_rank.py"), "1", "3",
                      "distill", "--config", "digits", "--teacher", str(digits_teacher), "--quiet", "--out", str(out),
                      "threads=1", "distill.iterations=20", "distill.val_every=2", "distill.batch_size=32",
                      "distill.generator.args.ngf=8", "distill.sample_grid_size=4", timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    errors = {rank: [line.split(":", 1)[1] for line in output.splitlines()
                     if line.startswith(f"[default{rank}]:dfad: error:")] for rank in (0, 1)}
    expected = (f"dfad: error: student_loss became nan at iteration 3 on rank 1: the run diverged; lower the "
                f"learning rates and retry (the last good checkpoint is {out / 'checkpoints' / 'last.pt'})")
    assert errors == {0: [expected], 1: [expected]}, output[-3000:]
    for rank in (0, 1):
        assert f"[default{rank}]:rank {rank} exited with 2" in output, output[-3000:]


def test_sync_batchnorm_is_refused_on_cpu_with_several_processes():
    """PyTorch's SyncBatchNorm only runs on CUDA (on CPU its forward raises a ValueError): say so
    before building anything (no process group is needed to get there)."""
    from dfad.config import load_config
    from dfad.data import DATASETS
    from dfad.engine.distributed import Distributed
    from dfad.errors import DfadError
    from dfad.runs import build_distillation
    from dfad.tasks import TASKS

    cfg = load_config("digits", ["distill.sync_batchnorm=true"])
    info = DATASETS.build("digits", root=None, train=False).info
    with pytest.raises(DfadError, match=r"^distill.sync_batchnorm needs CUDA devices; .*device=cuda, or set "
                                        r"distill.sync_batchnorm=false"):
        build_distillation(cfg, torch.nn.Identity(), info, TASKS.build(cfg.task), "cpu", Distributed(0, 2, 0))


def test_sync_batchnorm_alone_changes_nothing(digits_teacher):
    """One process: nothing to synchronise, the plain BatchNorm layers stay (and CPU is fine)."""
    from dfad.config import load_config
    from dfad.data import DATASETS
    from dfad.runs import build_distillation, load_teacher
    from dfad.tasks import TASKS

    cfg = load_config("digits", ["distill.sync_batchnorm=true", "distill.generator.args.ngf=8"])
    cfg.teacher.checkpoint = str(digits_teacher)
    info = DATASETS.build("digits", root=None, train=False).info
    method = build_distillation(cfg, load_teacher(cfg, info, "cpu"), info, TASKS.build(cfg.task), "cpu")
    layers = [type(m) for m in method.generator.modules()]
    assert torch.nn.BatchNorm2d in layers and torch.nn.SyncBatchNorm not in layers


@pytest.mark.slow  # starts torchrun
def test_two_process_run_matches_a_single_process_run(digits_teacher, tmp_path):
    """Same global batch (each rank draws half of it): the same result up to sampling noise.
    Measured on 2 cores, 150 iterations, teacher 0.964: seed 0 single 0.924 / two processes 0.920,
    seed 1 0.927 / 0.924. Between seeds alone the student moves by up to ~0.02; tolerance 0.05."""
    common = ["--config", "digits", "--teacher", str(digits_teacher), "--quiet", "threads=1",
              "distill.iterations=150", "distill.val_every=50"]
    ddp = torchrun("-m", "dfad", "distill", "--out", str(tmp_path / "ddp"), *common)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "dfad", "distill", "--out", str(tmp_path / "single"), *common],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    ddp_summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    single_summary = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert ddp_summary["iterations"] == single_summary["iterations"] == 150
    assert abs(ddp_summary["student_accuracy"] - single_summary["student_accuracy"]) <= 0.05
    assert ddp_summary["student_accuracy"] >= 0.85
    # rank 0 alone wrote the run folder: one log line per logged iteration
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["iteration"] for line in lines})


@pytest.mark.slow  # starts torchrun
def test_distributed_run_resumes_exactly_after_sigterm(digits_teacher, tmp_path):
    """SIGTERM to torchrun reaches every rank; they stop at the same iteration, rank 0 saves every
    rank's RNG state, and re-running the command continues to the same parameters as a run that
    was never interrupted."""
    import signal
    import time

    from dfad.engine.checkpoint import list_states, load_checkpoint

    args = ["-m", "dfad", "distill", "--config", "digits", "--teacher", str(digits_teacher), "--quiet", "threads=1",
            "distill.iterations=40", "distill.val_every=10", "checkpointing.every=10", "distill.batch_size=32",
            "distill.generator.args.ngf=8", "distill.sample_grid_size=4"]
    full = torchrun(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-3000:]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    out = tmp_path / "interrupted"
    process = subprocess.Popen([*launcher, *args, "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 300
    while not list_states(out / "checkpoints"):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no state checkpoint appeared"
        time.sleep(0.05)  # polling the subprocess
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0, "the run finished before the signal; nothing was interrupted"
    stopped_at = list_states(out / "checkpoints")[0][0]
    assert stopped_at < 40
    assert len(load_checkpoint(list_states(out / "checkpoints")[0][1], kind="state")["state"]["rng"]) == 2

    resumed = torchrun(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["models"]["student"]["state_dict"]
    b = load_checkpoint(out / "checkpoints" / "last.pt")["models"]["student"]["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
