"""Batch augmentations for supervised teacher training on in-memory tensors.

They draw from an explicit torch.Generator (the one that shuffles the batches), so a resumed run
augments exactly as an uninterrupted one.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..registry import Registry


def random_crop_flip(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                     padding: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The standard CIFAR augmentation: zero-pad by `padding` (zero = the mean colour, since images
    are normalised), crop back to the original size at a random offset, flip half horizontally.
    Class labels pass through."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i, ((dy, dx), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        crop = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = crop.flip(-1) if flip else crop
    return out, labels


def random_crop_flip_pairs(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                           size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Segmentation: the same random `size` x `size` crop and horizontal flip of each image and
    its label map (smaller images are padded: with 0 = the mean colour, and with void labels)."""
    n, c, h, w = images.shape
    if h < size or w < size:
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        images = F.pad(images, (0, pad_w, 0, pad_h))
        labels = F.pad(labels, (0, pad_w, 0, pad_h), value=255)
        h, w = images.shape[-2:]
    tops = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    out_images, out_labels = images.new_empty(n, c, size, size), labels.new_empty(n, size, size)
    for i, (top, left, flip) in enumerate(zip(tops, lefts, flips)):
        image = images[i, :, top:top + size, left:left + size]
        label = labels[i, top:top + size, left:left + size]
        out_images[i], out_labels[i] = (image.flip(-1), label.flip(-1)) if flip else (image, label)
    return out_images, out_labels


def random_crops(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                 size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random `size` x `size` crop of each image (no flip); labels pass through untouched. For
    distilling on real frames larger than the teacher's input (segmentation KD), where the
    labels are never used."""
    n, c, h, w = images.shape
    tops = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    out = images.new_empty(n, c, size, size)
    for i, (top, left) in enumerate(zip(tops, lefts)):
        out[i] = images[i, :, top:top + size, left:left + size]
    return out, labels


# name -> factory(crop_size) giving callable(images, labels, generator) -> (images, labels), or None.
AUGMENTATIONS = Registry("augmentation", config_keys=("teacher.augment",), listed=True)
AUGMENTATIONS.register("none")(lambda crop_size: None)
AUGMENTATIONS.register("crop_flip")(lambda crop_size: random_crop_flip)  # CIFAR: 4-pixel shifts + flips
AUGMENTATIONS.register("seg_crop_flip")(  # segmentation: crops of images and label maps + flips
    lambda crop_size: functools.partial(random_crop_flip_pairs, size=crop_size))


def get_augmentation(name: str, crop_size: int) -> Optional[Callable]:
    """callable(images, labels, generator) -> (images, labels), or None for "none"."""
    return AUGMENTATIONS.get(name)(crop_size)
