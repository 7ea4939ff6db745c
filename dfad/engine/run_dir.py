"""A run folder describes itself: resolved config, metrics (JSON lines), checkpoints,
sample-image grids and summary.json."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torchvision.utils import save_image

from ..config import Config, save_config
from ..data import denormalize
from ..errors import DfadError
from .folder_lock import FolderLock

RUN_MARKER = "config.yaml"


def holds_run(path: str | Path) -> bool:
    return (Path(path) / RUN_MARKER).is_file()


class RunDir:
    """A run folder. A folder that already holds a run is refused unless `resume` (keep everything,
    continue) or `force` (clear the previous run's logs, checkpoints and samples, start over)."""

    def __init__(self, path: str | Path, force: bool = False, resume: bool = False, writer: bool = True):
        self.path = Path(path)
        self.writer = writer  # False on the non-zero ranks of a distributed run: read, never write
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.metrics_file = self.path / "metrics.jsonl"
        if not writer:
            return
        if self.path.exists() and not self.path.is_dir():
            raise DfadError(f"--out {self.path} is a file; give a folder path")
        existing = holds_run(self.path)
        if existing and not (force or resume):
            raise DfadError(f"output folder {self.path} already holds a run; choose another --out, "
                            f"pass --resume to continue it or --force to overwrite it")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.path)  # before anything is cleared or written
        if existing and force and not resume:
            for folder in (self.checkpoints, self.samples):
                if folder.is_dir():
                    shutil.rmtree(folder)
            for name in ("metrics.jsonl", "curve.csv", "summary.json"):
                (self.path / name).unlink(missing_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        self.samples.mkdir(exist_ok=True)
        self.metrics_file.touch()

    def close(self) -> None:
        """The run is over: let other processes write to this folder."""
        if self.writer:
            self._lock.release()

    def truncate_log(self, iteration: int) -> list[dict[str, Any]]:
        """Drop log records after `iteration` (written after the state a run resumes from);
        returns the records kept."""
        kept = [r for r in read_metrics(self.metrics_file) if r.get("iteration", 0) <= iteration]
        if self.writer:
            self.metrics_file.write_text("".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def write_config(self, cfg: Config) -> None:
        if self.writer:
            save_config(cfg, self.path / RUN_MARKER)

    def log(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(record) + "\n")

    def save_samples(self, images: torch.Tensor, iteration: int, mean: Sequence[float],
                     std: Sequence[float]) -> Path:
        path = self.samples / f"iter_{iteration:06d}.png"
        pictures = denormalize(images.detach().float().cpu(), mean, std).clamp(0, 1)
        save_image(pictures, path, nrow=int(math.ceil(math.sqrt(len(pictures)))), padding=1)
        return path

    def write_curve(self, history: list[dict[str, Any]], metric_name: str) -> Path:
        """curve.csv: the validation metric against iterations and wall time."""
        path = self.path / "curve.csv"
        rows = [r for r in history if r.get(metric_name) is not None]
        loss_keys = [k for k in (rows[0] if rows else {}) if k.endswith("loss")]
        columns = ["iteration", "elapsed_seconds", metric_name, *loss_keys]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([r.get(c) for c in columns])
        return path

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = self.path / "summary.json"
        if self.writer:
            path.write_text(json.dumps(summary, indent=2) + "\n")
        return path


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
