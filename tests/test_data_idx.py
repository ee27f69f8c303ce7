"""IDX files: the strict reader and the MNIST/Fashion-MNIST loader on files written here."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_data_writers import idx_bytes, isolate, mnist_like, write

from cnnlab.data import load_dataset
from cnnlab.data._idx import read_idx
from cnnlab.errors import DataError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "home")


IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        IMAGES,
        np.array([-3, 7], np.int8),
        np.array([[1, -2], [300, 4]], np.int16),
        np.array([1, -70000], np.int32),
        np.array([1.5, -2.25], np.float32),
        np.array([[1e300]], np.float64),
    ],
    ids=["u8", "i8", "i16", "i32", "f32", "f64"],
)
def test_reads_every_idx_type_plain_and_gzipped(tmp_path, array, gz):
    path = write(tmp_path / "x-idx", idx_bytes(array), gz=gz)
    parsed = read_idx(path)
    assert parsed.array.dtype.isnative and parsed.array.dtype.kind == array.dtype.kind
    np.testing.assert_array_equal(parsed.array, array)
    assert (parsed.gz_md5 is not None) == gz


def test_the_hash_covers_the_decompressed_content_not_the_container(tmp_path):
    data = idx_bytes(IMAGES)
    plain = read_idx(write(tmp_path / "a", data))
    gz1 = read_idx(write(tmp_path / "b", data, gz=True))
    (tmp_path / "c.gz").write_bytes(gzip.compress(data, compresslevel=1, mtime=12345))
    gz2 = read_idx(tmp_path / "c.gz")
    assert plain.sha256 == gz1.sha256 == gz2.sha256
    assert gz1.gz_md5 != gz2.gz_md5  # different containers, same data


def _bad(tmp_path, data: bytes, *, ndim=None, gz=False) -> str:
    path = write(tmp_path / "bad-idx3-ubyte", data, gz=gz)
    with pytest.raises(DataError) as err:
        read_idx(path, ndim=ndim, what="images")
    assert str(path) in str(err.value)  # every message names the file
    return str(err.value)


GOOD = idx_bytes(IMAGES)


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic_number(tmp_path, gz):
    msg = _bad(tmp_path, b"\x01\x00" + GOOD[2:], gz=gz)
    assert "bad magic number 0x01000803" in msg and "not an IDX file" in msg
    assert "bad magic" in _bad(tmp_path, b"\x89PNG\r\n\x1a\n" + GOOD)


def test_wrong_type_code(tmp_path):
    msg = _bad(tmp_path, GOOD[:2] + b"\x0a" + GOOD[3:])
    assert "unknown IDX type code 0x0A at byte 2" in msg and "0x08 (unsigned byte)" in msg


def test_wrong_number_of_dimensions(tmp_path):
    labels_file = idx_bytes(np.zeros(3, np.uint8))
    msg = _bad(tmp_path, labels_file, ndim=3)
    assert "declares 1 dimensions" in msg and "expected 3 (N x rows x columns)" in msg
    assert "0 dimensions" in _bad(tmp_path, GOOD[:3] + b"\x00")


@pytest.mark.parametrize("gz", [False, True])
def test_payload_one_byte_short(tmp_path, gz):
    msg = _bad(tmp_path, GOOD[:-1], gz=gz)
    assert "truncated" in msg and "3 x 4 x 5 values (60 bytes" in msg and "1 missing" in msg


@pytest.mark.parametrize("gz", [False, True])
def test_payload_one_byte_long(tmp_path, gz):
    msg = _bad(tmp_path, GOOD + b"\x00", gz=gz)
    assert "1 extra bytes after the 60 bytes" in msg


def test_short_header_zero_dimension_and_absurd_sizes(tmp_path):
    assert "too short for an IDX header" in _bad(tmp_path, b"\x00\x00")
    assert "truncated header" in _bad(tmp_path, GOOD[:9])
    zero = bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert "dimension 0 (byte 4) is 0" in _bad(tmp_path, zero)
    # A 16-byte file claiming 2^32-1 images of 28x28 is refused before any allocation.
    huge = bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert "more than cnnlab reads" in _bad(tmp_path, huge)


def test_corrupt_gzip_stream(tmp_path):
    data = gzip.compress(GOOD * 50)
    path = tmp_path / "broken.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt gzip stream"):
        read_idx(path)
    path.write_bytes(data[:10] + bytes(b ^ 0xFF for b in data[10:30]) + data[30:])
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(path)


def test_checks_hold_under_python_O(tmp_path):
    """The checks are real code, not asserts: the same errors under ``python -O``."""
    write(tmp_path / "short", GOOD[:-1])
    write(tmp_path / "magic", b"\x07" + GOOD[1:])
    (tmp_path / "empty_class" / "a").mkdir(parents=True)
    code = f"""
import pickle
import numpy as np
from cnnlab.data import load_dataset
from cnnlab.data._cifar import parse_batch
from cnnlab.data._idx import read_idx
from cnnlab.errors import DataError
assert False, "asserts must be off"
checks = {{
    "short": lambda: read_idx(r"{tmp_path}/short"),
    "magic": lambda: read_idx(r"{tmp_path}/magic"),
    "cifar label": lambda: parse_batch(
        pickle.dumps({{"data": np.zeros((1, 3072), np.uint8), "labels": [11]}}, protocol=2),
        "b", label_key="labels", num_classes=10),
    "empty class": lambda: load_dataset(r"folder:{tmp_path}/empty_class"),
}}
for name, check in checks.items():
    try:
        check()
    except DataError:
        print("DataError", name)
"""
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "DataError short",
        "DataError magic",
        "DataError cifar label",
        "DataError empty class",
    ]


# ---- the MNIST loader on files written here --------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loads_from_data_dir(tmp_path, gz):
    arrays = mnist_like(tmp_path / "m", n_train=30, n_test=10, gz=gz)
    train = load_dataset("mnist", "train", data_dir=tmp_path / "m")
    test = load_dataset("mnist", "test", data_dir=tmp_path / "m")
    assert train.images.dtype == torch.uint8 and train.images.shape == (30, 1, 28, 28)
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == [
        i % 10 for i in range(30)
    ]
    assert torch.equal(train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert len(test) == 10 and test.classes == tuple("0123456789")
    # mean/std of the *training* split in [0, 1] units, on both splits
    x = arrays["train-images-idx3-ubyte"] / 255.0
    assert train.mean == test.mean and train.std == test.std
    assert train.mean[0] == pytest.approx(x.mean(), abs=1e-12)
    assert train.std[0] == pytest.approx(x.std(), abs=1e-12)
    # MNIST publishes only .gz container hashes: a file written here is unverified, not refused
    assert train.integrity == "unverified"
    assert {c.file for c in train.checks} == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"}


def test_image_and_label_counts_must_match(tmp_path):
    mnist_like(tmp_path, n_train=20)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(19, np.uint8)), gz=True)
    with pytest.raises(DataError, match=r"holds 20 images but .*train-labels.* holds 19 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_label_outside_the_classes(tmp_path):
    mnist_like(tmp_path, n_train=20)
    labels = np.zeros(20, np.uint8)
    labels[13] = 10
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels), gz=True)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert "train-labels-idx1-ubyte.gz" in msg and "label 10 at index 13 (byte 21)" in msg
    assert "10 classes (0..9)" in msg


def test_wrong_image_size_and_type_for_the_named_dataset(tmp_path):
    mnist_like(tmp_path, n_train=20)
    write(
        tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((20, 32, 32), np.uint8)), gz=True
    )
    with pytest.raises(DataError, match="images are 32x32, mnist's are 28x28"):
        load_dataset("mnist", data_dir=tmp_path)
    write(
        tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((20, 28, 28), np.float32)), gz=True
    )
    with pytest.raises(DataError, match=r"type code 0x0D; mnist images are unsigned bytes"):
        load_dataset("mnist", data_dir=tmp_path)
