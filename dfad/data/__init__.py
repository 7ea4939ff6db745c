"""Datasets by name. Importing this package registers every family."""
from .base import (DATASETS, DatasetInfo, ImageDataset, default_cache_dir, denormalize, normalize,
                   resolve_data_root)
from . import augment, caltech, cifar, digits, mnist, segmentation  # noqa: F401  (registration side effects)

__all__ = ["DATASETS", "DatasetInfo", "ImageDataset", "default_cache_dir", "denormalize", "normalize",
           "resolve_data_root"]
