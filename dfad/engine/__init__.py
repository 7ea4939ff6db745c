"""The engine shared by every method and task."""
from .checkpoint import build_model_from_entry, load_checkpoint, model_entry, save_checkpoint
from .evaluate import evaluate
from .loop import FitResult, fit
from .run_dir import RunDir, read_metrics
from . import optim, precision  # noqa: F401,E402  (their registries claim config keys)

__all__ = ["build_model_from_entry", "load_checkpoint", "model_entry", "save_checkpoint", "evaluate",
           "FitResult", "fit", "RunDir", "read_metrics"]
