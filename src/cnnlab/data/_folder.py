"""Image folders: one subfolder per class, decoded once with Pillow into one uint8 array.

Layout (torchvision's ``ImageFolder`` convention): ``ROOT/<class>/<image>``, class index =
position of the folder name in sorted order.  If ``ROOT`` holds ``train/`` (and optionally
``test/`` or ``val/``) with class folders inside, those are the splits; otherwise ``ROOT``
itself is the ``train`` split.

Policies, applied once at load time (never per batch):

* **mode** ``"L"`` or ``"RGB"`` (every image converted); ``"auto"`` picks ``"L"`` when every
  image is single-channel, else ``"RGB"``.  Alpha is dropped; 16-bit grey is scaled to 8 bits.
* **size** ``None`` rejects a folder of mixed sizes (naming the first odd file);
  ``(H, W)`` resizes each image so that it covers H x W (one scale factor, antialiased
  bilinear) and crops the centre.

Images are untrusted input: only the formats in :data:`FORMATS` are decoded, Pillow's
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) stays on and its warning counts as an
error, truncated files are never half-loaded (``LOAD_TRUNCATED_IMAGES`` stays off), and every
failure names the file.  Hidden files (name starting with ".") are skipped; any other file
that is not a readable image is an error, not silently dropped.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from struct import error as _StructError
from typing import NamedTuple

import numpy as np
from PIL import Image

from cnnlab._io import available_memory, format_bytes
from cnnlab.errors import DataError

__all__ = [
    "FORMATS",
    "DecodedImage",
    "FolderSplit",
    "STREAM_BATCH_MIN",
    "check_stream_memory",
    "fits_in_memory",
    "folder_splits",
    "memory_needed",
    "read_folder",
    "read_image",
    "scan_split",
]

# Decoders Pillow may try.  Restricting them keeps rarely used (and more often vulnerable)
# decoders such as TIFF, FITS, EPS or PDF away from user files.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")

_SPLIT_DIRS = ("train", "test", "val")


@dataclass(frozen=True)
class FolderSplit:
    """The files of one split: ``classes`` (sorted folder names) and (path, class index) pairs."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[Path, int], ...]


def _class_dirs(root: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{root}: cannot be listed: {exc.strerror or exc}") from exc
    return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]


def scan_split(root: Path, classes: tuple[str, ...] | None = None) -> FolderSplit:
    """The class folders and files of one split at ``root``; ``classes`` (the training split's)
    makes a class folder unknown to them an error."""
    dirs = _class_dirs(root)
    if not dirs:
        raise DataError(
            f"{root}: no class folders; an image folder dataset holds one subfolder per class "
            "(e.g. ROOT/cat/1.png, ROOT/dog/2.jpg)"
        )
    names = tuple(d.name for d in dirs)
    if classes is None:
        classes = names
    else:
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise DataError(
                f"{root}: class folder(s) {', '.join(unknown)} do not exist in the training "
                f"split (its classes: {', '.join(classes)})"
            )
    files: list[tuple[Path, int]] = []
    for d in dirs:
        found = sorted(
            p
            for p in d.rglob("*")
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(d).parts)
        )
        if not found:
            raise DataError(f"{d}: empty class folder: class {d.name!r} has no images")
        index = classes.index(d.name)
        files.extend((p, index) for p in found)
    return FolderSplit(root, classes, tuple(files))


def folder_splits(root: str | Path) -> dict[str, Path]:
    """Split name -> the folder holding its class folders, for the dataset at ``root``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such directory (folder:PATH needs a folder of class folders)")
    splits = {name: root / name for name in _SPLIT_DIRS if (root / name).is_dir()}
    if "train" in splits:
        return splits
    return {"train": root}


def _open(path: Path, mode: str) -> Image.Image:
    """Decode ``path`` fully and convert it to ``mode`` ("L" or "RGB"); DataError on failure."""
    return _convert(_decode(path, "; remove it from the class folder"), mode, path)


def _decode(path: Path, hint: str = "") -> Image.Image:
    """Decode ``path`` fully, as the file has it; DataError on failure (``hint`` ends the
    message of a file that is no image)."""
    try:
        with warnings.catch_warnings():
            # Above MAX_IMAGE_PIXELS Pillow only warns (it raises above twice that); cnnlab
            # treats both as a refused decompression bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as img:
                img.load()
                return img
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{path}: refused as a possible decompression bomb ({exc}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS if the image is genuine"
        ) from None
    except Image.UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image in a format cnnlab reads ({', '.join(FORMATS)}){hint}"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, _StructError) as exc:
        reason = str(exc) or type(exc).__name__
        hint = " (the file is truncated or damaged)" if "truncated" in reason else ""
        raise DataError(f"{path}: cannot be decoded: {reason}{hint}") from None


def _convert(img: Image.Image, mode: str, path: Path) -> Image.Image:
    """``img`` as ``mode``; for ``"auto"``, as "L" if it is single-channel, else as "RGB"."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: Pillow's own I -> L conversion clips at 255, so keep the top 8 bits.
        arr = np.asarray(img).astype(np.int64)
        img = Image.fromarray((np.clip(arr, 0, 65535) >> 8).astype(np.uint8), mode="L")
    elif img.mode == "F":
        raise DataError(f"{path}: floating-point image (mode F); cnnlab reads 8-bit images")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA")  # palette transparency resolved before alpha is dropped
    if mode == "auto":
        mode = "L" if img.mode in ("1", "L", "LA") else "RGB"
    return img if img.mode == mode else img.convert(mode)


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to cover (H, W), preserving the aspect ratio, then crop the centre."""
    h, w = size
    scale = max(h / img.height, w / img.width)
    new_w = max(w, round(img.width * scale))
    new_h = max(h, round(img.height * scale))
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = (new_w - w) // 2
    top = (new_h - h) // 2
    return img.crop((left, top, left + w, top + h))


class DecodedImage(NamedTuple):
    """One image file as :func:`read_image` gives it: ``pixels`` uint8 (C, H, W) after the
    conversion, and the file's own Pillow mode (``"RGB"``, ``"L"``, ``"RGBA"``, ``"P"``...) and
    size (H, W) before it."""

    pixels: np.ndarray
    source_mode: str
    source_size: tuple[int, int]


def read_image(
    path: str | Path, *, mode: str = "auto", size: tuple[int, int] | None = None
) -> DecodedImage:
    """Decode one image file with the policies of image folders (see the module doc).

    ``mode``: ``"L"`` (grey; colour becomes ITU-R 601-2 luma, ``L = 0.299 R + 0.587 G +
    0.114 B``, as Pillow converts), ``"RGB"`` (grey is repeated in R, G and B) or ``"auto"``.
    ``size`` (H, W): scaled to cover it and centre-cropped; None keeps the file's size.
    Raises :class:`DataError` naming the file when it is not a readable image.
    """
    if mode not in ("auto", "L", "RGB"):
        raise DataError(f"image mode {mode!r}: expected 'L' (grey), 'RGB' or 'auto'")
    path = Path(path)
    img = _decode(path)
    source = (img.mode, (img.height, img.width))
    img = _convert(img, mode, path)
    if size is not None:
        img = _fit(img, size)
    a = np.asarray(img, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return DecodedImage(np.ascontiguousarray(a), *source)


def memory_needed(split: FolderSplit, size: tuple[int, int] | None) -> int:
    """Bytes that decoding ``split`` into memory would take at its peak: every image held
    twice for a moment (decoded, then stacked), as colour (the worst case).  Without a
    ``size`` the first file's header gives it (the images must all have one size)."""
    if size is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(split.files[0][0], formats=FORMATS) as img:  # the header only
                    size = (img.height, img.width)
        except (
            OSError,
            ValueError,
            SyntaxError,
            EOFError,
            _StructError,
            Image.DecompressionBombError,
        ):
            return 0  # unknown: decoding the file will say what is wrong with it
    h, w = size
    return 2 * len(split.files) * 3 * h * w


def fits_in_memory(split: FolderSplit, size: tuple[int, int] | None) -> bool:
    """Whether :func:`memory_needed` is within the memory available now (True where that is
    unknown)."""
    have = available_memory()
    return have is None or memory_needed(split, size) <= have


STREAM_BATCH_MIN = 64  # decoded images that streaming must at least hold at a time


def check_stream_memory(split: FolderSplit, size: tuple[int, int] | None) -> None:
    """Refuse, before decoding anything, a size of which even :data:`STREAM_BATCH_MIN`
    images (held twice while cropped) would not fit in memory: streaming cannot help then."""
    if size is None:
        return
    h, w = size
    need = 2 * STREAM_BATCH_MIN * 3 * h * w
    have = available_memory()
    if have is not None and need > have:
        raise DataError(
            f"{split.root}: image_size {h}x{w} would need about {format_bytes(need)} of memory "
            f"even streamed ({STREAM_BATCH_MIN} images of up to 3x{h}x{w} bytes, held twice); "
            f"this machine has {format_bytes(have)} available; choose a smaller image_size"
        )


def _check_memory(split: FolderSplit, size: tuple[int, int]) -> None:
    """Refuse, before decoding anything, a size whose images would not fit in memory."""
    h, w = size
    n = len(split.files)
    need = memory_needed(split, size)
    have = available_memory()
    if have is not None and need > have:
        raise DataError(
            f"{split.root}: image_size {h}x{w} would need about {format_bytes(need)} of memory "
            f"for {n:,} images (up to 3x{h}x{w} bytes each, held twice while stacking); this "
            f"machine has {format_bytes(have)} available; choose a smaller image_size, or "
            "stream the images from disk (stream=True, --stream)"
        )


def read_folder(
    split: FolderSplit, *, size: tuple[int, int] | None, mode: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Decode every image of ``split``: (N, C, H, W) uint8, (N,) int64 labels, the mode used."""
    if mode not in ("auto", "L", "RGB"):
        raise DataError(f"image mode {mode!r}: expected 'L' (grey), 'RGB' or 'auto'")
    if size is not None:
        _check_memory(split, size)
    arrays: list[np.ndarray] = []  # each (C, H, W), C = 1 or 3
    first: Path | None = None
    for path, _ in split.files:
        img = _open(path, mode)
        if size is not None:
            img = _fit(img, size)
        a = np.asarray(img, dtype=np.uint8)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        if first is None:
            first = path
        elif a.shape[1:] != arrays[0].shape[1:]:
            h0, w0 = arrays[0].shape[1:]
            raise DataError(
                f"{path}: {a.shape[1]}x{a.shape[2]} pixels (HxW), but {first} is {h0}x{w0}; "
                "mixed sizes are rejected unless a size is given (image_size=64, or "
                "--image-size 64, resizes and centre-crops every image)"
            )
        arrays.append(a)
    channels = max(a.shape[0] for a in arrays)
    if channels == 3:  # "auto" met colour: grey images become RGB as Pillow would (R=G=B)
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    labels = np.fromiter((c for _, c in split.files), dtype=np.int64, count=len(split.files))
    return np.stack(arrays), labels, "RGB" if channels == 3 else "L"
