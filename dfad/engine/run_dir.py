"""A run folder describes itself: resolved config, metrics (JSON lines), checkpoints,
sample-image grids and summary.json."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torchvision.utils import save_image

from ..config import Config, save_config
from ..data import denormalize
from ..errors import DfadError

RUN_MARKER = "config.yaml"


class RunDir:
    def __init__(self, path: str | Path, force: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise DfadError(f"--out {self.path} is a file; give a folder path")
        if (self.path / RUN_MARKER).exists() and not force:
            raise DfadError(f"output folder {self.path} already holds a run; choose another --out "
                            f"or pass --force to overwrite it")
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.checkpoints.mkdir(exist_ok=True)
        self.samples.mkdir(exist_ok=True)
        self.metrics_file = self.path / "metrics.jsonl"
        self.metrics_file.write_text("")  # a forced re-run starts a fresh log

    def write_config(self, cfg: Config) -> None:
        save_config(cfg, self.path / RUN_MARKER)

    def log(self, record: dict[str, Any]) -> None:
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
        path.write_text(json.dumps(summary, indent=2) + "\n")
        return path


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
