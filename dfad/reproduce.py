"""`dfad reproduce TABLE`: run the rows of one of the paper's tables and write it beside the paper.

A table is data (`dfad/configs/tables/NAME.yaml`): a base config, and per row the overrides that
make it (method, method arguments, data) and the paper's figure. Runs go to OUT/TABLE/ROW/seedS
and are reused when finished or resumed when not (the engine's auto-resume), so the command can
be repeated, interrupted and extended with more seeds or rows.
"""
from __future__ import annotations

import json
import shlex
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from . import run_identity, runs
from .config import SHIPPED_CONFIGS, load_config, suggest
from .engine.run_dir import holds_run
from .errors import DfadError
from .provenance import provenance

TABLES = SHIPPED_CONFIGS / "tables"


@dataclass
class Row:
    name: str
    paper: Optional[float]
    overrides: list[str] = field(default_factory=list)
    kind: str = "distill"  # distill | teacher
    note: str = ""


@dataclass
class Table:
    name: str
    title: str
    config: str
    rows: list[Row]
    note: str = ""


def available_tables() -> list[str]:
    return sorted(p.stem for p in TABLES.glob("*.yaml"))


def load_table(name: str) -> Table:
    """A shipped table by name, or a table YAML file by path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else TABLES / f"{name}.yaml"
    if name.endswith((".yaml", ".yml")) and not path.is_file():
        raise DfadError(f"table file {path} does not exist")
    if not path.is_file():
        names = available_tables()
        raise DfadError(f"unknown table '{name}'{suggest(name, names)}; choose one of: {', '.join(names)}")
    data = yaml.safe_load(path.read_text())
    rows = [Row(name=row_name, paper=spec.get("paper"), overrides=list(spec.get("overrides", [])),
                kind=spec.get("kind", "distill"), note=spec.get("note", ""))
            for row_name, spec in data["rows"].items()]
    return Table(name=path.stem, title=data["title"], config=data["config"], rows=rows, note=data.get("note", ""))


def _row_config(table: Table, row: Row, seed: int, budget: Optional[int], data_root: Optional[str],
                teacher_path: Optional[Path], extra: Sequence[str] = ()):
    overrides = [*row.overrides, *extra, f"seed={seed}"]
    if budget is not None and row.kind == "distill":
        overrides.append(f"distill.iterations={budget}")
    cfg = load_config(table.config, overrides)
    if data_root:
        cfg.data.root = data_root
    if teacher_path is not None:
        cfg.teacher.checkpoint = str(teacher_path)
    return cfg, overrides


def _reuse_or_redo(run: Path, cfg, kind: str, iterations: int, force: bool) -> tuple[Optional[dict], bool]:
    """(the summary of a finished run in `run` made with this config, or None when it must (still)
    run; whether to start it over). The config is compared once, here.

    A finished run made with another config (the table or its config changed since) is refused
    unless `force`, which redoes it: reusing it would put a stale figure in the table. An
    unfinished one is redone under `force`, else left to the runner (which refuses it)."""
    if not holds_run(run):
        return None, False
    differing = run_identity.config_differences(run, cfg, kind)
    summary = run / "summary.json"
    if differing:
        if force:
            return None, True
        if summary.is_file():
            raise DfadError(f"{run} holds a finished run made with another config "
                            f"({run_identity.describe_differences(differing)}); pass --force to redo it, or another --out")
        return None, False
    if summary.is_file():
        data = json.loads(summary.read_text())
        if data.get("iterations") == iterations or data.get("stopped_at_target") or data.get("stopped_by_time_limit"):
            return data, False
    return None, False


def _row_command(table: Table, row: Row, seeds: int, budget: Optional[int], extra: Sequence[str] = ()) -> str:
    parts = ["dfad", "reproduce", table.name, "--rows", row.name, "--seeds", str(seeds)]
    if budget is not None:
        parts += ["--budget", str(budget)]
    return " ".join([*parts, *(shlex.quote(o) for o in extra)])


def _single_run_command(table: Table, row: Row, overrides: list[str], out: Path, teacher: Optional[Path]) -> str:
    command = "train-teacher" if row.kind == "teacher" else "distill"
    parts = ["dfad", command, "--config", table.config, "--data-root", "DATA", "--out", str(out)]
    if teacher is not None:
        parts += ["--teacher", str(teacher)]
    return " ".join([*parts, *(shlex.quote(o) for o in overrides)])


def _chosen_rows(table, rows: Optional[list[str]]) -> list:
    """The table's rows named in `rows` (all when None), in the table's order."""
    if not rows:
        return table.rows
    known = [r.name for r in table.rows]
    for name in rows:
        if name not in known:
            raise DfadError(f"table '{table.name}' has no row '{name}'{suggest(name, known)}; rows: {', '.join(known)}")
    return [r for r in table.rows if r.name in rows]


def _seeds_per_row(rows: Optional[list[str]]) -> tuple[Optional[list[str]], dict[str, int]]:
    """`ROW:N` in `rows` gives that row N seeds instead of --seeds (a teacher row with one seed beside
    distillation rows with two); returns the plain row names and the counts given."""
    if not rows:
        return rows, {}
    names, counts = [], {}
    for entry in rows:
        name, _, count = entry.partition(":")
        if count:
            if not count.isdigit() or int(count) < 1:
                raise DfadError(f"--rows entry '{entry}': the seed count after ':' must be a whole number >= 1, "
                                f"e.g. {name}:2")
            counts[name] = int(count)
        names.append(name)
    return names, counts


def _row_record(table, row, values: list, row_runs: list, seeds: int, budget: Optional[int],
                extra: Sequence[str] = ()) -> dict[str, Any]:
    return {"row": row.name, "paper": row.paper, "note": row.note, "values": values,
            "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "seeds": len(values), "budget_iterations": budget if row.kind == "distill" else None,
            "rerun": _row_command(table, row, seeds, budget, extra), "runs": row_runs}


def _distill_run(table_name: str, row_name: str, seed: int, cfg, run: Path, force: bool, progress: bool) -> dict:
    """The summary of the row's run for this seed: reused when finished, else run (or resumed)."""
    summary, redo = _reuse_or_redo(run, cfg, "distill", cfg.distill.iterations, force)
    if summary is None:
        print(f"[{table_name}] {row_name} seed {seed} -> {run}"
              f"{' (redoing: config changed)' if redo else ' (resuming)' if holds_run(run) else ''}")
        summary = runs.distill(cfg, run, force=redo, progress=progress)
    return summary


def _run_facts(summary: dict, best) -> dict[str, Any]:
    return {"best_iteration": summary.get("best_iteration") if best is not None else None,
            "iterations": summary.get("iterations"), "wall_seconds": summary.get("wall_seconds"),
            "machine": summary.get("machine")}


def reproduce(table_name: str, *, out: str | Path, rows: Optional[list[str]] = None, seeds: int = 2,
              budget: Optional[int] = None, data_root: Optional[str] = None, results: Optional[str | Path] = None,
              force: bool = False, progress: bool = True, only_seed: Optional[int] = None,
              overrides: Sequence[str] = ()) -> dict[str, Any]:
    """`only_seed`: run that one seed of each row (rows and seeds spread over processes or machines
    sharing `out`); a later call with `seeds` reuses the finished runs and writes the table.
    `overrides`: config overrides for every row after the table's own (e.g. `device=cuda`)."""
    if only_seed is not None and results:
        raise DfadError("--only-seed runs one seed and writes no table: drop --results, and render the table "
                        "with --seeds N once every seed has run")
    table = load_table(table_name)
    rows, seeds_given = _seeds_per_row(rows)
    chosen = _chosen_rows(table, rows)
    extra = tuple(overrides)
    origin = provenance()
    root = Path(out) / table.name
    budget_label = "paper-budget" if budget is None else f"budget-{budget}"
    teacher_row = next((r for r in table.rows if r.kind == "teacher"), Row("teacher", None, kind="teacher"))

    def teacher_run(seed: int) -> Path:
        run = root / teacher_row.name / f"seed{seed}"
        cfg, _ = _row_config(table, teacher_row, seed, None, data_root, None, extra)
        finished, redo = _reuse_or_redo(run, cfg, "teacher", cfg.teacher.iterations, force)
        if finished is None:
            print(f"[{table.name}] training teacher seed {seed} -> {run}")
            runs.train_teacher(cfg, run, force=redo, progress=progress)
        return run / "teacher.pt"

    records = []
    for row in chosen:
        values, row_runs = [], []
        row_seeds = seeds_given.get(row.name, seeds)
        for seed in (range(row_seeds) if only_seed is None else [only_seed]):
            # Teachers are shared by every budget; distillation runs are kept apart per budget.
            run = (root / row.name if row.kind == "teacher" else root / budget_label / row.name) / f"seed{seed}"
            started = time.perf_counter()
            if row.kind == "teacher":
                teacher_run(seed)
                summary = json.loads((run / "summary.json").read_text())
                value, best = summary[f"teacher_{summary.get('metric', 'accuracy')}"], None
                _, run_overrides = _row_config(table, row, seed, None, data_root, None, extra)
                teacher = None
            else:
                teacher = teacher_run(0)  # every distillation row learns from the same teacher
                cfg, run_overrides = _row_config(table, row, seed, budget, data_root, teacher, extra)
                summary = _distill_run(table.name, row.name, seed, cfg, run, force, progress)
                value = summary[f"student_{summary.get('metric', 'accuracy')}"]
                best = summary.get(f"best_student_{summary.get('metric', 'accuracy')}")
            values.append(value)
            row_runs.append({"seed": seed, "run": str(run), "value": value, "best": best, **_run_facts(summary, best),
                             "this_call_seconds": round(time.perf_counter() - started, 1),
                             "command": _single_run_command(table, row, run_overrides, run, teacher)})
        records.append(_row_record(table, row, values, row_runs, row_seeds, budget, extra))
    result = {"table": table.name, "title": table.title, "config": table.config, "note": table.note,
              "budget_iterations": budget, "rows": records, **origin}
    if results:
        write_results(result, Path(results))
    print(render_markdown(result))
    return result


def render_markdown(result: dict[str, Any]) -> str:
    budget = result["budget_iterations"]
    lines = [f"# {result['title']}", ""]
    if result.get("note"):
        lines += [result["note"], ""]
    lines += [f"Distillation budget: {'the config' + chr(39) + 's iterations (paper)' if budget is None else f'{budget} iterations per run (scaled for CPU)'}; "
              f"mean ± std over seeds; table written at git {result.get('git_commit')} with torch "
              f"{result['machine']['torch']} (each run's machine below).", "",
              "| row | ours | seeds | paper | note | rerun |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        paper = "—" if r["paper"] is None else f"{r['paper']:.3f}"
        ours = f"{r['mean']:.4f} ± {r['std']:.4f}" if r["seeds"] > 1 else f"{r['mean']:.4f}"
        lines.append(f"| {r['row']} | {ours} | {r['seeds']} | {paper} | {r['note']} | "
                     f"`{r['rerun']}` |")
    lines += ["", "Single runs (values, wall time, command):", ""]
    for r in result["rows"]:
        for run in r["runs"]:
            best = (f" (best {run['best']:.4f} at it {run['best_iteration']})"
                    if run.get("best") is not None and run["best"] != run["value"] else "")
            lines.append(f"- {r['row']} seed {run['seed']}: {run['value']:.4f}{best}, {run['iterations']} it, "
                         f"{run['wall_seconds']} s{_machine_words(run.get('machine'))} — `{run['command']}`")
    return "\n".join(lines) + "\n"


def _machine_words(machine: Optional[dict]) -> str:
    if not machine:
        return ""
    threads = machine.get("torch_threads")
    where = machine.get("cuda") or f"{machine.get('cpu')}, {threads} thread{'' if threads == 1 else 's'}"
    return f" ({where})"


def write_results(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{result['table']}.json").write_text(json.dumps(result, indent=2) + "\n")
    (folder / f"{result['table']}.md").write_text(render_markdown(result))
