"""dfad: Data-Free Adversarial Distillation for PyTorch."""
__version__ = "0.1.0"
