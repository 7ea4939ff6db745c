"""CIFAR-10 and CIFAR-100, held in memory as normalised tensors.

CIFAR-10 is read from the official python pickles (`cifar-10-batches-py`, as torchvision
downloads them) or, failing that, from an ImageFolder of images (`cifar10-jpeg/{train,test}/<class>/`,
class folders in the official label order = alphabetical). CIFAR-100 from `cifar-100-python`.
Decoding 60,000 JPEGs takes a while, so decoded uint8 tensors are cached under $DFAD_CACHE.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import DfadError
from .base import DATASETS, DatasetInfo, ImageDataset, default_cache_dir, normalize

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _read_pickles(folder: Path, names: list[str], label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="bytes")
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise DfadError(f"cannot read {path} ({exc}); re-download the dataset with --download") from exc
        images.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry[label_key])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def _read_image_folder(folder: Path, classes: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if tuple(found) != classes:
        raise DfadError(f"{folder} should hold one folder per class {list(classes)}, found {found}")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)


def _cached(source: Path, key: str, load) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded uint8 images, cached by the source folder's path and modification time."""
    stamp = f"{source.resolve()}:{source.stat().st_mtime_ns}:{key}"
    path = default_cache_dir() / "decoded" / f"{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            return saved["images"], saved["labels"]
        except Exception:  # a damaged cache entry is rebuilt
            pass
    images, labels = load()
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own: two runs started together decode the same folder at once, and
    # with one shared name the second's rename found the file already moved away by the first.
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        torch.save({"images": images, "labels": labels}, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return images, labels


def _finish(images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo) -> ImageDataset:
    if info.image_size != images.shape[-1]:
        images = TF.resize(images, [info.image_size, info.image_size], antialias=True)
    return ImageDataset(normalize(images.float().div_(255.0), info.mean, info.std), labels, info)


@DATASETS.register("cifar10")
def cifar10(root, train: bool = True, download: bool = False, image_size: int = 32,
            mean=CIFAR10_MEAN, std=CIFAR10_STD) -> ImageDataset:
    root = Path(root)
    info = DatasetInfo("cifar10", 10, 3, image_size, tuple(mean), tuple(std))
    pickles, jpeg = root / "cifar-10-batches-py", root / "cifar10-jpeg" / ("train" if train else "test")
    if not pickles.is_dir() and not jpeg.is_dir() and download:
        import torchvision

        torchvision.datasets.CIFAR10(str(root), train=train, download=True)
    if pickles.is_dir():
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        images, labels = _read_pickles(pickles, names, b"labels")
    elif jpeg.is_dir():
        images, labels = _cached(jpeg, "cifar10", lambda: _read_image_folder(jpeg, CIFAR10_CLASSES))
    else:
        raise DfadError(f"CIFAR-10 not found: expected {pickles} (official python pickles) or {jpeg} "
                        f"(ImageFolder); pass --data-root DIR (the folder that contains them) or add --download")
    return _finish(images, labels, info)


@DATASETS.register("cifar100")
def cifar100(root, train: bool = True, download: bool = False, image_size: int = 32,
             mean=CIFAR100_MEAN, std=CIFAR100_STD) -> ImageDataset:
    root = Path(root)
    info = DatasetInfo("cifar100", 100, 3, image_size, tuple(mean), tuple(std))
    pickles = root / "cifar-100-python"
    if not pickles.is_dir() and download:
        import torchvision

        torchvision.datasets.CIFAR100(str(root), train=train, download=True)
    if not pickles.is_dir():
        raise DfadError(f"CIFAR-100 not found: expected {pickles} (official python pickles: train, test); "
                        f"pass --data-root DIR (the folder that contains it) or add --download")
    images, labels = _read_pickles(pickles, ["train" if train else "test"], b"fine_labels")
    return _finish(images, labels, info)
