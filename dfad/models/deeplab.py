"""DeepLabV3 for the segmentation experiments, built from torchvision's parts (nothing downloaded),
shaped as the DFAD authors' networks.

- `deeplabv3_resnet50`: a ResNet-50 backbone dilated to output stride 8, the paper's teacher.
- `deeplabv3_resnet18`: a ResNet-18 backbone dilated to output stride 8 or 16, a teacher small
  enough for the CPU-scaled CamVid table (not the paper's).
- `deeplabv3_mobilenetv2`: the paper's student, a MobileNetV2 backbone dilated to output stride 8
  by the authors' rule (see `_dilate_mobilenet`; `output_stride=16` or 32 for a cheaper student).
Both use DeepLabV3's head (ASPP + 3x3 conv + 1x1 classifier) with the authors' atrous rates
(12, 24, 32; torchvision's default is 12, 24, 36) and return the logits [N, classes, H, W] at the
input resolution. `backbone_weights` may name a local state-dict file for the backbone (e.g.
ImageNet weights saved from torchvision).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.models import mobilenet_v2, resnet18, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

from ..errors import DfadError
from .registry import MODELS

AUTHORS_ATROUS_RATES = (12, 24, 32)  # the DFAD authors' DeepLabHead (torchvision's default: 12, 24, 36)


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
def deeplabv3_resnet50(num_classes: int = 21, in_channels: int = 3, backbone_weights: Optional[str] = None,
                       atrous_rates: Sequence[int] = AUTHORS_ATROUS_RATES) -> DeepLabV3:
    if in_channels != 3:
        raise DfadError("deeplabv3_resnet50 takes 3-channel images")
    net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    _load_backbone(net, backbone_weights)
    backbone = IntermediateLayerGetter(net, return_layers={"layer4": "out"})
    return DeepLabV3(backbone, DeepLabHead(2048, num_classes, tuple(atrous_rates)))


def _dilate_basic_layer(layer: nn.Sequential, previous_dilation: int, dilation: int) -> None:
    """Turn a strided ResNet layer of BasicBlocks into a dilated one, as torchvision does for
    Bottlenecks (which alone accept `replace_stride_with_dilation`): every stride becomes 1; the
    first 3x3 convolution keeps the dilation reached before the layer, the others use the new one."""
    first = True
    for block in layer:
        for conv in (block.conv1, block.conv2):
            rate = previous_dilation if first else dilation
            conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate, rate)
            first = False
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)


@MODELS.register("deeplabv3_resnet18")
def deeplabv3_resnet18(num_classes: int = 21, in_channels: int = 3, backbone_weights: Optional[str] = None,
                       output_stride: int = 8, atrous_rates: Sequence[int] = AUTHORS_ATROUS_RATES) -> DeepLabV3:
    if in_channels != 3:
        raise DfadError("deeplabv3_resnet18 takes 3-channel images")
    if output_stride not in (8, 16):
        raise DfadError(f"deeplabv3_resnet18: output_stride must be 8 or 16, got {output_stride}")
    net = resnet18(weights=None)
    _load_backbone(net, backbone_weights)
    if output_stride == 8:
        _dilate_basic_layer(net.layer3, 1, 2)
        _dilate_basic_layer(net.layer4, 2, 4)
    else:
        _dilate_basic_layer(net.layer4, 1, 2)
    backbone = IntermediateLayerGetter(net, return_layers={"layer4": "out"})
    return DeepLabV3(backbone, DeepLabHead(512, num_classes, tuple(atrous_rates)))


# torchvision's MobileNetV2 blocks after the stem, grouped as its inverted-residual settings:
# (blocks in the group, stride of the group's first block).
_MOBILENET_GROUPS = ((1, 1), (2, 2), (3, 2), (4, 2), (3, 1), (3, 2), (1, 1))


def _dilate_mobilenet(features: nn.Sequential, output_stride: int) -> None:
    """Dilate MobileNetV2 to `output_stride` by the authors' rule (their MobileNetV2, after
    pytorch-deeplab-xception): once the stride reaches `output_stride`, each later group keeps
    stride 1 and all its blocks use the dilation reached *before* that group, which then grows by
    the stride the group gave up. At stride 8: blocks 7-10 dilation 1, 11-16 dilation 2, 17 dilation 4."""
    if output_stride not in (8, 16, 32):
        raise DfadError(f"deeplabv3_mobilenetv2: output_stride must be 8, 16 or 32, got {output_stride}")
    current_stride, rate, index = 2, 1, 1  # the stem (block 0) halves the resolution
    for count, group_stride in _MOBILENET_GROUPS:
        if current_stride == output_stride:
            stride, dilation = 1, rate
            rate *= group_stride
        else:
            stride, dilation = group_stride, 1
            current_stride *= group_stride
        for j in range(count):
            depthwise = [m for m in features[index + j].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
            (conv,) = depthwise
            conv.stride = (stride, stride) if j == 0 else (1, 1)
            conv.dilation = conv.padding = (dilation, dilation)
        index += count


@MODELS.register("deeplabv3_mobilenetv2")
def deeplabv3_mobilenetv2(num_classes: int = 21, in_channels: int = 3, backbone_weights: Optional[str] = None,
                          output_stride: int = 8, atrous_rates: Sequence[int] = AUTHORS_ATROUS_RATES) -> DeepLabV3:
    if in_channels != 3:
        raise DfadError("deeplabv3_mobilenetv2 takes 3-channel images")
    net = mobilenet_v2(weights=None)
    _load_backbone(net, backbone_weights)
    features = net.features[:-1]  # drop the final 1x1 conv to 1280 channels: ASPP reads the 320
    _dilate_mobilenet(features, output_stride)
    return DeepLabV3(_FeaturesAsDict(features), DeepLabHead(320, num_classes, tuple(atrous_rates)))


class _FeaturesAsDict(nn.Module):
    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict(out=self.features(x))
