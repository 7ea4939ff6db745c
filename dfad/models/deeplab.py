"""DeepLabV3 for the segmentation experiments, built from torchvision's parts (nothing downloaded).

- `deeplabv3_resnet50`: torchvision's DeepLabV3 with a ResNet-50 backbone (output stride 8), the
  paper's teacher.
- `deeplabv3_mobilenetv2`: the paper's student, a MobileNetV2 backbone (dilated to output stride 16)
  under torchvision's DeepLabV3 head (ASPP).
Both return the logits tensor [N, classes, H, W] at the input resolution. `backbone_weights` may
name a local state-dict file for the backbone (e.g. ImageNet weights saved from torchvision).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.models import mobilenet_v2, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

from ..errors import DfadError
from .registry import MODELS


def _load_backbone(backbone: nn.Module, path: Optional[str]) -> None:
    if not path:
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DfadError(f"cannot read backbone weights {path}: {exc}; give a state-dict file") from exc
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if len(missing) > len(backbone.state_dict()) // 2:
        raise DfadError(f"backbone weights {path} do not fit this backbone ({len(missing)} missing keys, "
                        f"e.g. {missing[:3]})")


class DeepLabV3(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.classifier = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)["out"]
        return F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False)


@MODELS.register("deeplabv3_resnet50")
def deeplabv3_resnet50(num_classes: int = 21, in_channels: int = 3,
                       backbone_weights: Optional[str] = None) -> DeepLabV3:
    if in_channels != 3:
        raise DfadError("deeplabv3_resnet50 takes 3-channel images")
    net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    _load_backbone(net, backbone_weights)
    backbone = IntermediateLayerGetter(net, return_layers={"layer4": "out"})
    return DeepLabV3(backbone, DeepLabHead(2048, num_classes))


def _dilate_mobilenet(features: nn.Sequential, from_block: int) -> None:
    """Output stride 32 -> 16: the stride-2 block at `from_block` keeps stride 1, and every 3x3
    convolution from there on is dilated by 2 to keep its receptive field."""
    for i, block in enumerate(features):
        if i < from_block:
            continue
        for m in block.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                if m.stride == (2, 2):
                    m.stride = (1, 1)
                else:
                    m.dilation, m.padding = (2, 2), (2, 2)


@MODELS.register("deeplabv3_mobilenetv2")
def deeplabv3_mobilenetv2(num_classes: int = 21, in_channels: int = 3,
                          backbone_weights: Optional[str] = None) -> DeepLabV3:
    if in_channels != 3:
        raise DfadError("deeplabv3_mobilenetv2 takes 3-channel images")
    net = mobilenet_v2(weights=None)
    _load_backbone(net, backbone_weights)
    features = net.features[:-1]  # drop the final 1x1 conv to 1280 channels: ASPP reads the 320
    _dilate_mobilenet(features, from_block=14)  # block 14 is the last stride-2 block (160 channels)
    return DeepLabV3(_FeaturesAsDict(features), DeepLabHead(320, num_classes))


class _FeaturesAsDict(nn.Module):
    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict(out=self.features(x))
