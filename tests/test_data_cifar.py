"""CIFAR batches: restricted unpickling, schema checks, archives, on batches written here."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pytest
import torch
from test_data_writers import cifar10_like, cifar_batch, isolate, py2_pickle, tar_gz

from cnnlab.data import load_dataset
from cnnlab.data._cifar import parse_batch, restricted_loads
from cnnlab.data.catalog import CIFAR10, CIFAR100
from cnnlab.errors import DataError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "home")


def _parse(data: bytes, num_classes: int = 10):
    return parse_batch(data, "BATCH", label_key="labels", num_classes=num_classes)


def test_official_style_batch_round_trips():
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    images, labels = _parse(cifar_batch(x, [3, 1, 4, 1]))
    assert images.dtype == np.uint8 and images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images, x)
    assert labels.dtype == np.int64 and labels.tolist() == [3, 1, 4, 1]


def test_python3_protocol2_pickles_load_too():
    """Python 3 at protocol 2 writes bytes through _codecs.encode(..., 'latin1')."""
    x = np.zeros((2, 3072), np.uint8)
    x[1, 5] = 200
    data = pickle.dumps({"data": x, "labels": [0, 9]}, protocol=2)
    assert any(
        a == "_codecs encode" for op, a, _ in pickletools.genops(data) if op.name == "GLOBAL"
    )
    images, labels = _parse(data)
    assert images[1, 0, 0, 5] == 200 and labels.tolist() == [0, 9]


class _Payload:
    """Unpickling this opens ``path`` for writing, which creates the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("where", ["top level", "inside a batch", "in an object array"])
def test_a_pickle_that_calls_anything_else_is_refused_and_never_runs(tmp_path, where):
    sentinel = tmp_path / "sentinel"
    payload = _Payload(sentinel)
    obj = {
        "top level": payload,
        "inside a batch": {"data": np.zeros((1, 3072), np.uint8), "labels": [payload]},
        "in an object array": {"data": np.array([payload], dtype=object), "labels": [0]},
    }[where]
    data = pickle.dumps(obj, protocol=2)
    # The payload is live: plain pickle.loads creates the file (so this test can fail) ...
    pickle.loads(data)
    assert sentinel.exists()
    sentinel.unlink()
    # ... and cnnlab refuses it before calling anything.
    with pytest.raises(DataError) as err:
        _parse(data)
    assert not sentinel.exists()
    msg = str(err.value)
    assert msg.startswith("BATCH: refused") and "open" in msg and "may be malicious" in msg


def test_other_codecs_through_codecs_encode_are_refused():
    data = pickle.dumps({"data": b"x", "labels": []}, protocol=2).replace(b"latin1", b"rot13\x00")
    with pytest.raises(
        DataError,
        match="BATCH: refused: .*_codecs.encode on text through a codec other than latin1",
    ):
        _parse(data)


def test_every_truncation_is_one_error_type():
    data = cifar_batch(np.zeros((2, 3, 32, 32), np.uint8), [0, 1])
    cuts = sorted(set(range(0, 200)) | set(range(len(data) - 200, len(data))) | {len(data) // 2})
    for cut in cuts:
        with pytest.raises(DataError, match="BATCH: "):
            _parse(data[:cut])


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1, 2], "a CIFAR batch is a dict, this pickle holds a list"),
        ({"labels": [0]}, "missing key"),
        ({"data": np.zeros((1, 3072), np.float32), "labels": [0]}, "must be a uint8 array"),
        ({"data": np.zeros((1, 3, 32, 32), np.uint8), "labels": [0]}, "must be a uint8 array"),
        ({"data": np.zeros((1, 1024), np.uint8), "labels": [0]}, "rows hold 1024 bytes"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "2 images but 1 entries"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": [10]}, "label 10 of image 0"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": [-1]}, "outside the 10 classes"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": [1.5]}, "list of integers"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": ["1"]}, "list of integers"),
    ],
)
def test_schema_violations(obj, message):
    with pytest.raises(DataError, match=message):
        _parse(py2_pickle(obj))


def test_the_loader_refuses_a_malicious_batch_file_and_names_it(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    cifar10_like(root)
    sentinel = tmp_path / "sentinel"
    (root / "data_batch_3").write_bytes(pickle.dumps(_Payload(sentinel), protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path, verify=False)
    assert not sentinel.exists()


def test_the_loader_names_a_truncated_batch(tmp_path):
    cifar10_like(tmp_path)
    data = (tmp_path / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(data[: len(data) - 1000])
    with pytest.raises(DataError, match=r"test_batch: not a readable CIFAR batch: truncated"):
        load_dataset("cifar10", "test", data_dir=tmp_path, verify=False)


def test_cifar10_loads_with_published_hashes_checked(tmp_path):
    arrays = cifar10_like(tmp_path / "cifar-10-batches-py", per_batch=6, n_test=10)
    # Files written here differ from the published batches: refused unless verify=False.
    with pytest.raises(DataError, match=r"data_batch_1: md5 is .*published c99cafc1"):
        load_dataset("cifar10", data_dir=tmp_path)
    train = load_dataset("cifar10", data_dir=tmp_path, verify=False)
    test = load_dataset("cifar10", "test", data_dir=tmp_path, verify=False)
    assert train.images.shape == (30, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images, torch.from_numpy(arrays["train_x"]))
    assert train.labels.tolist() == arrays["train_y"].tolist()
    assert len(test) == 10 and test.classes == CIFAR10.classes
    assert train.integrity == "mismatch" and {c.status for c in train.checks} == {"mismatch"}
    x = arrays["train_x"].astype(np.float64) / 255
    for c in range(3):
        assert train.mean[c] == pytest.approx(x[:, c].mean(), abs=1e-12)
        assert test.std[c] == pytest.approx(x[:, c].std(), abs=1e-12)


def test_cifar10_is_read_from_the_unopened_archive(tmp_path):
    folder = tmp_path / "src"
    arrays = cifar10_like(folder, per_batch=4, n_test=6)
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in folder.iterdir()}
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    (tmp_path / "dl").mkdir()
    tar_gz(tmp_path / "dl" / "cifar-10-python.tar.gz", members)
    test = load_dataset("cifar10", "test", data_dir=tmp_path / "dl", verify=False)
    assert torch.equal(test.images, torch.from_numpy(arrays["test_x"]))
    assert test.location.archive == tmp_path / "dl" / "cifar-10-python.tar.gz"
    assert "cifar-10-python.tar.gz:cifar-10-batches-py/test_batch" in str(test.checks[0].path)


def test_an_archive_with_a_link_in_place_of_a_batch_is_refused(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        meta = py2_pickle({"label_names": list(CIFAR10.classes)})
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    with pytest.raises(DataError, match="test_batch is not a regular file"):
        load_dataset("cifar10", "test", data_dir=tmp_path, verify=False)


def test_cifar100_uses_fine_labels_and_its_meta(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    y = [0, 99, 50, 3, 3, 98, 1]
    for name in ("train", "test"):
        batch = py2_pickle({"data": x.reshape(7, -1), "fine_labels": y, "coarse_labels": [0] * 7})
        (tmp_path / name).write_bytes(batch)
    meta = {"fine_label_names": list(CIFAR100.classes), "coarse_label_names": ["a"] * 20}
    (tmp_path / "meta").write_bytes(py2_pickle(meta))
    ds = load_dataset("cifar100", "test", data_dir=tmp_path, verify=False)
    assert ds.labels.tolist() == y and ds.num_classes == 100 and ds.classes[99] == "worm"
    (tmp_path / "meta").write_bytes(py2_pickle({"fine_label_names": ["only", "two"]}))
    with pytest.raises(DataError, match=r"meta: 'fine_label_names' must be a list of 100"):
        load_dataset("cifar100", "test", data_dir=tmp_path, verify=False)


def test_restricted_loads_is_never_plain_pickle():
    """A static gate: the data package calls no pickle.load/loads of its own."""
    import pathlib

    import cnnlab.data as pkg

    for path in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "pickle.load(" not in text and "pickle.loads(" not in text, path
    assert restricted_loads(pickle.dumps([1, "a"], protocol=2)) == [1, "a"]
