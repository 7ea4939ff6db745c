"""The label-free health signal: agreement with the teacher on fixed generated samples and the
teacher's class balance, its warnings, and where a run shows them."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from dfad.health import (COLLAPSE_SHARE, DIVERGENCE_DROP, NOTES, STALL_AGREEMENT, STALL_CHECKS, HealthMonitor, health_noise,
                         measure_health)
from dfad.models import build_model


class ConstantClass(nn.Module):
    """Logits that always pick class `label` (per pixel when `pixels`)."""

    def __init__(self, classes: int, label: int, pixels: bool = False):
        super().__init__()
        self.classes, self.label, self.pixels = classes, label, pixels

    def forward(self, x):
        shape = (len(x), self.classes, *x.shape[-2:]) if self.pixels else (len(x), self.classes)
        logits = torch.zeros(shape)
        logits[:, self.label] = 1.0
        return logits


def _networks():
    torch.manual_seed(0)
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4)
    generator = build_model("generator_a", nz=8, ngf=4, channels=1, image_size=8)
    return teacher, generator


def test_agreement_is_one_for_a_copy_of_the_teacher_and_nothing_changes():
    teacher, generator = _networks()
    teacher.eval()
    student = copy.deepcopy(teacher).train()
    buffers = [b.clone() for b in generator.buffers()]
    rng = torch.get_rng_state()
    health = measure_health(teacher, student, generator, health_noise(8, seed=0, samples=64))
    assert health["agreement"] == 1.0 and health["num_classes"] == 10
    assert student.training and not teacher.training  # modes restored
    assert all(torch.equal(a, b) for a, b in zip(buffers, generator.buffers()))  # train-mode BN left no trace
    assert torch.equal(rng, torch.get_rng_state())


def test_a_one_class_teacher_has_top_share_one_and_zero_entropy():
    _, generator = _networks()
    health = measure_health(ConstantClass(10, 3), ConstantClass(10, 4), generator, health_noise(8, seed=0, samples=32))
    assert health["teacher_top_class_share"] == 1.0 and health["teacher_class_entropy"] == 0.0
    assert health["agreement"] == 0.0


def test_segmentation_counts_pixels():
    _, generator = _networks()
    teacher, student = ConstantClass(5, 1, pixels=True), ConstantClass(5, 1, pixels=True)
    health = measure_health(teacher, student, generator, health_noise(8, seed=0, samples=4))
    assert health["agreement"] == 1.0 and health["num_classes"] == 5 and health["unit"] == "pixels"
    (warning,) = HealthMonitor().check(health, 1)  # one class everywhere: collapse, counted in pixels
    assert "100% of generated pixels in one class" in warning


class EdgeColumn(nn.Module):
    """Per-pixel logits: class 1 on the first column of each 8x8 image (1/8 of the pixels), 0 elsewhere."""

    def forward(self, x):
        logits = torch.zeros(len(x), 3, *x.shape[-2:])
        logits[:, 0] = 1.0
        logits[:, 1, :, 0] = 2.0
        return logits


def test_segmentation_agreement_miou_weighs_each_class_alike():
    """A student that answers the teacher's majority class everywhere agrees on 7/8 of the pixels,
    but has an IoU of 7/8 on that class and 0 on the other: mean 7/16."""
    _, generator = _networks()
    noise = health_noise(8, seed=0, samples=4)
    majority = measure_health(EdgeColumn(), ConstantClass(3, 0, pixels=True), generator, noise)
    assert majority["agreement"] == 7 / 8 and majority["agreement_miou"] == pytest.approx(7 / 16)
    same = measure_health(EdgeColumn(), EdgeColumn(), generator, noise)
    assert same["agreement_miou"] == 1.0  # class 2, predicted by neither, does not count
    teacher, _ = _networks()
    assert "agreement_miou" not in measure_health(teacher.eval(), teacher, generator, noise)  # classification


def test_confident_agreement_counts_only_samples_the_teacher_is_sure_of():
    class HalfSure(nn.Module):
        """Class 0 for every sample: with logit 10 (p > 0.99) on even samples, 0.1 (p < 0.2) on odd ones."""

        def forward(self, x):
            logits = torch.zeros(len(x), 5)
            logits[:, 0] = torch.where(torch.arange(len(x)) % 2 == 0, 10.0, 0.1)
            return logits

    class WrongWhereSure(nn.Module):  # class 1 on even samples, class 0 on odd ones
        def forward(self, x):
            return torch.eye(5)[(torch.arange(len(x)) + 1) % 2]

    _, generator = _networks()
    health = measure_health(HalfSure(), WrongWhereSure(), generator, health_noise(8, seed=0, samples=32))
    assert health["agreement"] == 0.5 and health["agreement_confident"] == 0.0
    health = measure_health(ConstantClass(5, 1), ConstantClass(5, 1), generator, health_noise(8, seed=0, samples=8))
    assert "agreement_confident" not in health  # p = e/(e+4) < 0.9: sure of nothing, nothing to report


def test_balanced_predictions_have_entropy_one():
    class Alternating(nn.Module):
        def forward(self, x):
            return torch.eye(4)[torch.arange(len(x)) % 4]

    _, generator = _networks()
    health = measure_health(Alternating(), Alternating(), generator, health_noise(8, seed=0, samples=64))
    assert health["teacher_class_entropy"] == pytest.approx(1.0) and health["teacher_top_class_share"] == 0.25


def test_collapse_warning_rule():
    monitor = HealthMonitor()
    assert monitor.check({"teacher_top_class_share": COLLAPSE_SHARE - 0.01, "num_classes": 10}, 1) == []
    (warning,) = monitor.check({"teacher_top_class_share": COLLAPSE_SHARE, "num_classes": 10}, 2)
    assert "collapse" in warning and "50% of generated samples" in warning
    assert monitor.check({"teacher_top_class_share": 0.9, "num_classes": 10}, 3) == []  # still on: said once
    assert monitor.check({"teacher_top_class_share": 0.2, "num_classes": 10}, 4) == []
    assert len(monitor.check({"teacher_top_class_share": 0.8, "num_classes": 10}, 5)) == 1  # again after clearing
    # Two classes: half of the samples in one class is no collapse.
    assert HealthMonitor().check({"teacher_top_class_share": 0.9, "num_classes": 2}, 1) == []


def test_divergence_warning_rule():
    monitor = HealthMonitor()  # watches the remembered samples by default
    assert monitor.check({"agreement": 0.9, "agreement_memory": 0.9, "num_classes": 10}, 1) == []
    assert monitor.check({"agreement": 0.9, "agreement_memory": 0.9 - DIVERGENCE_DROP + 0.01, "num_classes": 10}, 2) == []
    (warning,) = monitor.check({"agreement": 0.9, "agreement_memory": 0.9 - DIVERGENCE_DROP, "num_classes": 10}, 3)
    assert "diverging" in warning and "90%" in warning and "remembered" in warning
    fresh = HealthMonitor(divergence_signal="agreement")
    fresh.remember({"agreement": 0.9})
    (warning,) = fresh.check({"agreement": 0.9 - DIVERGENCE_DROP, "num_classes": 10}, 2)
    assert "fresh" in warning


def test_stall_warning_rule():
    monitor = HealthMonitor()
    low = {"agreement": STALL_AGREEMENT - 0.01, "num_classes": 10}
    assert [monitor.check(low, i) for i in range(1, STALL_CHECKS)] == [[]] * (STALL_CHECKS - 1)  # too early
    (warning,) = monitor.check(low, STALL_CHECKS)
    assert "not learning" in warning
    assert monitor.check({"agreement": STALL_AGREEMENT, "num_classes": 10}, 9) == []  # learning now: cleared
    learned = HealthMonitor()
    learned.remember({"agreement": STALL_AGREEMENT + 0.05})  # a resumed run that had learned: no stall
    assert [learned.check(low, i) for i in range(2, 6)] == [[]] * 4


def test_a_stalled_student_whose_agreement_rises_gets_a_note_once():
    monitor = HealthMonitor()
    checks = [0.371, 0.25, 0.336, 0.379, 0.461, 0.508, 0.48, 0.555]  # the CIFAR-10 ResNet-20 run (v5), to iteration 400
    said = {i: monitor.new_warnings({"agreement": a, "num_classes": 10}, 50 * i) for i, a in enumerate(checks, 1)}
    assert list(said[3]) == ["stall"]
    assert [i for i, found in said.items() if "learning" in found] == [8]  # 0.555 >= 0.371 + STALL_RECOVERY
    assert "rose from 37% at the 'not learning' warning (iteration 150) to 56%" in said[8]["learning"]
    assert "learning" in NOTES and "stall" not in NOTES
    # Resumed after the warning: the note still comes, from the remembered checks.
    resumed = HealthMonitor()
    for i, a in enumerate(checks[:4], 1):
        resumed.remember({"iteration": 50 * i, "agreement": a})
    assert "learning" in resumed.new_warnings({"agreement": 0.53, "num_classes": 10}, 250)
    flat = HealthMonitor()  # never rising: no note
    assert not any("learning" in flat.new_warnings({"agreement": 0.4, "num_classes": 10}, i) for i in range(1, 20))


def test_low_diversity_warning_rule():
    """The teacher's class entropy on generated pixels at the checks of the CamVid paper-recipe run
    from the third teacher (0.08x its teacher, no class ever above 39%: the collapse rule stayed
    silent) and of the working run beside it (0.93x)."""
    from dfad.health import LOW_DIVERSITY_CHECKS, LOW_DIVERSITY_ENTROPY

    failed = [0.62, 0.56, 0.66, 0.55, 0.57, 0.58, 0.58, 0.67, 0.65, 0.62]
    working = [0.73, 0.80, 0.83, 0.84, 0.82, 0.84, 0.85, 0.84, 0.84, 0.84]
    monitor = HealthMonitor()
    said = {i: monitor.new_warnings({"teacher_class_entropy": e, "teacher_top_class_share": 0.35,
                                     "num_classes": 11, "unit": "pixels"}, 100 * i) for i, e in enumerate(failed, 1)}
    assert {i: list(found) for i, found in said.items() if found} == {LOW_DIVERSITY_CHECKS: ["low_diversity"]}
    assert "class entropy below 70% of its maximum for 2 checks" in said[2]["low_diversity"]
    assert "generated pixels" in said[2]["low_diversity"] and "total_variation" in said[2]["low_diversity"]
    fine = HealthMonitor()
    assert not any(fine.new_warnings({"teacher_class_entropy": e, "num_classes": 11}, i) for i, e in enumerate(working))
    once = HealthMonitor()  # one low check between good ones (a CIFAR-10 run's 0.45 at iteration 300): no warning
    assert not any(once.new_warnings({"teacher_class_entropy": e, "num_classes": 10}, i)
                   for i, e in enumerate([0.56, 0.73, 0.45, 0.86]))
    resumed = HealthMonitor()  # resumed after one low check: the next low one warns
    resumed.remember({"iteration": 100, "teacher_class_entropy": LOW_DIVERSITY_ENTROPY - 0.01})
    assert "low_diversity" in resumed.new_warnings({"teacher_class_entropy": 0.5, "num_classes": 11}, 200)
    two_classes = HealthMonitor()
    assert not any(two_classes.new_warnings({"teacher_class_entropy": 0.1, "num_classes": 2}, i) for i in range(3))


def test_a_diverging_student_that_recovers_gets_a_note_once():
    # Remembered-sample agreement of the CamVid dfad-priors-tv seed-1 run (table_camvid_cpu_runs,
    # third teacher), iterations 200-1,000: warned at 400, back above its best (72%) at 800.
    checks = {200: 0.654, 300: 0.719, 400: 0.506, 500: 0.698, 600: 0.687, 700: 0.694, 800: 0.812, 900: 0.829,
              1000: 0.846}
    monitor = HealthMonitor()
    said = {i: monitor.new_warnings({"agreement_memory": a, "num_classes": 11}, i) for i, a in checks.items()}
    assert {i: list(found) for i, found in said.items() if found} == {400: ["divergence"], 800: ["recovered"]}
    assert "recovered - it agrees with the teacher on 81% of remembered" in said[800]["recovered"]
    assert "warning of iteration 400: 72%" in said[800]["recovered"]
    assert "recovered" in NOTES and "divergence" not in NOTES
    # Resumed between the warning and the recovery: the note still comes, from the remembered checks.
    resumed = HealthMonitor()
    for i in (200, 300, 400, 500):
        resumed.remember({"iteration": i, "agreement_memory": checks[i]})
    assert list(resumed.new_warnings({"agreement_memory": 0.72, "num_classes": 11}, 600)) == ["recovered"]
    # Still below its best before the warning: no note.
    low = HealthMonitor()
    assert not any("recovered" in low.new_warnings({"agreement_memory": a, "num_classes": 11}, i)
                   for i, a in [(1, 0.8), (2, 0.55), (3, 0.7), (4, 0.75), (5, 0.79)])


def test_divergence_watches_the_remembered_samples_not_the_fresh_ones():
    monitor = HealthMonitor()
    monitor.remember({"agreement": 0.9, "agreement_memory": 0.95})
    assert monitor.check({"agreement": 0.5, "agreement_memory": 0.9, "num_classes": 10}, 2) == []  # fresh fell only
    (warning,) = monitor.check({"agreement": 0.9, "agreement_memory": 0.95 - DIVERGENCE_DROP, "num_classes": 10}, 3)
    assert "remembered" in warning and "95%" in warning


def test_a_run_records_health_in_metrics_summary_progress_and_report(digits_teacher, tmp_path, capsys):
    from dfad.cli import main

    out = tmp_path / "run"
    code = main(["distill", "--config", "digits", "--teacher", str(digits_teacher), "--out", str(out),
                 "distill.iterations=20", "distill.val_every=10", "distill.batch_size=32",
                 "distill.generator.args.ngf=8", "distill.sample_grid_size=4"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    validated = [r for r in records if "accuracy" in r]
    assert [r["iteration"] for r in validated] == [10, 20]
    assert all(0.0 <= r["agreement"] <= 1.0 and 0.1 <= r["teacher_top_class_share"] <= 1.0 for r in validated)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agreement"] == validated[-1]["agreement"] and isinstance(summary["health_warnings"], list)
    assert "agreement=" in capsys.readouterr().err  # the progress bar shows it
    assert "Health (label-free)" in (out / "report.html").read_text()


def test_memory_agreement_starts_at_the_second_check_and_keeps_the_last_checks():
    from dfad.health import MEMORY_CHECKS, SampleMemory

    teacher, generator = _networks()
    teacher.eval()
    student = copy.deepcopy(teacher)
    memory = SampleMemory()
    noise = health_noise(8, seed=0, samples=40)
    first = measure_health(teacher, student, generator, noise, memory=memory)
    assert "agreement_memory" not in first and len(memory.batches) == 1
    assert memory.batches[0].shape == (32, 1, 8, 8) and memory.batches[0].dtype == torch.float16
    second = measure_health(teacher, student, generator, noise, memory=memory)
    assert second["agreement_memory"] == 1.0  # a copy of the teacher agrees everywhere
    other = measure_health(teacher, ConstantClass(10, 3), generator, noise, memory=memory)
    t = teacher(memory.images()[:64].float()).argmax(1)  # the two remembered checks
    assert other["agreement_memory"] == pytest.approx(float((t == 3).double().mean()))
    for _ in range(MEMORY_CHECKS + 2):
        measure_health(teacher, student, generator, noise, memory=memory)
    assert len(memory.batches) == MEMORY_CHECKS


def test_memory_stays_under_its_byte_budget_and_round_trips():
    from dfad.health import SampleMemory

    memory = SampleMemory(checks=8, per_check=32, max_bytes=2**20)
    for _ in range(9):
        memory.add(torch.randn(64, 3, 128, 128))
    assert sum(b.numel() * 2 for b in memory.batches) <= 2**20 and len(memory.batches) == 8
    restored = SampleMemory()
    restored.load_state_dict(memory.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(memory.batches, restored.batches))
