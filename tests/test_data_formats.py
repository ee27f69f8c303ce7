"""The format table: every catalogued dataset has one, and the one integrity check's verdicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cnnlab.data.catalog import CATALOG, FASHION_MNIST, MNIST, DataFile
from cnnlab.data.formats import FORMATS, Digests, check_file, format_of, require_verified
from cnnlab.errors import DataError


def test_every_catalogued_dataset_has_a_format():
    assert {info.kind for info in CATALOG.values()} <= set(FORMATS)
    for info in CATALOG.values():
        fmt = format_of(info)
        assert fmt.name == info.kind
        assert fmt.layouts(info, Path("d"))[0] == Path("d")
        assert all(f.name in fmt.candidates(f.name) for f in info.files)
        assert fmt.to_get(info)


def test_an_unknown_format_names_the_dataset_and_the_known_ones():
    odd = dataclasses.replace(MNIST, kind="hdf5")
    with pytest.raises(DataError, match=r"mnist: unknown dataset format 'hdf5'; known .*idx"):
        format_of(odd)


def test_check_file_verdicts():
    f = DataFile("x", "train", "images", sha256="a" * 64, gz_md5="b" * 32)
    path = Path("x.gz")
    ok = check_file(MNIST, f, path, Digests(sha256="a" * 64), verify=True)
    assert ok.status == "verified" and "sha256" in ok.detail
    bad = check_file(MNIST, f, path, Digests(sha256="c" * 64), verify=False)
    assert bad.status == "mismatch" and "c" * 64 in bad.detail
    with pytest.raises(DataError, match=r"x.gz: sha256 .* decompressed content differs"):
        check_file(MNIST, f, path, Digests(sha256="c" * 64), verify=True)
    with pytest.raises(DataError, match="decompressed content differs from the published x"):
        require_verified(MNIST, f, bad)
    gz_only = DataFile("x", "train", "images", gz_md5="b" * 32)
    recompressed = check_file(MNIST, gz_only, path, Digests(sha256="d" * 64, gz_md5="e" * 32), True)
    assert recompressed.status == "unverified" and "recompressed" in recompressed.detail
    with pytest.raises(DataError):  # a download must match upstream's container exactly
        require_verified(MNIST, gz_only, recompressed)
    md5 = DataFile("b", "train", "batch", md5="f" * 32)
    assert check_file(MNIST, md5, path, Digests(md5="f" * 32), True).status == "verified"


def test_a_file_of_another_dataset_is_named_as_such():
    fashion = FASHION_MNIST.files[0]
    mnist_file = next(f for f in MNIST.files if f.name == fashion.name)
    with pytest.raises(DataError, match="this is fashion-mnist's train-images-idx3-ubyte"):
        check_file(MNIST, mnist_file, Path("p"), Digests(sha256=fashion.sha256), verify=True)
