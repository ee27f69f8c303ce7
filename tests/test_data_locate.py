"""Finding files (search order, layouts, the not-found message) and downloading them from a
real HTTP server on loopback started by the tests."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import socket
import threading

import numpy as np
import pytest
import torch
from test_data_writers import (
    IDX_FILES,
    cifar10_like,
    idx_bytes,
    isolate,
    mnist_like,
    real_fashion_dir,
    tar_gz,
    write,
)

from cnnlab.data import find_dataset, load_dataset, locate, search_dirs
from cnnlab.data.catalog import CIFAR10, FASHION_MNIST, DataFile, dataset_info
from cnnlab.errors import DataError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens here any more


# ---- search order and layouts ------------------------------------------------------------


def test_search_order_data_dir_then_env_then_cache_then_system(tmp_path, monkeypatch):
    home = tmp_path / "home"
    cache = home / ".cache" / "cnnlab" / "mnist"
    env = tmp_path / "env"
    monkeypatch.setenv("CNNLAB_DATA", str(env))
    system = tmp_path / "system"
    info = dataclasses.replace(dataset_info("mnist"), system_dirs=((str(system), "test system"),))
    given = tmp_path / "given"
    assert [o for o, _ in search_dirs(info, given)] == [
        "--data-dir",
        "--data-dir",
        "$CNNLAB_DATA",
        "user cache",
        "test system",
    ]
    for folder in (system, cache, env / "mnist", given / "mnist"):
        mnist_like(folder)
    expected = [
        ("--data-dir", given / "mnist"),
        ("$CNNLAB_DATA", env / "mnist"),
        ("user cache", cache),
        ("test system", system),
    ]
    for origin, folder in expected:
        found = find_dataset(info, given)
        assert (found.origin, found.directory) == (origin, folder)
        shutil.rmtree(folder)
    with pytest.raises(DataError, match="not found"):
        find_dataset(info, given)


def test_layouts_plain_gz_dotted_and_torchvision(tmp_path):
    raw = tmp_path / "a" / "MNIST" / "raw"
    arrays = mnist_like(raw, gz=False)
    assert find_dataset("mnist", tmp_path / "a").directory == raw
    dotted = tmp_path / "b"
    for name, a in arrays.items():
        write(dotted / name.replace("-idx", ".idx"), idx_bytes(a), gz=name.startswith("t10k"))
    ds = load_dataset("mnist", "test", data_dir=dotted)
    assert ds.location.path_of("t10k-images-idx3-ubyte").name == "t10k-images.idx3-ubyte.gz"
    assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))


def test_not_found_says_where_it_looked_and_how_to_get_it(tmp_path):
    partial = tmp_path / "partial"
    mnist_like(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    info = dataclasses.replace(
        FASHION_MNIST,
        system_dirs=((str(tmp_path / "usr-share"), "Debian package dataset-fashion-mnist"),),
    )
    with pytest.raises(DataError) as err:
        find_dataset(info, partial)
    msg = str(err.value)
    assert msg.startswith("dataset 'fashion-mnist' not found. cnnlab looked in:")
    assert f"{partial} (--data-dir): incomplete: missing t10k-labels-idx1-ubyte" in msg
    assert f"{partial / 'fashion-mnist'} (--data-dir): no such folder" in msg
    assert "$CNNLAB_DATA is not set" in msg
    assert str(tmp_path / "home" / ".cache" / "cnnlab" / "fashion-mnist") in msg
    assert "(Debian package dataset-fashion-mnist): no such folder" in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in msg
    assert f"into {partial / 'fashion-mnist'}" in msg  # where a download would go
    assert "--download" in msg


def test_unknown_names_get_suggestions():
    with pytest.raises(
        DataError, match="unknown dataset 'fashon-mnist'; did you mean fashion-mnist"
    ):
        find_dataset("fashon-mnist")
    assert dataset_info("CIFAR-10") is CIFAR10 and dataset_info("fashion_mnist") is FASHION_MNIST


def test_locate_reports_without_raising(tmp_path):
    found, looked = locate("cifar10", tmp_path)
    assert found is None and [n for *_, n in looked][:2] == ["none of its files", "no such folder"]


# ---- downloads from a real server on loopback --------------------------------------------


def _no_system(info):
    return dataclasses.replace(info, system_dirs=())


def test_download_of_the_real_files_verifies_the_payload(tmp_path, server):
    base, www = server
    src = real_fashion_dir()
    for name in IDX_FILES:
        shutil.copy(src / f"{name}.gz", www / f"{name}.gz")  # Debian's recompressed .gz
    info = dataclasses.replace(_no_system(FASHION_MNIST), urls=(base,))
    seen = []
    loc = find_dataset(info, tmp_path / "data", download=True, progress=lambda *a: seen.append(a))
    assert loc.origin == "download" and loc.directory == tmp_path / "data" / "fashion-mnist"
    assert sorted(p.name for p in loc.directory.iterdir()) == sorted(f"{n}.gz" for n in IDX_FILES)
    sizes = {what: total for what, _, total in seen}
    assert sizes["train-images-idx3-ubyte.gz"] == 26_421_856
    done = [d for what, d, _ in seen if what == "train-labels-idx1-ubyte.gz"]
    assert done[0] == 0 and done[-1] == 29_491 and done == sorted(done)
    test = load_dataset(info, "test", data_dir=tmp_path / "data")
    assert test.integrity == "verified" and len(test) == 10_000


def _fake_mnist_info(www, base, n=10):
    """MNIST's catalogue entry with hashes of files written here, served from ``www``."""
    arrays = mnist_like(www, n_train=n, n_test=n, gz=True)
    files = tuple(
        DataFile(
            f.name, f.split, f.role, sha256=hashlib.sha256(idx_bytes(arrays[f.name])).hexdigest()
        )
        for f in dataset_info("mnist").files
    )
    return dataclasses.replace(_no_system(dataset_info("mnist")), files=files, urls=(base,))


def test_a_corrupt_mirror_is_skipped_and_nothing_half_done_is_kept(tmp_path, server):
    base, www = server
    info = _fake_mnist_info(www / "good", base + "good/")
    (www / "bad").mkdir()
    for name in IDX_FILES:  # same structure, other content: only the hash can tell
        shutil.copy(www / "good" / f"{name}.gz", www / "bad" / f"{name}.gz")
    write(www / "bad" / "t10k-labels-idx1-ubyte", idx_bytes(np.full(10, 3, np.uint8)), gz=True)
    target = tmp_path / "d"
    only_bad = dataclasses.replace(info, urls=(base + "bad/",))
    with pytest.raises(DataError) as err:
        find_dataset(only_bad, target, download=True)
    msg = str(err.value)
    assert "The download failed: " in msg and "t10k-labels-idx1-ubyte.gz: rejected" in msg
    assert "decompressed content differs" in msg
    assert not (target / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in (target / "mnist").iterdir() if ".part" in p.name or ".tmp" in p.name]
    # the good files fetched before the bad one are kept and verified again, not re-fetched
    both = dataclasses.replace(info, urls=(base + "bad/", base + "good/"))
    loc = find_dataset(both, target, download=True)
    ds = load_dataset(both, "test", data_dir=target)
    assert loc.origin == "download" and ds.integrity == "verified"


def test_http_errors_and_offline_are_explained(tmp_path, server, monkeypatch):
    base, _ = server
    info = _no_system(dataset_info("mnist"))
    monkeypatch.setenv("CNNLAB_DATA_MIRROR", f"{base}missing/ {_closed_port_url()}")
    with pytest.raises(DataError) as err:
        find_dataset(info, tmp_path, download=True)
    msg = str(err.value)
    assert "HTTP 404" in msg and "connection refused" in msg
    assert "ossci-datasets" not in msg.split("The download failed")[1].split("To get it")[0]
    assert "To get it:" in msg and "--download" not in msg.split("To get it:")[1]


def test_cifar_download_unpacks_only_the_verified_members(tmp_path, server):
    base, www = server
    src = tmp_path / "src"
    cifar10_like(src, per_batch=3, n_test=4)
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in src.iterdir()}
    members["cifar-10-batches-py/../../escape"] = b"never written"
    archive = tar_gz(www / "cifar-10-python.tar.gz", members)
    md5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731
    info = dataclasses.replace(
        _no_system(CIFAR10),
        urls=(base,),
        archive_md5=md5(archive.read_bytes()),
        files=tuple(
            dataclasses.replace(f, md5=md5((src / f.name).read_bytes())) for f in CIFAR10.files
        ),
    )
    loc = find_dataset(info, tmp_path / "data", download=True)
    folder = tmp_path / "data" / "cifar10"
    assert loc.directory == folder / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == sorted(
        f.name for f in CIFAR10.files
    )  # no archive left, no stray member
    assert not (tmp_path / "escape").exists()
    ds = load_dataset(info, "train", data_dir=tmp_path / "data")
    assert ds.integrity == "verified" and len(ds) == 15
