"""The model registry: every network is built by name with keyword arguments."""
from ..registry import Registry

MODELS = Registry("model")


def build_model(arch: str, **args):
    """Build a registered model and remember how, so checkpoints can rebuild it."""
    model = MODELS.build(arch, **args)
    model.dfad_spec = {"arch": arch, "args": dict(args)}
    return model
