"""Datasets: the bundled digits everywhere, MNIST from a prepared offline copy."""
from __future__ import annotations

import pytest
import torch

from dfad.data import DATASETS, resolve_data_root
from dfad.errors import DfadError


def test_digits_split_is_fixed_stratified_and_normalised():
    train, test = DATASETS.build("digits", train=True), DATASETS.build("digits", train=False)
    assert (len(train), len(test)) == (1347, 450)
    assert train.images.shape[1:] == (1, 8, 8) and train.labels.dtype == torch.long
    assert abs(train.images.mean().item()) < 0.01 and abs(train.images.std().item() - 1) < 0.01
    assert torch.bincount(test.labels).min() >= 43  # every class held out
    again = DATASETS.build("digits", train=False)
    assert torch.equal(again.images, test.images)


def test_data_root_resolution(monkeypatch, tmp_path):
    assert resolve_data_root(str(tmp_path)) == tmp_path
    monkeypatch.setenv("DFAD_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("DFAD_DATA_ROOT")
    monkeypatch.setenv("DFAD_CACHE", str(tmp_path / "cache"))
    assert resolve_data_root(None) == tmp_path / "cache" / "data"


def test_missing_mnist_names_the_files_and_the_fix(tmp_path):
    with pytest.raises(DfadError, match=r"MNIST not found: expected t10k-images-idx3-ubyte, "
                                        r"t10k-labels-idx1-ubyte in .*MNIST/raw; pass --data-root"):
        DATASETS.build("mnist", root=tmp_path, train=False)


@pytest.mark.slow
def test_mnist_loads_from_a_prepared_root(prepared_data_root):
    test = DATASETS.build("mnist", root=prepared_data_root, train=False)
    train = DATASETS.build("mnist", root=prepared_data_root, train=True)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert test.images.shape[1:] == (1, 32, 32)
    assert torch.bincount(test.labels).tolist()[:2] == [980, 1135]  # the official test-set class counts
    # Normalised with the standard MNIST statistics: roughly zero mean, unit spread.
    assert abs(train.images.mean().item()) < 0.05 and abs(train.images.std().item() - 1) < 0.1
