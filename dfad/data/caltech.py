"""Caltech-101 from its ImageFolder layout (`101_ObjectCategories/<class>/*.jpg`), without the
BACKGROUND_Google folder (101 classes), split 80/20 per class with a fixed seed (the dataset has no
official split; per-class test counts as in the authors' split script: 20% rounded down, at least
2, giving 6,982 / 1,695 images). Images are resized (shorter side) and centre-cropped to
`image_size` and held in memory; decoded tensors are cached under $DFAD_CACHE.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DfadError
from .base import DATASETS, IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, ImageDataset, normalize
from .cifar import _cached

TEST_FRACTION = 0.2
SPLIT_SEED = 0
EXCLUDED = {"BACKGROUND_Google"}


def _decode(folder: Path, classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            with Image.open(path) as image:
                image = image.convert("RGB")
                scale = size / min(image.size)
                image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                                     Image.BILINEAR)
                left, top = (image.width - size) // 2, (image.height - size) // 2
                image = image.crop((left, top, left + size, top + size))
                images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the train and test parts: per class, a fixed random `test_fraction`, counted as
    the authors' split script counts it (rounded down, at least 2; at most all but one)."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = min(max(int(len(members) * test_fraction), 2), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


@DATASETS.register("caltech101")
def caltech101(root, train: bool = True, download: bool = False, image_size: int = 128,
               mean=IMAGENET_MEAN, std=IMAGENET_STD) -> ImageDataset:
    folder = Path(root) / "101_ObjectCategories"
    if not folder.is_dir():
        raise DfadError(f"Caltech-101 not found: expected {folder}/<class>/*.jpg; pass --data-root DIR (the folder "
                        f"that contains 101_ObjectCategories)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in EXCLUDED)
    images, labels = _cached(folder, f"caltech101-{image_size}", lambda: _decode(folder, classes, image_size))
    train_index, test_index = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    index = train_index if train else test_index
    info = DatasetInfo("caltech101", len(classes), 3, image_size, tuple(mean), tuple(std))
    return ImageDataset(normalize(images[index].float().div_(255.0), mean, std), labels[index], info)
