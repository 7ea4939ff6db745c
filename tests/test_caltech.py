"""Caltech-101: ImageFolder reader with a fixed stratified 80/20 split, and the caltech101 config's
real code path at tiny sizes."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from dfad.data import DATASETS
from dfad.data.caltech import stratified_split
from dfad.errors import DfadError

from conftest import smoke_run_config


@pytest.fixture
def caltech_root(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "101_ObjectCategories"
    for name, count in (("BACKGROUND_Google", 3), ("accordion", 10), ("airplanes", 6), ("anchor", 5)):
        (folder / name).mkdir(parents=True)
        for i in range(count):
            size = (40 + 4 * i, 30 + 2 * i)  # varied sizes and aspect ratios
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name / f"{i}.jpg")
    return tmp_path


def test_split_is_stratified_disjoint_and_fixed(caltech_root):
    train = DATASETS.build("caltech101", root=caltech_root, train=True, image_size=16)
    test = DATASETS.build("caltech101", root=caltech_root, train=False, image_size=16)
    assert train.info.num_classes == 3  # BACKGROUND_Google is not a class
    # Test counts as the authors' split script: 20% rounded down, at least 2.
    assert test.labels.bincount().tolist() == [2, 2, 2] and train.labels.bincount().tolist() == [8, 4, 3]
    assert train.images.shape[1:] == (3, 16, 16)
    again = DATASETS.build("caltech101", root=caltech_root, train=False, image_size=16)
    assert torch.equal(again.images, test.images)


def test_stratified_split_covers_every_sample_once():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2])
    train, test = stratified_split(labels, 0.2, seed=0)
    assert sorted(torch.cat([train, test]).tolist()) == list(range(16))
    assert labels[test].bincount(minlength=3).tolist() == [2, 2, 0]  # a single image stays in train


def test_missing_caltech_names_the_layout(tmp_path):
    with pytest.raises(DfadError, match="101_ObjectCategories.*--data-root"):
        DATASETS.build("caltech101", root=tmp_path)


@pytest.mark.slow
def test_caltech_config_runs_its_real_code_path(caltech_root, tmp_path):
    tiny = ["data.image_size=32", "data.eval_batch_size=4", "teacher.iterations=2", "teacher.batch_size=4",
            "teacher.val_every=2", "distill.iterations=2", "distill.batch_size=4", "distill.val_every=2",
            "distill.sample_grid_size=4", "distill.generator.args.ngf=4", "distill.nz=8"]
    smoke_run_config("caltech101", tiny, caltech_root, tmp_path, methods=("dfad", "dafl"))


def test_resnet10_is_resnet18_with_one_block_per_stage():
    from dfad.models.registry import build_model

    small, large = build_model("resnet10", num_classes=7), build_model("resnet18", num_classes=7)
    assert [len(getattr(small, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    assert small(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    # Same stem, widths and head as ResNet-18: the parameters of one block per stage fewer.
    assert sum(p.numel() for p in small.parameters()) == 4_909_383
    assert sum(p.numel() for p in large.parameters()) > 2 * 4_909_383


@pytest.mark.slow
def test_caltech_cpu_config_runs_its_real_code_path(caltech_root, tmp_path):
    tiny = ["data.eval_batch_size=4", "teacher.iterations=2", "teacher.batch_size=4", "teacher.val_every=2",
            "distill.iterations=2", "distill.batch_size=4", "distill.val_every=2", "distill.sample_grid_size=4",
            "distill.nz=8"]
    smoke_run_config("caltech101_cpu", tiny, caltech_root, tmp_path, methods=("dfad", "random"))
