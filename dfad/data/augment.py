"""Batch augmentations for supervised teacher training on in-memory tensors.

They draw from an explicit torch.Generator (the one that shuffles the batches), so a resumed run
augments exactly as an uninterrupted one.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..errors import DfadError


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation: zero-pad by `padding` (zero = the mean colour, since images
    are normalised), crop back to the original size at a random offset, flip half horizontally."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i, ((dy, dx), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        crop = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = crop.flip(-1) if flip else crop
    return out


AUGMENTATIONS: dict[str, Optional[Callable]] = {"none": None, "crop_flip": random_crop_flip}


def get_augmentation(name: str) -> Optional[Callable]:
    if name not in AUGMENTATIONS:
        raise DfadError(f"unknown augmentation '{name}'; choose one of: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
