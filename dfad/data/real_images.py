"""Real images as a given teacher sees them: what the KD baselines distill on, from the task's own
training split or from another dataset."""
from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

from ..errors import DfadError
from .base import DATASETS, DatasetInfo, ImageDataset, denormalize, normalize, resolve_data_root

# ITU-R BT.601 luma weights: colour images shown to a grey-scale teacher.
_LUMA = (0.299, 0.587, 0.114)


def match_channels(pixels: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    """Images in [0, 1] with `channels` channels: grey repeated to RGB, RGB to grey by luma."""
    have = pixels.shape[1]
    if have == channels:
        return pixels
    if have == 1 and channels == 3:
        return pixels.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        return (pixels * torch.tensor(_LUMA, dtype=pixels.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise DfadError(f"dataset '{name}' has {have} channel(s) but the teacher takes {channels}; "
                    f"choose a dataset with 1 or {channels} channels")


def load_real_images(cfg, name: str, info: DatasetInfo, keep_larger: bool = False) -> ImageDataset:
    """The training split of dataset `name` as teacher inputs: resized to the teacher's square
    size (`info`), grey repeated to RGB (or RGB to grey), and normalised with the teacher's
    statistics. With `keep_larger`, images at least that size on both sides keep their size (to be
    cropped). `cfg`: the run's config, for the data root and the task's own frame size."""
    # The task's own frames as its teacher saw them (data.shorter_side); other datasets as stored.
    resize = {"shorter_side": cfg.data.shorter_side} if name == cfg.data.name and cfg.data.shorter_side else {}
    source = DATASETS.build(name, root=resolve_data_root(cfg.data.root), train=True, download=cfg.data.download,
                            image_size=info.image_size, **resize)
    pixels = denormalize(source.images, source.info.mean, source.info.std).clamp_(0, 1)
    pixels = match_channels(pixels, info.channels, name)
    size = info.image_size
    larger = min(pixels.shape[-2:]) >= size
    if tuple(pixels.shape[-2:]) != (size, size) and not (keep_larger and larger):
        # Whole frames (e.g. segmentation datasets store full images), squeezed to the teacher's size.
        pixels = TF.resize(pixels, [info.image_size, info.image_size], antialias=True)
    converted = DatasetInfo(source.info.name, source.info.num_classes, info.channels, info.image_size,
                            tuple(info.mean), tuple(info.std))
    return ImageDataset(normalize(pixels, info.mean, info.std), source.labels, converted)
