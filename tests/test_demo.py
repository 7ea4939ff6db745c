"""`dfad demo`: trains a teacher once, reuses it from the cache, prints the comparison table."""
from __future__ import annotations

import json

import pytest

from dfad.cli import main

FAST = ["teacher.iterations=100", "distill.iterations=20", "distill.val_every=10"]


@pytest.mark.slow
def test_demo_prints_the_table_and_reuses_the_cached_teacher(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "first"), "--quiet", *FAST]) == 0
    first = capsys.readouterr().out
    assert "training the teacher" in first
    for row in ("test accuracy", "parameters", "MACs / image", "FLOPs / image", "wall time",
                "student / teacher accuracy"):
        assert row in first
    assert main(["demo", "--out", str(tmp_path / "second"), "--quiet", *FAST]) == 0
    second = capsys.readouterr().out
    assert "reusing cached teacher" in second and "(cached)" in second
    a = json.loads((tmp_path / "first" / "summary.json").read_text())
    b = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert a["teacher_accuracy"] == b["teacher_accuracy"] and not a["teacher_cached"] and b["teacher_cached"]
    assert (tmp_path / "second" / "demo_table.txt").read_text().strip() in second
