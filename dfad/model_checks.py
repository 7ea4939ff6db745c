"""What a model's dry forward pass tells before a run starts: whether it takes the data's inputs
and gives outputs of the task's form, its size and FLOPs, and the input facts of a run without a
dataset."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .data import DatasetInfo
from .data.base import IMAGENET_MEAN, IMAGENET_STD
from .errors import DfadError
from .models import count_flops, count_parameters


def model_profile(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Optional[int]]:
    try:
        flops = count_flops(model, input_shape)
    except Exception:  # e.g. TorchScript or exported programs the FLOP counter cannot trace
        flops = None
    return {"params": count_parameters(model), "flops": flops, "macs": flops // 2 if flops is not None else None}


def dry_forward(model: nn.Module, input_shape: tuple[int, ...], who: str, device, fix: str) -> torch.Tensor:
    """The model's outputs (eval mode, no gradient) for a batch of three zero inputs, with clear
    errors; `fix` says what to change when the shape is refused. (Three: a program exported with a
    fixed batch size, typically 1 or 2, fails here rather than mid-run.)"""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(3, *input_shape, device=device))
    except Exception as exc:
        from .model_files import FrozenGraph

        if isinstance(model, FrozenGraph):
            raise DfadError(f"{who} (an exported program) cannot take a batch of 3 inputs of shape "
                            f"{tuple(input_shape)}: export it with that input shape and a dynamic batch, "
                            f"dynamic_shapes={{'x': {{0: torch.export.Dim('batch')}}}} ({exc})") from exc
        raise DfadError(f"{who} cannot take inputs of shape {tuple(input_shape)} ({exc}); {fix}") from exc
    finally:
        model.train(was_training)


def check_model_outputs(model: nn.Module, task, info: DatasetInfo, who: str, device) -> None:
    """A dry forward pass on inputs of the data's shape: outputs of the task's form and class count."""
    out = dry_forward(model, info.input_shape, who, device, f"it does not fit dataset '{info.name}'")
    task.check_outputs(out, info.num_classes, who)


# When no dataset says how a teacher's inputs are normalised: ImageNet's statistics for colour
# images (torchvision's convention), 0.5 / 0.5 for anything else.
def default_input_stats(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)


def data_free_info(cfg, teacher: nn.Module, task, device, who: str) -> DatasetInfo:
    """The input and output facts of a run with no dataset (data.name=none): the input shape and
    statistics from the config, the class count from the config or else from the teacher's
    outputs. The teacher's dry run also checks its outputs, as check_model_outputs does."""
    data = cfg.data
    channels, size = data.channels, data.image_size
    mean, std = (tuple(data.mean), tuple(data.std)) if data.mean is not None else default_input_stats(channels)
    if len(mean) != channels or len(std) != channels:
        raise DfadError(f"--input-mean/--input-std give {len(mean)}/{len(std)} values for {channels}-channel "
                        f"inputs; give one per channel")
    out = dry_forward(teacher, (channels, size, size), who, device, "pass the --input-shape C,H,W it was trained on")
    num_classes = data.num_classes
    if num_classes is None:
        num_classes = int(out.shape[1]) if out.dim() >= 2 else 0  # a wrong form is reported just below
    task.check_outputs(out, num_classes, who)
    return DatasetInfo("none", num_classes, channels, size, mean, std)
