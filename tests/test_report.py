"""report.html: written by every run, rebuilt by `dfad report`, rendered by a real browser."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dfad.cli import main
from dfad.config import load_config
from dfad.report import collapse_warning
from dfad.runs import distill

IMAGE_SOURCES = re.compile(r'<img alt="([^"]*)" src="([^"]+)"')


@pytest.fixture(scope="module")
def digits_run(digits_teacher, tmp_path_factory) -> Path:
    cfg = load_config("digits", ["distill.iterations=20", "distill.val_every=10", "distill.batch_size=32",
                                 "distill.generator.args.ngf=8", "distill.sample_grid_size=16"])
    cfg.teacher.checkpoint = str(digits_teacher)
    out = tmp_path_factory.mktemp("report") / "run"
    distill(cfg, out, progress=False)
    return out


def images_of(page: str, folder: Path) -> dict[str, bytes]:
    """Every <img> of the page by its alt text, decoded (data URI) or read (relative file)."""
    found = {}
    for alt, src in IMAGE_SOURCES.findall(page):
        if src.startswith("data:image/png;base64,"):
            found[alt] = base64.b64decode(src.split(",", 1)[1])
        else:
            found[alt] = (folder / src).read_bytes()
    return found


@pytest.mark.slow
def test_every_distillation_writes_a_complete_self_contained_report(digits_run):
    page = (digits_run / "report.html").read_text()
    images = images_of(page, digits_run)
    assert all(data.startswith(b"\x89PNG") and len(data) > 500 for data in images.values())
    assert {"learning curves", "per-class accuracy", "teacher predictions"} <= set(images)
    assert sum(alt.startswith("samples, iteration") for alt in images) == 2  # iterations 10 and 20
    for text in ("CPU latency (ms / image)", "teacher: convnet(width=32)", "student: convnet(width=16)",
                 "FLOPs / image", "Teacher&#x27;s predictions on 512 generated samples"):
        assert text in page
    latencies = re.findall(r"<td>(\d+\.\d+)</td></tr>", page)
    assert len(latencies) == 2 and all(0 < float(v) < 1000 for v in latencies)


def test_teacher_training_runs_get_a_report_too(digits_teacher):
    page = (digits_teacher.parent / "report.html").read_text()
    assert "dfad teacher training" in page and "learning curves" in page


@pytest.mark.slow
def test_dfad_report_rebuilds_the_page_from_the_run_folder(digits_run, capsys):
    report = digits_run / "report.html"
    before = report.read_text()
    report.unlink()
    assert main(["report", str(digits_run)]) == 0
    assert f"wrote {report}" in capsys.readouterr().out
    after = report.read_text()
    assert set(images_of(after, digits_run)) == set(images_of(before, digits_run))


def test_report_of_a_folder_without_a_run_names_the_fix(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a finished dfad run" in capsys.readouterr().err


def test_collapse_warning_flags_one_dominant_class_only():
    assert "Mode collapse" in collapse_warning([0.7, 0.1, 0.1, 0.1])
    assert collapse_warning([0.25] * 4) is None
    assert collapse_warning([0.6, 0.4]) is None  # two classes: a 60/40 split is no collapse


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_report_renders_in_headless_chromium(digits_run, tmp_path):
    """The browser loads the page and decodes every embedded image (naturalWidth > 0)."""
    probe = tmp_path / "probe.html"
    page = (digits_run / "report.html").read_text()
    check = ("<script>window.onload = () => { const imgs = [...document.images]; document.title = "
             "'images ' + imgs.length + ' decoded ' + imgs.filter(i => i.naturalWidth > 0).length; };</script>")
    probe.write_text(page.replace("</body>", check + "</body>"))
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>images (\d+) decoded (\d+)</title>", done.stdout)
    assert title, done.stderr[-2000:]
    total, decoded = map(int, title.groups())
    assert total == 5 and decoded == total  # curves, 2 sample grids, per-class, predictions
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400",
                    f"--screenshot={shot}", (digits_run / "report.html").as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000
