"""report.html: one self-contained page per run (figures embedded as PNG data URIs).

For a distillation run: the teacher-vs-student table (metric, parameters, FLOPs, CPU latency per
image measured here), learning curves against iterations and wall time, generated samples over
training, and for classification the per-class accuracy and the class distribution of the
teacher's predictions on generated samples, with a warning when one class dominates (the
generator collapsed onto it). A teacher-training run gets its table, curves and samples.
`dfad report RUN_DIR` rebuilds the page from the run folder.
"""
from __future__ import annotations

import base64
import html
import io
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from .engine import read_metrics
from .errors import DfadError
from .health import COLLAPSE_SHARE  # one collapse rule for the run's warnings and the report

PREDICTION_SAMPLES = 512


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: render to files only
    import matplotlib.pyplot as plt

    return plt


def cpu_latency_ms(model: nn.Module, input_shape: Sequence[int], repeats: int = 20) -> float:
    """Median wall time of one image's forward pass on this machine's CPU, in milliseconds."""
    import copy

    model = copy.deepcopy(model).cpu().eval()
    x = torch.randn(1, *input_shape)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            start = time.perf_counter()
            model(x)
            if i >= 3:  # warm-up: first calls allocate and pick kernels
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def curves_figure(history: list[dict[str, Any]], metric: str):
    """Losses and the validation metric against iterations (top) and wall time (bottom)."""
    plt = _pyplot()
    losses = sorted({k for r in history for k in r if k.endswith("_loss") or k == "loss"})
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    for row, (x_key, x_label) in enumerate((("iteration", "iteration"), ("elapsed_seconds", "wall time (s)"))):
        loss_ax, metric_ax = axes[row]
        for name in losses:
            points = [(r[x_key], r[name]) for r in history if name in r and x_key in r]
            if points:
                loss_ax.plot(*zip(*points), label=name.replace("_", " "))
        loss_ax.set_xlabel(x_label)
        loss_ax.set_ylabel("loss")
        loss_ax.legend(loc="best", fontsize=8)
        loss_ax.grid(alpha=0.3)
        points = [(r[x_key], r[metric]) for r in history if r.get(metric) is not None and x_key in r]
        if points:
            metric_ax.plot(*zip(*points), marker="o", markersize=3, color="tab:green")
        metric_ax.set_xlabel(x_label)
        metric_ax.set_ylabel(f"validation {metric}")
        metric_ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def health_figure(history: list[dict[str, Any]], metric: str):
    """The label-free signals against iterations, beside the validation metric when there is one:
    does agreement with the teacher track what labelled data would show?"""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for key, label, style in (("agreement", "agreement with the teacher (fresh generated samples)", "-o"),
                              ("agreement_confident", "agreement where the teacher is sure (fresh samples)", "-D"),
                              ("agreement_miou", "mIoU with the teacher's predictions as labels (fresh pixels)", "-v"),
                              ("agreement_memory", "agreement with the teacher (remembered samples)", "-^"),
                              ("teacher_top_class_share", "teacher's top-class share", "--"),
                              (metric, f"validation {metric} (labelled data)", "-s")):
        points = [(r["iteration"], r[key]) for r in history if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), style, markersize=3, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def per_class_figure(per_class: dict[str, list[float]], metric: str):
    plt = _pyplot()
    classes = len(next(iter(per_class.values())))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * classes + 2), 3.5))
    width = 0.8 / len(per_class)
    for i, (who, values) in enumerate(per_class.items()):
        ax.bar([c + i * width for c in range(classes)], values, width, label=who)
    ax.set_xlabel("class")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def prediction_figure(shares: list[float]):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(shares) + 2), 3.2))
    ax.bar(range(len(shares)), shares, color="tab:purple")
    ax.axhline(1 / len(shares), color="gray", linestyle="--", label="uniform")
    ax.set_xlabel("class predicted by the teacher")
    ax.set_ylabel("share of generated samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def teacher_prediction_shares(teacher: nn.Module, generator: nn.Module, nz: int, num_classes: int, device,
                              samples: int = PREDICTION_SAMPLES, seed: int = 0) -> list[float]:
    """How often the teacher predicts each class on `samples` generated images."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(num_classes, dtype=torch.long)
    modes = teacher.training, generator.training
    teacher.eval()
    generator.eval()
    try:
        with torch.inference_mode():
            for start in range(0, samples, 128):
                z = torch.randn(min(128, samples - start), nz, generator=gen).to(device)
                predicted = teacher(generator(z)).argmax(1).cpu()
                counts += torch.bincount(predicted, minlength=num_classes)
    finally:
        teacher.train(modes[0])
        generator.train(modes[1])
    return (counts.double() / counts.sum()).tolist()


def collapse_warning(shares: list[float]) -> Optional[str]:
    top = max(range(len(shares)), key=shares.__getitem__)
    if len(shares) >= 3 and shares[top] >= COLLAPSE_SHARE:
        return (f"Mode collapse: the teacher assigns {shares[top]:.0%} of generated samples to class {top} "
                f"(uniform: {1 / len(shares):.0%}). The generator explores few classes; try a lower generator "
                f"learning rate or a larger batch.")
    return None


def _sample_grids(samples: Path, keep: int = 6) -> list[tuple[str, Path]]:
    """Up to `keep` grids spread over training, first and last included."""
    grids = sorted(samples.glob("iter_*.png"))
    if len(grids) > keep:
        step = (len(grids) - 1) / (keep - 1)
        grids = [grids[round(i * step)] for i in range(keep)]
    return [(f"iteration {int(g.stem.split('_')[1])}", g) for g in grids]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .grids { display: flex; flex-wrap: wrap; gap: 12px; }
.grids figure { margin: 0; } .grids img { width: 256px; image-rendering: pixelated; } figcaption { font-size: 0.85em; color: #555; text-align: center; }
.warning { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em 1em; }
.note { color: #555; font-size: 0.9em; }
"""


def render(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(name)}</h2>\n{content}\n" for name, content in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n")


def _models_section(summary: dict, metric: str, distillation: bool, teacher, student, input_shape) -> str:
    """The models side by side: metric, size, FLOPs and CPU latency, with the run's facts."""
    rows = []
    who = [("teacher", teacher)] + ([("student", student)] if distillation else [])
    for name, model in who:
        latency = cpu_latency_ms(model, input_shape) if model is not None and input_shape else None
        best = summary.get(f"best_{name}_{metric}") if name == "student" else None
        rows.append([f"{name}: {summary.get(f'{name}_model', '-')}", summary.get(f"{name}_{metric}"), best,
                     summary.get(f"{name}_params"), summary.get(f"{name}_flops"), latency])
    table = _table(["model", metric, f"best {metric}", "parameters", "FLOPs / image", "CPU latency (ms / image)"],
                   rows)
    facts = (f"<p class=\"note\">{summary.get('iterations', '-')} iterations in {_fmt(summary.get('wall_seconds'), 1)} s"
             f"{', method ' + html.escape(str(summary['method'])) if 'method' in summary else ''}; "
             f"latency: median of 20 single-image forward passes on this machine's CPU "
             f"({torch.get_num_threads()} threads). Machine: "
             f"{html.escape(str((summary.get('machine') or {}).get('cpu', '-')))}; "
             f"command: <code>{html.escape(str(summary.get('command', '-')))}</code></p>")
    if distillation and summary.get(f"student_{metric}") is None:
        facts += "<p class=\"note\">No validation data was given: no metric was measured.</p>"
    return table + facts


def write_report(run_dir: str | Path, *, teacher: Optional[nn.Module] = None, student: Optional[nn.Module] = None,
                 generator: Optional[nn.Module] = None, nz: Optional[int] = None, per_class: Optional[dict] = None,
                 device="cpu") -> Path:
    """Write RUN_DIR/report.html from the run folder plus, when given, the live models (the end of
    a run passes them; `dfad report` rebuilds them from the checkpoints)."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise DfadError(f"{run_dir} holds no finished run (no summary.json); give a run folder of "
                        f"`dfad distill` or `dfad train-teacher`")
    summary = json.loads(summary_path.read_text())
    history = read_metrics(run_dir)
    metric = summary.get("metric", "accuracy")
    distillation = f"student_{metric}" in summary
    input_shape = (summary.get("input") or {}).get("input_shape")
    sections = [("Models", _models_section(summary, metric, distillation, teacher, student, input_shape))]
    if history:
        sections.append(("Learning curves", f"<img alt=\"learning curves\" src=\"{_figure_uri(curves_figure(history, metric))}\">"))
    if any("agreement" in r for r in history):
        warnings_html = "".join(f"<div class=\"warning\">{html.escape(w)}</div>"
                                for w in summary.get("health_warnings") or [])
        note = ("<p class=\"note\">Measured without labels at every validation: agreement is the share of "
                "fixed fresh generated samples (and, remembered, on samples kept from the last checks) on which "
                "student and teacher predict the same class; the teacher's "
                "top-class share shows whether the generator explores every class. "
                f"{'No health warning was raised.' if not summary.get('health_warnings') else ''}</p>")
        sections.append(("Health (label-free)", warnings_html + note +
                         f"<img alt=\"health\" src=\"{_figure_uri(health_figure(history, metric))}\">"))
    grids = _sample_grids(run_dir / "samples")
    if grids:
        figures = "".join(f"<figure><img alt=\"samples, {label}\" src=\"{_file_uri(path)}\"><figcaption>{label}"
                          f"</figcaption></figure>" for label, path in grids)
        caption = "Generated samples" if distillation else "Training images"
        sections.append((f"{caption} over training", f"<div class=\"grids\">{figures}</div>"))
    if per_class:
        sections.append((f"Per-class {metric} on the test split",
                         f"<img alt=\"per-class {metric}\" src=\"{_figure_uri(per_class_figure(per_class, metric))}\">"))
    if distillation and metric == "accuracy" and teacher is not None and generator is not None and nz:
        num_classes = (summary.get("input") or {}).get("num_classes")
        shares = teacher_prediction_shares(teacher, generator, nz, num_classes, device)
        warning = collapse_warning(shares)
        content = (f"<div class=\"warning\">{html.escape(warning)}</div>" if warning else
                   "<p class=\"note\">No class dominates the teacher's predictions on generated samples.</p>")
        content += f"<img alt=\"teacher predictions\" src=\"{_figure_uri(prediction_figure(shares))}\">"
        sections.append((f"Teacher's predictions on {PREDICTION_SAMPLES} generated samples", content))
    title = (f"{str(summary.get('method', 'dfad')).upper()} distillation: {summary.get('teacher_model', '?')} -> "
             f"{summary.get('student_model', '?')}" if distillation else
             f"dfad teacher training: {summary.get('teacher_model', '?')}")
    path = run_dir / "report.html"
    path.write_text(render(title, sections))
    return path


def try_write_report(run_dir: str | Path, **kwargs) -> Optional[Path]:
    """At the end of a run: a report that fails to render warns instead of failing the run."""
    try:
        return write_report(run_dir, **kwargs)
    except Exception as exc:  # the run itself is done and saved
        warnings.warn(f"report.html could not be written ({type(exc).__name__}: {exc}); "
                      f"rebuild it with `dfad report {run_dir}`", stacklevel=2)
        return None
