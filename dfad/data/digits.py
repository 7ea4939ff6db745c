"""scikit-learn's bundled 8x8 handwritten digits: the offline default that works everywhere."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import DATASETS, DatasetInfo, ImageDataset, normalize

# Pixel statistics of the training split after scaling 0..16 to 0..1.
DIGITS_MEAN, DIGITS_STD = (0.3052,), (0.3760,)
TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the train/test split is fixed, so every run evaluates on the same held-out digits


@DATASETS.register("digits")
def digits(root=None, train: bool = True, download: bool = False, image_size: int = 8,
           mean=DIGITS_MEAN, std=DIGITS_STD) -> ImageDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=TEST_FRACTION, stratify=bunch.target, random_state=SPLIT_SEED
    )
    x, y = (x_train, y_train) if train else (x_test, y_test)
    tensor = torch.from_numpy(x).unsqueeze(1)
    if image_size != 8:
        tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", align_corners=False)
    info = DatasetInfo("digits", 10, 1, image_size, tuple(mean), tuple(std))
    return ImageDataset(normalize(tensor, mean, std), torch.from_numpy(y).long(), info)
