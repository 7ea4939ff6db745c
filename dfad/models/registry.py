"""The model registry: every network is built by name with keyword arguments."""
from ..registry import Registry, register_config_key

MODELS = Registry("model", config_keys=("distill.generator.arch",))


def check_arch(arch: str) -> None:
    """A clear error for an unknown model name (registry names, or `torchvision:NAME`)."""
    from .external import TIMM_PREFIX, TORCHVISION_PREFIX, check_timm_name, check_torchvision_name

    if arch.startswith(TORCHVISION_PREFIX):
        check_torchvision_name(arch)
    elif arch.startswith(TIMM_PREFIX):
        check_timm_name(arch)
    else:
        MODELS.get(arch)


# Teachers and students may also be torchvision or timm models by name.
for _key in ("teacher.model.arch", "distill.student.arch"):
    register_config_key(_key, lambda arch, key: check_arch(arch))


def build_model(arch: str, **args):
    """Build a registered model (or `torchvision:NAME` / `timm:NAME`) and remember how, so checkpoints can
    rebuild it."""
    from .external import TIMM_PREFIX, TORCHVISION_PREFIX, build_timm, build_torchvision

    if arch.startswith(TORCHVISION_PREFIX):
        model = build_torchvision(arch, **args)
    elif arch.startswith(TIMM_PREFIX):
        model = build_timm(arch, **args)
    else:
        model = MODELS.build(arch, **args)
    model.dfad_spec = {"arch": arch, "args": dict(args)}
    return model


def describe_model(model) -> str:
    """'convnet(width=32)': the registry name and the arguments that are not data facts."""
    spec = getattr(model, "dfad_spec", None)
    if spec is None:  # loaded from an exported/TorchScript/pickled file, or a user's own module
        return getattr(model, "dfad_source", type(model).__name__)
    shown = {k: v for k, v in spec["args"].items() if k not in ("num_classes", "in_channels", "channels")}
    return spec["arch"] + (f"({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else "")
