"""CIFAR-10 / CIFAR-100 readers (official pickles and ImageFolder), augmentation, and the CIFAR
configs' real code path on tiny fixtures."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dfad.data import DATASETS
from dfad.data.augment import random_crop_flip
from dfad.data.cifar import CIFAR10_CLASSES, CIFAR100_MEAN
from dfad.errors import DfadError

from conftest import smoke_run_config


def _write_pickle(path, labels, label_key, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, label_key: list(labels)}, f)
    return data


@pytest.fixture
def cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _write_pickle(folder / f"data_batch_{i}", [(2 * i) % 10, (2 * i + 1) % 10], b"labels", i)
    first = _write_pickle(folder / "test_batch", list(range(10)), b"labels", 0)
    return tmp_path, first


def test_cifar10_from_official_pickles(cifar10_pickles):
    root, first = cifar10_pickles
    train = DATASETS.build("cifar10", root=root, train=True)
    test = DATASETS.build("cifar10", root=root, train=False)
    assert train.images.shape == (10, 3, 32, 32) and test.labels.tolist() == list(range(10))
    raw = torch.from_numpy(first[0].reshape(3, 32, 32)).float() / 255
    mean, std = torch.tensor(test.info.mean).view(3, 1, 1), torch.tensor(test.info.std).view(3, 1, 1)
    torch.testing.assert_close(test.images[0] * std + mean, raw)


def test_cifar100_uses_its_own_statistics_and_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write_pickle(folder / "train", [5, 99, 42], b"fine_labels", 1)
    _write_pickle(folder / "test", [7], b"fine_labels", 2)
    train = DATASETS.build("cifar100", root=tmp_path, train=True)
    assert train.info.num_classes == 100 and train.info.mean == CIFAR100_MEAN
    assert train.labels.tolist() == [5, 99, 42]


def test_cifar10_from_an_image_folder_is_decoded_once(tmp_path, monkeypatch):
    from PIL import Image

    for label, name in enumerate(CIFAR10_CLASSES):
        (tmp_path / "cifar10-jpeg" / "test" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), (label * 20, 0, 0)).save(tmp_path / "cifar10-jpeg" / "test" / name / "0.png")
    first = DATASETS.build("cifar10", root=tmp_path, train=False)
    assert first.labels.tolist() == list(range(10))
    import dfad.data.cifar as cifar

    monkeypatch.setattr(cifar, "_read_image_folder", lambda *a: pytest.fail("decoded again instead of cached"))
    again = DATASETS.build("cifar10", root=tmp_path, train=False)
    assert torch.equal(first.images, again.images)


def test_two_runs_filling_the_decoded_cache_at_once_both_succeed(tmp_path, monkeypatch):
    """Two runs started together decode the same folder and write the same cache entry. Replayed
    deterministically: a second writer saves and renames its entry between the first writer's save
    and rename (with one shared temporary name the first rename then found no file)."""
    import dfad.data.cifar as cifar

    monkeypatch.setenv("DFAD_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "images"
    source.mkdir()
    decoded = (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))
    real_save, nested = torch.save, []

    def save_then_let_the_other_run_write(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        if not nested:
            nested.append(True)
            cifar._cached(source, "key", lambda: decoded)

    monkeypatch.setattr(cifar.torch, "save", save_then_let_the_other_run_write)
    images, labels = cifar._cached(source, "key", lambda: decoded)
    assert nested and torch.equal(images, decoded[0])
    assert [p.suffix for p in (tmp_path / "cache" / "decoded").iterdir()] == [".pt"]  # no temporary left


def test_cifar10_errors_name_the_layouts_and_the_fix(tmp_path):
    with pytest.raises(DfadError, match="cifar-10-batches-py.*cifar10-jpeg.*--data-root"):
        DATASETS.build("cifar10", root=tmp_path, train=True)
    (tmp_path / "cifar10-jpeg" / "train" / "cats").mkdir(parents=True)
    with pytest.raises(DfadError, match="one folder per class"):
        DATASETS.build("cifar10", root=tmp_path, train=True)


def test_random_crop_flip_is_deterministic_and_keeps_content():
    images, labels = torch.randn(16, 3, 8, 8), torch.arange(16)
    a, a_labels = random_crop_flip(images, labels, torch.Generator().manual_seed(1), padding=2)
    b, _ = random_crop_flip(images, labels, torch.Generator().manual_seed(1), padding=2)
    assert torch.equal(a, b) and a.shape == images.shape and torch.equal(a_labels, labels)
    assert not torch.equal(a, random_crop_flip(images, labels, torch.Generator().manual_seed(2), padding=2)[0])
    # with no padding every crop is the image itself, possibly mirrored
    c, _ = random_crop_flip(images, labels, torch.Generator().manual_seed(3), padding=0)
    for original, out in zip(images, c):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))


TINY_CIFAR = ["teacher.iterations=2", "teacher.batch_size=4", "teacher.val_every=2", "distill.iterations=2",
              "distill.batch_size=4", "distill.val_every=2", "distill.compile=false", "distill.sample_grid_size=4",
              "data.eval_batch_size=5", "distill.generator.args.ngf=8"]


@pytest.mark.parametrize("config", [pytest.param("cifar10", marks=pytest.mark.slow), "cifar10_cpu"])
def test_cifar_configs_run_their_real_code_path(cifar10_pickles, tmp_path, config):
    """A few iterations at tiny sizes: teacher training with augmentation, then DFAD, KD and RANDOM."""
    root, _ = cifar10_pickles
    summaries = smoke_run_config(config, TINY_CIFAR, root, tmp_path, methods=("dfad", "kd", "random"))
    assert all(summaries[m]["iterations"] == 2 for m in ("dfad", "kd", "random"))


@pytest.mark.slow
def test_cifar100_config_runs_its_real_code_path(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write_pickle(folder / "train", list(range(0, 100, 10)), b"fine_labels", 1)
    _write_pickle(folder / "test", list(range(5, 100, 10)), b"fine_labels", 2)
    summaries = smoke_run_config("cifar100", TINY_CIFAR, tmp_path, tmp_path / "runs", methods=("dfad", "dafl"))
    assert summaries["dfad"]["teacher_model"].startswith("cifar_resnet34")
