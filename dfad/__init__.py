"""dfad: Data-Free Adversarial Distillation for PyTorch."""
__version__ = "0.1.0"

from .api import DistillResult, distill  # noqa: E402  (the Python API)
# Every registry, and the config keys whose names it owns (registry.check_config_names).
from . import data, engine, methods, models, tasks  # noqa: E402,F401

__all__ = ["DistillResult", "distill", "__version__"]
