"""The model registry: every network is built by name with keyword arguments."""
from ..registry import Registry

MODELS = Registry("model")


def build_model(arch: str, **args):
    """Build a registered model and remember how, so checkpoints can rebuild it."""
    model = MODELS.build(arch, **args)
    model.dfad_spec = {"arch": arch, "args": dict(args)}
    return model


def describe_model(model) -> str:
    """'convnet(width=32)': the registry name and the arguments that are not data facts."""
    spec = getattr(model, "dfad_spec", None)
    if spec is None:
        return type(model).__name__
    shown = {k: v for k, v in spec["args"].items() if k not in ("num_classes", "in_channels", "channels")}
    return spec["arch"] + (f"({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else "")
