"""`cnnlab data list|info|show` end to end through the real dispatcher."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
from PIL import Image
from test_data_writers import cifar10_like, isolate, mnist_like

from cnnlab.cli import main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "home")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_dataset_and_where_it_is(tmp_path, capsys):
    mnist_like(tmp_path / "mnist")
    code, out, _ = _run(capsys, "data", "list", "--data-dir", str(tmp_path))
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert {"fashion-mnist", "mnist", "cifar10", "cifar100"} <= set(lines)
    assert f"{tmp_path / 'mnist'} (--data-dir)" in lines["mnist"]
    assert "not found (where looked: cnnlab data info cifar10)" in lines["cifar10"]
    assert "60,000" in lines["mnist"] and "1x28x28" in lines["mnist"]
    assert "folder:PATH" in out


def test_info_reports_counts_classes_statistics_and_integrity(tmp_path, capsys):
    arrays = mnist_like(tmp_path, n_train=40, n_test=20)
    code, out, _ = _run(capsys, "data", "info", "mnist", "--data-dir", str(tmp_path))
    assert code == 0
    assert out.startswith("mnist: MNIST handwritten digits")
    assert "train      40 images, 4 per class" in out and "test       20 images, 2 per class" in out
    mean = arrays["train-images-idx3-ubyte"].mean() / 255
    assert f"mean       {mean:.4f}" in out
    assert "classes    0 0, 1 1, 2 2" in out and "flip       no flips" in out
    assert "integrity  unverified" in out
    assert "train-images-idx3-ubyte  unverified" in out


def test_info_of_a_dataset_that_is_nowhere_exits_2_with_the_whole_story(capsys):
    code, out, err = _run(capsys, "data", "info", "mnist")
    assert code == 2 and out == ""
    assert err.startswith("error: dataset 'mnist' not found. cnnlab looked in:")
    assert "To get it:" in err and "https://ossci-datasets.s3.amazonaws.com/mnist/" in err


def test_offline_download_says_so(capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CNNLAB_DATA_MIRROR", f"http://127.0.0.1:{port}/")
    code, _, err = _run(capsys, "data", "info", "cifar10", "--download")
    assert code == 2
    assert "The download failed: " in err and "connection refused" in err
    assert "cifar-10-python.tar.gz" in err


def test_hash_mismatch_is_an_error_unless_no_verify(tmp_path, capsys):
    cifar10_like(tmp_path)
    code, _, err = _run(capsys, "data", "info", "cifar10", "--data-dir", str(tmp_path))
    assert code == 2 and "data_batch_1: md5 is" in err and "--no-verify" in err
    code, out, _ = _run(
        capsys, "data", "info", "cifar10", "--data-dir", str(tmp_path), "--no-verify"
    )
    assert code == 0 and "integrity  mismatch" in out and "3x32x32 uint8" in out


def test_show_writes_a_labelled_grid(tmp_path, capsys):
    mnist_like(tmp_path / "d", n_train=30)
    out_png = tmp_path / "grid.png"
    argv = ["data", "show", "mnist", "--data-dir", str(tmp_path / "d"), "--n", "9"]
    code, out, _ = _run(capsys, *argv, "--out", str(out_png))
    assert code == 0 and out.startswith(f"wrote {out_png}: 9 images of mnist (train)")
    with Image.open(out_png) as img:
        plain = np.asarray(img.convert("L"))
        assert img.width >= 3 * 84 and img.height > 3 * 84  # 28 px x3 each, plus captions
    code, out, _ = _run(capsys, *argv, "--out", str(out_png), "--augment", "--erase", "1")
    assert code == 0 and "augmented as in training" in out
    with Image.open(out_png) as img:
        assert not np.array_equal(np.asarray(img.convert("L")), plain)


def test_show_of_an_image_folder_and_bad_arguments(tmp_path, capsys):
    for cls in ("cat", "dog"):
        (tmp_path / "f" / cls).mkdir(parents=True)
        Image.new("RGB", (10, 12), "red").save(tmp_path / "f" / cls / "1.png")
    code, out, _ = _run(
        capsys, "data", "show", f"folder:{tmp_path / 'f'}", "--out", str(tmp_path / "g.png")
    )
    assert code == 0 and "2 images of folder:" in out
    code, _, err = _run(
        capsys, "data", "show", f"folder:{tmp_path / 'f'}", "--out", str(tmp_path / "g.nope")
    )
    assert code == 2 and "g.nope: cannot write the image" in err
    code, _, err = _run(capsys, "data", "show", f"folder:{tmp_path / 'f'}", "--n", "0")
    assert code == 2 and "--n 0" in err
    shutil.rmtree(tmp_path / "f" / "dog")
    (tmp_path / "f" / "dog").mkdir()
    code, _, err = _run(capsys, "data", "info", f"folder:{tmp_path / 'f'}")
    assert code == 2 and "empty class folder" in err
