"""The split of the dataset a config names, read as the config says (root, size, statistics)."""
from __future__ import annotations

import inspect
from typing import Any

from ..errors import DfadError
from .base import DATASETS, ImageDataset, resolve_data_root


def load_split(cfg, train: bool) -> ImageDataset:
    kwargs: dict[str, Any] = {"root": resolve_data_root(cfg.data.root), "train": train, "download": cfg.data.download}
    if cfg.data.image_size is not None:
        kwargs["image_size"] = cfg.data.image_size
    if cfg.data.mean is not None:
        kwargs["mean"], kwargs["std"] = tuple(cfg.data.mean), tuple(cfg.data.std)
    if cfg.data.shorter_side is not None:
        if "shorter_side" not in inspect.signature(DATASETS.get(cfg.data.name)).parameters:
            raise DfadError(f"config: dataset '{cfg.data.name}' does not resize by data.shorter_side (only whole-frame "
                            f"segmentation datasets do); remove data.shorter_side or use data.image_size")
        kwargs["shorter_side"] = cfg.data.shorter_side
    return DATASETS.build(cfg.data.name, **kwargs)
