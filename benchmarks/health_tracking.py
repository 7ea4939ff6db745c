"""Does the label-free health signal track real accuracy, and are its warnings right? For each
finished run folder with labelled validations:

- the rank (Spearman) and linear (Pearson) correlation between each agreement signal
  (`agreement`: fresh generated samples; `agreement_memory`: samples remembered from the last
  checks) and the validation metric over the run's validations;
- the warnings today's rules (`dfad.health.HealthMonitor`) raise when replayed over the run's
  records, each judged against the labelled metric:
    true alarm   the run ends below 0.9 x the teacher's metric, or the metric falls by at least
                 DROP below its best within the next two validations after the warning;
    false alarm  neither: the run ends well and the metric did not fall;
  and missed failures: runs that end below 0.5 x the teacher's metric without any warning.

    python benchmarks/health_tracking.py RUN [RUN ...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import warnings

import numpy as np

from dfad.health import NOTES, HealthMonitor

DROP = 0.02  # a fall of the validation metric that counts as real
GOOD = 0.9  # a student at >= 0.9 x its teacher's metric ended well
FAILED = 0.5  # a student below 0.5 x its teacher's metric failed: a run a warning must not miss
# The agreements analysed (agreement_miou: segmentation runs made since it was added).
SIGNALS = ("agreement", "agreement_memory", "agreement_miou")
TEACHER_FACTS = Path(__file__).resolve().parents[1] / "results" / "foreign" / "teachers"


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort()
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def correlations(x: list[float], y: list[float]) -> tuple[float, float]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pearson = float(np.corrcoef(a, b)[0, 1])
        spearman = float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])
    return spearman, pearson


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _teacher_metric(run: Path, summary: dict, metric: str):
    if summary.get(f"teacher_{metric}") is not None:
        return summary[f"teacher_{metric}"]
    foreign = run / "foreign.json"  # runs of results/foreign/distill_teacher.py (validated through the API)
    if foreign.is_file():
        teacher = json.loads(foreign.read_text()).get("teacher")
        if isinstance(teacher, dict):
            return teacher.get("test_accuracy")
    checkpoint = (summary.get("teacher_checkpoint") or _config_teacher_checkpoint(run) or "")
    # A teacher of results/foreign/train_teachers.py: its facts file, by the teacher file's name.
    facts = TEACHER_FACTS / f"{Path(checkpoint).stem}.json"
    if checkpoint and facts.is_file():
        return json.loads(facts.read_text()).get("test_accuracy")
    # A teacher trained by `dfad train-teacher`: its run folder's summary.
    teacher_summary = Path(checkpoint).parent / "summary.json"
    if checkpoint and teacher_summary.is_file():
        return json.loads(teacher_summary.read_text()).get(f"teacher_{metric}")
    return None


def _config_teacher_checkpoint(run: Path):
    import yaml

    config = run / "config.yaml"
    return yaml.safe_load(config.read_text())["teacher"].get("checkpoint") if config.is_file() else None


def judge(kind: str, points: list[tuple[int, float]], warning_at: int, teacher: float | None) -> str:
    """'true' or 'false' for a warning of `kind` raised at iteration `warning_at`, by its claim:
    divergence (the student is getting worse): the metric falls DROP below its best so far within
    the next two validations; stall (the student is not learning): the metric at the warning is
    below half the teacher's; collapse (the student learns little of the other classes): the run
    ends below GOOD x the teacher's metric, or the metric falls as for divergence."""
    best = max(m for i, m in points if i <= warning_at)
    now = [m for i, m in points if i <= warning_at][-1]
    after = [m for i, m in points if i > warning_at][:2]
    falls = bool(after) and min(after) <= best - DROP
    if kind == "divergence":
        return "true" if falls else "false"
    if kind == "stall":
        return "true" if teacher is not None and now < 0.5 * teacher else "false"
    ends_badly = teacher is not None and points[-1][1] < GOOD * teacher
    return "true" if ends_badly or falls else "false"


def analyse(run: Path, divergence_signal: str = "agreement_memory") -> dict:
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    metric = summary.get("metric", "accuracy")
    records = _records(run)
    validations = [r for r in records if r.get(metric) is not None]
    teacher = _teacher_metric(run, summary, metric)
    row: dict = {"run": str(run), "metric": metric, "validations": len(validations), f"teacher_{metric}": teacher,
                 f"final_{metric}": validations[-1][metric] if validations else None}
    for signal in SIGNALS:
        pairs = [(r[signal], r[metric]) for r in validations if r.get(signal) is not None]
        if pairs:
            spearman, pearson = correlations(*zip(*pairs))
            row[signal] = {"spearman": round(spearman, 3), "pearson": round(pearson, 3), "points": len(pairs)}
    row["points"] = [{"iteration": r["iteration"], "agreement": r.get("agreement"),
                      "agreement_memory": r.get("agreement_memory"), "agreement_miou": r.get("agreement_miou"),
                      "teacher_top_class_share": r.get("teacher_top_class_share"),
                      "teacher_class_entropy": r.get("teacher_class_entropy"),
                      "fraction_of_teacher": r[metric] / teacher}
                     for r in validations if teacher] if teacher else []
    monitor = HealthMonitor(divergence_signal=divergence_signal)
    classes = (summary.get("input") or {}).get("num_classes") or 10
    points = [(r["iteration"], r[metric]) for r in validations]
    row["warnings"], row["notes"] = [], []
    for r in records:
        if r.get("agreement") is None:
            continue
        for kind in monitor.new_warnings({**r, "num_classes": classes}, r["iteration"]):
            if kind in NOTES:  # good news about an earlier warning: neither an alarm nor a catch
                row["notes"].append({"iteration": r["iteration"], "kind": kind})
                continue
            row["warnings"].append({"iteration": r["iteration"], "kind": kind,
                                    "verdict": judge(kind, points, r["iteration"], teacher) if points else "unknown"})
    final = points[-1][1] if points else None
    row["ended_below_0.9x_teacher"] = bool(teacher is not None and final is not None and final < GOOD * teacher)
    failed = teacher is not None and final is not None and final < FAILED * teacher
    row["failed"] = bool(failed)
    row["missed"] = bool(failed and not row["warnings"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json")
    parser.add_argument("--divergence-signal", default="agreement_memory", choices=["agreement", "agreement_memory"],
                        help="which agreement the divergence rule watches in the replay")
    args = parser.parse_args()
    rows = [analyse(run, args.divergence_signal) for run in args.runs if (run / "metrics.jsonl").is_file()]
    for row in rows:
        signals = ", ".join(f"{s} Spearman {row[s]['spearman']:+.2f}" for s in SIGNALS if s in row)
        warnings = ", ".join(f"{w['kind']}@{w['iteration']} ({w['verdict']})" for w in row["warnings"]) or "none"
        print(f"{row['run']}: final {row['final_' + row['metric']]} (teacher {row['teacher_' + row['metric']]}); "
              f"{signals}; warnings: {warnings}{'; MISSED' if row['missed'] else ''}")
    alarms = [w for row in rows for w in row["warnings"]]
    false = sum(w["verdict"] == "false" for w in alarms)
    total = {"runs": len(rows), "warnings": len(alarms), "false_alarms": false,
             "runs_with_a_false_alarm": sum(any(w["verdict"] == "false" for w in r["warnings"]) for r in rows),
             "runs_ending_below_0.9x": sum(r["ended_below_0.9x_teacher"] for r in rows),
             "failed_runs": sum(r["failed"] for r in rows),
             "missed": sum(r["missed"] for r in rows)}
    for signal in SIGNALS:
        values = [r[signal]["spearman"] for r in rows if signal in r and not np.isnan(r[signal]["spearman"])]
        if values:
            total[f"{signal}_spearman_mean"] = round(float(np.mean(values)), 3)
            total[f"{signal}_spearman_runs"] = len(values)
        # Across runs: every validation of every run with a known teacher, agreement against the
        # student's metric as a fraction of its teacher's - what a user reading agreement needs.
        pooled = [(p[signal], p["fraction_of_teacher"]) for r in rows for p in r["points"] if p.get(signal) is not None]
        if len(pooled) >= 3:
            spearman, pearson = correlations(*zip(*pooled))
            bins = {}
            for low, high in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)):
                inside = [f for a, f in pooled if low <= a < high]
                if inside:
                    bins[f"{low:.1f}-{min(high, 1.0):.1f}"] = {"validations": len(inside),
                                                              "mean_fraction_of_teacher": round(float(np.mean(inside)), 3),
                                                              "min": round(min(inside), 3), "max": round(max(inside), 3)}
            total[f"{signal}_pooled"] = {"validations": len(pooled), "spearman": round(spearman, 3),
                                         "pearson": round(pearson, 3), "bins": bins}
    print(json.dumps(total, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"total": total, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
