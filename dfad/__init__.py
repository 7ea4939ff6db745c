"""dfad: Data-Free Adversarial Distillation for PyTorch."""
__version__ = "0.1.0"

from .api import DistillResult, distill  # noqa: E402  (the Python API)

__all__ = ["DistillResult", "distill", "__version__"]
