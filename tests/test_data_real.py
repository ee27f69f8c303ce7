"""The real Fashion-MNIST files (Debian's dataset-fashion-mnist): the published facts hold.

These tests FAIL when the files are missing (see test_data_writers.real_fashion_dir).
"""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch
from test_data_writers import IDX_FILES, real_fashion_dir

from cnnlab.data import Augment, BatchPipeline, load_dataset
from cnnlab.data.catalog import FASHION_MNIST
from cnnlab.errors import DataError


@pytest.fixture(scope="module")
def fashion():
    real_fashion_dir()
    return {
        "train": load_dataset("fashion-mnist", "train"),
        "test": load_dataset("fashion-mnist", "test"),
    }


def test_published_counts_classes_and_statistics(fashion):
    train, test = fashion["train"], fashion["test"]
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.classes == FASHION_MNIST.classes and train.classes[9] == "Ankle boot"
    assert train.class_counts() == [6_000] * 10 and test.class_counts() == [1_000] * 10
    # Published pixel statistics of the training split (research: 0.2860 / 0.3530)
    assert train.mean[0] == pytest.approx(0.2860, abs=5e-5)
    assert train.std[0] == pytest.approx(0.3530, abs=5e-5)
    assert test.mean == train.mean and test.std == train.std  # normalised with train's
    # and the test split's own mean is its published 0.2868
    assert test.images.double().mean().item() / 255 == pytest.approx(0.2868, abs=5e-5)


def test_integrity_is_verified_on_the_decompressed_payload(fashion):
    for split in ("train", "test"):
        ds = fashion[split]
        assert ds.integrity == "verified"
        assert all(c.path.suffix == ".gz" for c in ds.checks)  # Debian's recompressed .gz ...
        assert all("decompressed" in c.detail for c in ds.checks)  # ... verified by payload


def test_an_uncompressed_copy_in_torchvision_layout_is_the_same_data(tmp_path, fashion):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    src = real_fashion_dir()
    for name in IDX_FILES[:2]:  # the training split, needed for the statistics, stays .gz
        shutil.copy(src / f"{name}.gz", raw / f"{name}.gz")
    for name in IDX_FILES[2:]:  # the test split uncompressed, as torchvision keeps it
        with gzip.open(src / f"{name}.gz") as f, open(raw / name, "wb") as out:
            shutil.copyfileobj(f, out)
    test = load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    assert test.location.directory == raw and test.location.origin == "--data-dir"
    assert test.integrity == "verified"
    assert torch.equal(test.images, fashion["test"].images)
    assert torch.equal(test.labels, fashion["test"].labels)


def test_changed_content_is_caught_and_named(tmp_path):
    src = real_fashion_dir()
    for name in IDX_FILES:
        shutil.copy(src / f"{name}.gz", tmp_path / f"{name}.gz")
    labels = bytearray(gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # one label changed, still a valid file
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert str(bad) in msg and "content differs from the published fashion-mnist" in msg
    assert "verify=False" in msg
    ds = load_dataset("fashion-mnist", "test", data_dir=tmp_path, verify=False)
    assert ds.integrity == "mismatch" and int(ds.labels[92]) == labels[100]
    statuses = {c.file: c.status for c in ds.checks}
    assert statuses == {"t10k-images-idx3-ubyte": "verified", "t10k-labels-idx1-ubyte": "mismatch"}


def test_fashion_files_are_not_taken_for_mnist(tmp_path):
    """The two datasets share file names; the payload hash tells them apart."""
    src = real_fashion_dir()
    for name in IDX_FILES:
        shutil.copy(src / f"{name}.gz", tmp_path / f"{name}.gz")
    with pytest.raises(
        DataError, match="this is fashion-mnist's t10k-images-idx3-ubyte, not mnist"
    ):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_validation_split_and_an_augmented_epoch_of_real_data(fashion):
    train, val = fashion["train"].split_validation(1 / 12, seed=0)
    assert len(train) == 55_000 and val.class_counts() == [500] * 10
    test = fashion["test"]
    assert Augment.standard(test).flip and Augment.standard(test).crop_padding == 2
    p = BatchPipeline(test, 500, augment=Augment.standard(test, erase_p=0.25), seed=1)
    counts = torch.zeros(10, dtype=torch.int64)
    for x, y in p.epoch(0):
        assert x.shape == (len(y), 1, 28, 28) and torch.isfinite(x).all()
        counts += torch.bincount(y, minlength=10)
    assert counts.tolist() == [1_000] * 10
