"""Image folders: Pillow decoding once, size and mode policies, untrusted-file checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_writers import isolate

from cnnlab.data import load_dataset
from cnnlab.errors import DataError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "home")


def _save(path, array, fmt=None, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, fmt)
    return path


def _grey(value, h=8, w=8):
    return np.full((h, w), value, np.uint8)


def test_classes_are_sorted_folders_and_pixels_survive(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    b = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    _save(tmp_path / "zebra" / "1.png", a)
    _save(tmp_path / "ant" / "1.png", b)
    _save(tmp_path / "ant" / "2.bmp", a)
    (tmp_path / "ant" / ".DS_Store").write_bytes(b"\x00\x01junk")  # hidden: skipped
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ("ant", "zebra") and ds.labels.tolist() == [0, 0, 1]
    assert ds.images.shape == (3, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[0, 0], torch.from_numpy(b))
    assert torch.equal(ds.images[2, 0], torch.from_numpy(a))
    assert ds.split == "train" and ds.name == f"folder:{tmp_path}"
    x = np.stack([b, a, a]) / 255.0
    assert ds.mean[0] == pytest.approx(x.mean()) and ds.std[0] == pytest.approx(x.std())


def test_auto_mode_turns_grey_into_rgb_when_any_image_has_colour(tmp_path):
    _save(tmp_path / "a" / "grey.png", _grey(77))
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    _save(tmp_path / "b" / "red.jpg", colour)
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.images.shape == (2, 3, 8, 8)
    assert ds.images[0].unique().tolist() == [77]  # R = G = B, as Pillow's L -> RGB
    assert abs(int(ds.images[1, 0, 4, 4]) - 200) <= 3  # JPEG is lossy
    grey = load_dataset(f"folder:{tmp_path}", mode="L")
    assert grey.images.shape == (2, 1, 8, 8)
    with pytest.raises(DataError, match="image mode 'CMYK'"):
        load_dataset(f"folder:{tmp_path}", mode="CMYK")


def test_palette_alpha_and_16_bit_images_convert(tmp_path):
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.info["transparency"] = 0
    (tmp_path / "p").mkdir()
    pal.save(tmp_path / "p" / "pal.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1] = 90
    _save(tmp_path / "q" / "rgba.png", rgba, mode="RGBA")
    deep = np.full((8, 8), 0x8000, np.uint16)
    (tmp_path / "r").mkdir()
    Image.fromarray(deep).save(tmp_path / "r" / "deep.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.images.shape == (3, 3, 8, 8)
    assert ds.images[0, :, 0, 0].tolist() == [10, 20, 30]
    assert ds.images[1, :, 0, 0].tolist() == [0, 90, 0]
    assert ds.images[2].unique().tolist() == [0x80]  # 16-bit 0x8000 -> 8-bit 0x80, not clipped


def test_mixed_sizes_are_rejected_unless_a_size_is_given(tmp_path):
    _save(tmp_path / "a" / "1.png", _grey(0, 8, 8))
    _save(tmp_path / "a" / "2.png", _grey(0, 8, 8))
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 20:] = 255  # left half black, right half white
    odd = _save(tmp_path / "b" / "wide.png", wide)
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{tmp_path}")
    msg = str(err.value)
    assert str(odd) in msg and "20x40 pixels (HxW)" in msg and "is 8x8" in msg
    assert "image_size" in msg
    ds = load_dataset(f"folder:{tmp_path}", image_size=16)
    assert ds.images.shape == (3, 1, 16, 16)
    # 20x40 scaled by 0.8 to 16x32, centre crop keeps columns 8..23: 8 black, then 8 white.
    row = ds.images[2, 0, 8]
    assert row[:7].max() < 20 and row[9:].min() > 235
    with pytest.raises(DataError, match="image_size 0"):
        load_dataset(f"folder:{tmp_path}", image_size=0)


def test_a_truncated_jpeg_is_named(tmp_path):
    _save(tmp_path / "a" / "ok.png", _grey(1))
    full = _save(
        tmp_path / "b" / "cut.jpg",
        np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8),
    )
    data = full.read_bytes()
    full.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{tmp_path}")
    assert str(full) in str(err.value) and "truncated" in str(err.value)


def test_a_non_image_file_in_a_class_folder_is_named(tmp_path):
    _save(tmp_path / "a" / "ok.png", _grey(1))
    notes = tmp_path / "a" / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{tmp_path}")
    assert str(notes) in str(err.value) and "not an image" in str(err.value)


def test_formats_outside_the_allowed_decoders_are_not_tried(tmp_path):
    _save(tmp_path / "a" / "ok.png", _grey(1))
    Image.fromarray(_grey(5)).save(tmp_path / "a" / "x.pcx")  # Pillow reads PCX; cnnlab won't
    with pytest.raises(DataError, match=r"x\.pcx: not an image in a format cnnlab reads"):
        load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize("limit", [8 * 8 - 1, 8 * 8 // 2 - 1], ids=["warning", "error"])
def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch, limit):
    """Pillow's own test trick: lower MAX_IMAGE_PIXELS instead of building a huge file.
    Above the limit Pillow warns, above twice the limit it raises; both are refused."""
    bomb = _save(tmp_path / "a" / "bomb.png", _grey(3))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{tmp_path}")
    assert str(bomb) in str(err.value) and "decompression bomb" in str(err.value)


def test_an_empty_class_folder_is_named(tmp_path):
    _save(tmp_path / "a" / "ok.png", _grey(1))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".hidden").write_text("")
    with pytest.raises(DataError, match=rf"{tmp_path / 'b'}: empty class folder: class 'b'"):
        load_dataset(f"folder:{tmp_path}")


def test_no_class_folders_and_no_folder(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")


def test_train_and_test_subfolders_are_splits_with_the_training_classes(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        _save(tmp_path / "train" / cls / "1.png", _grey(value))
    _save(tmp_path / "test" / "dog" / "9.png", _grey(100))
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert test.classes == ("cat", "dog") and test.labels.tolist() == [1]
    assert test.mean == train.mean  # normalised with the training split's statistics
    assert train.mean[0] == pytest.approx(105 / 255)
    with pytest.raises(DataError, match=r"no 'val' split; it has train, test"):
        load_dataset(f"folder:{tmp_path}", "val")
    _save(tmp_path / "test" / "fox" / "1.png", _grey(1))
    with pytest.raises(DataError, match=r"class folder\(s\) fox do not exist in the training"):
        load_dataset(f"folder:{tmp_path}", "test")


def test_the_test_split_is_decoded_in_the_training_mode(tmp_path):
    colour = np.zeros((8, 8, 3), np.uint8)
    _save(tmp_path / "train" / "a" / "c.png", colour)
    _save(tmp_path / "test" / "a" / "g.png", _grey(9))  # grey alone would be "L"
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert test.images.shape == (1, 3, 8, 8)


def test_folder_options_do_not_apply_to_catalogued_datasets():
    with pytest.raises(DataError, match="image_size and mode apply to folder:PATH"):
        load_dataset("mnist", image_size=32)
