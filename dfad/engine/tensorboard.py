"""--tensorboard: the metrics log mirrored to TensorBoard event files in RUN/tensorboard."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import DfadError


class TensorBoardLog:
    """Writes every numeric field of each iteration's record as a scalar at that iteration."""

    def __init__(self, run_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise DfadError("--tensorboard needs the tensorboard package: pip install 'dfad[tensorboard]'") from exc
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def __call__(self, record: dict[str, Any]) -> None:
        step = record["iteration"]
        for key, value in record.items():
            if key != "iteration" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


def chain(*hooks: Optional[Callable[[dict], Any]]) -> Optional[Callable[[dict], Any]]:
    """One hook calling each given hook in turn (None when there are none)."""
    present = [h for h in hooks if h is not None]
    if not present:
        return None

    def call_all(record: dict) -> None:
        for hook in present:
            hook(record)
    return call_all
