"""MNIST and Fashion-MNIST through torchvision, held in memory as normalised tensors."""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torchvision.transforms.v2 import functional as TF

from ..errors import DfadError
from .base import DATASETS, DatasetInfo, ImageDataset, normalize

_RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _load_idx_dataset(cls, folder: str, root: Path, train: bool, download: bool) -> torch.utils.data.Dataset:
    raw = root / folder / "raw"
    missing = [name for name in _RAW_FILES[train] if not (raw / name).exists()]
    if missing and not download:
        raise DfadError(
            f"{folder} not found: expected {', '.join(_RAW_FILES[train])} in {raw}; "
            f"pass --data-root DIR (the folder that contains {folder}/raw) or add --download"
        )
    try:
        return cls(str(root), train=train, download=download)
    except RuntimeError as exc:  # torchvision's own "not found / corrupt" message
        raise DfadError(f"cannot read {folder} from {raw}: {exc}; re-download it with --download") from exc


def _to_image_dataset(raw, info: DatasetInfo) -> ImageDataset:
    images = raw.data.unsqueeze(1)  # uint8 [N, 1, 28, 28]
    if info.image_size != images.shape[-1]:
        images = TF.resize(images, [info.image_size, info.image_size], antialias=True)
    images = images.float().div_(255.0)
    return ImageDataset(normalize(images, info.mean, info.std), raw.targets.clone().long(), info)


@DATASETS.register("mnist")
def mnist(root, train: bool = True, download: bool = False, image_size: int = 32,
          mean=(0.1307,), std=(0.3081,)) -> ImageDataset:
    raw = _load_idx_dataset(torchvision.datasets.MNIST, "MNIST", Path(root), train, download)
    return _to_image_dataset(raw, DatasetInfo("mnist", 10, 1, image_size, tuple(mean), tuple(std)))


@DATASETS.register("fashion_mnist")
def fashion_mnist(root, train: bool = True, download: bool = False, image_size: int = 32,
                  mean=(0.2860,), std=(0.3530,)) -> ImageDataset:
    raw = _load_idx_dataset(torchvision.datasets.FashionMNIST, "FashionMNIST", Path(root), train, download)
    return _to_image_dataset(raw, DatasetInfo("fashion_mnist", 10, 1, image_size, tuple(mean), tuple(std)))
