"""What every dataset provides: labelled image tensors plus the facts the models need."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from ..registry import Registry

# torchvision's ImageNet statistics: the usual input normalisation of RGB models.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

DATASETS = Registry("dataset", config_keys=("data.name",))

DATA_ROOT_ENV = "DFAD_DATA_ROOT"


def default_cache_dir() -> Path:
    return Path(os.environ.get("DFAD_CACHE", Path.home() / ".cache" / "dfad"))


def resolve_data_root(root: Optional[str]) -> Path:
    """--data-root, else $DFAD_DATA_ROOT, else ~/.cache/dfad/data (or $DFAD_CACHE/data)."""
    if root:
        return Path(root).expanduser()
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser()
    return default_cache_dir() / "data"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


@dataclass
class ImageDataset:
    """A split held in memory as normalised float images [N, C, H, W] and int64 labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo

    def __len__(self) -> int:
        return len(self.labels)

    def loader(self, batch_size: int, shuffle: bool, generator: Optional[torch.Generator] = None) -> DataLoader:
        # Index the tensors a whole batch at a time: no per-sample collation.
        dataset = TensorDataset(self.images, self.labels)
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        # Every DataLoader iterator draws a seed from its generator; a private one keeps evaluation
        # from advancing the global RNG (which would make training depend on when it validates).
        return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None,
                          generator=generator if generator is not None else torch.Generator())


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Images in [0, 1] -> (x - mean) / std per channel."""
    mean_t = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Inverse of `normalize`, for viewing samples as pictures."""
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return images * std_t + mean_t
