"""Models from other libraries by name: `torchvision:NAME` (any torchvision classification or
segmentation builder) and `timm:NAME` (any timm model; optional extra `dfad[timm]`), randomly
initialised: no weights are downloaded."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import DfadError
from ..registry import suggest

TORCHVISION_PREFIX = "torchvision:"
TIMM_PREFIX = "timm:"


class SegmentationOutput(nn.Module):
    """torchvision's segmentation models return {"out": logits, ...}; the engine wants the logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _torchvision_names() -> tuple[list[str], list[str]]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm), tvm.list_models(module=tvm.segmentation)


def check_torchvision_name(arch: str) -> None:
    name = arch[len(TORCHVISION_PREFIX):]
    classifiers, segmenters = _torchvision_names()
    if name not in classifiers and name not in segmenters:
        raise DfadError(f"unknown torchvision model '{name}'{suggest(name, classifiers + segmenters)}; "
                        f"see torchvision.models.list_models()")


def build_torchvision(arch: str, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Module:
    """`torchvision:resnet18` and the like, with `num_classes` outputs and random weights."""
    import torchvision.models as tvm

    check_torchvision_name(arch)
    name = arch[len(TORCHVISION_PREFIX):]
    if in_channels != 3:
        raise DfadError(f"torchvision model '{name}' takes 3-channel images, the data has {in_channels}; "
                        f"use a registry model built for {in_channels} channel(s)")
    _, segmenters = _torchvision_names()
    if name in segmenters:
        # weights_backbone=None: the builders' default would download ImageNet weights.
        return SegmentationOutput(tvm.get_model(name, weights=None, weights_backbone=None,
                                                num_classes=num_classes, aux_loss=False, **kwargs))
    return tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def _timm():
    try:
        import timm
    except ImportError:
        raise DfadError("timm:NAME models need the timm package: pip install 'dfad[timm]'") from None
    return timm


def check_timm_name(arch: str) -> None:
    name = arch[len(TIMM_PREFIX):]
    available = _timm().list_models()
    if name not in available:
        raise DfadError(f"unknown timm model '{name}'{suggest(name, available)}; see timm.list_models()")


def build_timm(arch: str, num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Module:
    """`timm:resnet18` and the like: timm's classifier with `num_classes` outputs, random weights."""
    check_timm_name(arch)
    return _timm().create_model(arch[len(TIMM_PREFIX):], pretrained=False, num_classes=num_classes,
                                in_chans=in_channels, **kwargs)
