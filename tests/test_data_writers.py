"""Writers of small dataset files in the real formats, for the data tests (and their own tests).

IDX as LeCun's page specifies it; CIFAR batches as the official Python 2 cPickle wrote them
(protocol 2, byte strings as SHORT_BINSTRING/BINSTRING, numpy reconstructed through
``numpy.core.multiarray._reconstruct``); image folders through Pillow.
"""

from __future__ import annotations

import gzip
import io
import pickle
import pickletools
import struct
import tarfile
from pathlib import Path

import numpy as np

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B}
_IDX_CODES |= {np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray, *, type_code: int | None = None) -> bytes:
    """The IDX encoding of ``array``: magic, big-endian dims, big-endian C-order data."""
    code = _IDX_CODES[array.dtype] if type_code is None else type_code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def mnist_like(
    folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write the 4 IDX files of an MNIST-shaped dataset (28x28, 10 classes) into ``folder``."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        write(folder / name, idx_bytes(a), gz=gz)
    return arrays


# ---- CIFAR: Python 2 style pickles -----------------------------------------------------------

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch can be extended
    """Protocol 2 as Python 2's cPickle wrote it: every str/bytes is a py2 byte string."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):  # noqa: ANN001 - pickle's signature
        if obj is _RECONSTRUCT:  # the official files name numpy 1's module
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj: object) -> bytes:
    out = io.BytesIO()
    _Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def cifar_batch(images: np.ndarray, labels: list[int], label_key: str = "labels") -> bytes:
    """A CIFAR batch: images (N, 3, 32, 32) uint8 stored as rows of R, G, B planes."""
    return py2_pickle(
        {
            "batch_label": "training batch 1 of 5",
            label_key: list(labels),
            "data": images.reshape(len(images), -1),
            "filenames": [f"img_{i}.png" for i in range(len(images))],
        }
    )


def cifar10_like(
    folder: Path, per_batch: int = 8, n_test: int = 10, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write data_batch_1..5, test_batch and batches.meta into ``folder``; return the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for b in range(1, 6):
        x = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        (folder / f"data_batch_{b}").write_bytes(cifar_batch(x, y))
        xs.append(x)
        ys += y
    tx = rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8)
    ty = [i % 10 for i in range(n_test)]
    (folder / "test_batch").write_bytes(cifar_batch(tx, ty))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    meta = {"label_names": [*names, "truck"], "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return {
        "train_x": np.concatenate(xs),
        "train_y": np.array(ys),
        "test_x": tx,
        "test_y": np.array(ty),
    }


def tar_gz(archive: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


# ---- the writers' own tests -------------------------------------------------------------------


def test_idx_bytes_matches_the_mnist_header_layout():
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes.fromhex("00000803")  # MNIST images' magic number
    assert struct.unpack(">3I", data[4:16]) == (2, 28, 28)
    assert len(data) == 16 + 2 * 28 * 28
    assert idx_bytes(np.array([1, 2], np.int16))[4 + 4 :] == b"\x00\x01\x00\x02"  # big-endian


def test_py2_pickle_looks_like_the_official_batches():
    data = cifar_batch(np.zeros((2, 3, 32, 32), np.uint8), [0, 1])
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    globals_ = [arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]
    assert ops[0] == "PROTO" and "BINUNICODE" not in ops and "SHORT_BINSTRING" in ops
    assert sorted(set(globals_)) == [
        "numpy dtype",
        "numpy ndarray",
        "numpy.core.multiarray _reconstruct",
    ]
    # Python 3 reads it as torchvision does (latin1): str keys, the array intact.
    obj = pickle.loads(data, encoding="latin1")
    assert obj["labels"] == [0, 1] and obj["data"].shape == (2, 3072)


def isolate(monkeypatch, home: Path) -> None:
    """Point every place cnnlab searches at an empty ``home`` (no real caches or mirrors)."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_DATA_MIRROR", raising=False)


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


def real_fashion_dir() -> Path:
    """The real Fashion-MNIST files (Debian's dataset-fashion-mnist), or a loud failure.

    Missing files FAIL the test with the way to install them; only an explicit
    CNNLAB_ALLOW_MISSING_DATA=1 turns that into a skip, whose reason pytest -ra prints.
    """
    import os

    import pytest

    if all((REAL_FASHION / f"{name}.gz").is_file() for name in IDX_FILES):
        return REAL_FASHION
    msg = (
        f"the real Fashion-MNIST files are missing from {REAL_FASHION}: install Debian's "
        "package (sudo apt-get install dataset-fashion-mnist, which `make test` does), "
        "or set CNNLAB_ALLOW_MISSING_DATA=1 to skip the tests that need them"
    )
    if os.environ.get("CNNLAB_ALLOW_MISSING_DATA") == "1":
        pytest.skip("SKIPPED ON PURPOSE (CNNLAB_ALLOW_MISSING_DATA=1): " + msg)
    pytest.fail(msg)
