"""Loaded datasets: one uint8 tensor of images in memory, with labels, classes and statistics.

``load_dataset("fashion-mnist", "train")`` finds the files (see :mod:`cnnlab.data.locate`),
checks their structure and published hashes, and returns a frozen :class:`Dataset`:

* ``images``: uint8 tensor (N, C, H, W), on the CPU, contiguous;
* ``labels``: int64 tensor (N,), each in ``range(len(classes))``;
* ``mean``/``std``: per-channel statistics of the dataset's **training split** in [0, 1]
  units (population std over all pixels), whatever split was loaded, so that train,
  validation and test images are normalised alike.  For CIFAR-10 this gives the well-known
  (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616), not the often copied
  (0.2023, 0.1994, 0.2010), which is a std of something else.
* ``checks``: what the integrity check found for each file.

A validation split (the paper recipes divide the learning rate when *validation* accuracy
plateaus) comes from :meth:`Dataset.split_validation`: stratified by class, deterministic for
its seed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cnnlab.data import _folder
from cnnlab.data.catalog import CATALOG, DatasetInfo
from cnnlab.data.formats import FileCheck, Location, format_of, integrity_of
from cnnlab.data.locate import FOLDER_PREFIX, ProgressFn, find_dataset, resolve
from cnnlab.errors import DataError

if TYPE_CHECKING:
    from cnnlab.data.stream import StreamDataset

__all__ = [
    "Dataset",
    "FileCheck",
    "channel_histograms",
    "channel_stats",
    "derive_seed",
    "load_dataset",
    "stats_of_histograms",
    "validation_indices",
]

SPLITS = ("train", "test", "val")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset split in memory.  See the module doc for the meaning of each field.

    Constructing one directly (from your own tensors) validates it; ``mean``/``std`` left as
    ``None`` are computed from ``images``.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    location: Location | None = None
    checks: tuple[FileCheck, ...] = ()
    info: DatasetInfo | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        where = f"dataset {self.name!r} ({self.split})"
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"{where}: images must be a uint8 tensor N x C x H x W, got {got}")
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
            got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise DataError(f"{where}: labels must be an int64 tensor of shape (N,), got {got}")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{where}: {x.shape[0]} images but {y.shape[0]} labels")
        if not self.classes:
            raise DataError(f"{where}: no class names")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
            bad = int(torch.nonzero((y < 0) | (y >= len(self.classes)))[0])
            raise DataError(
                f"{where}: label {int(y[bad])} of image {bad} is outside the "
                f"{len(self.classes)} classes (0..{len(self.classes) - 1})"
            )
        if self.mean is None or self.std is None:
            mean, std = channel_stats(x)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        c = x.shape[1]
        if len(self.mean) != c or len(self.std) != c:
            raise DataError(f"{where}: mean/std need {c} values, one per channel")
        object.__setattr__(self, "classes", tuple(self.classes))

    # ---- facts ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def integrity(self) -> str:
        """``"verified"`` if every file matched a published hash, ``"mismatch"`` if any
        differed, else ``"unverified"`` (also for data that came from no file)."""
        return integrity_of(self.checks)

    def class_counts(self) -> list[int]:
        """Number of images of each class, in class order."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        mean = ", ".join(f"{m:.4f}" for m in self.mean or ())
        std = ", ".join(f"{s:.4f}" for s in self.std or ())
        return (
            f"Dataset({self.name!r}, split={self.split!r}, {len(self)} images {c}x{h}x{w} uint8, "
            f"{self.num_classes} classes, mean=({mean}), std=({std}), "
            f"integrity={self.integrity!r})"
        )

    # ---- derived datasets ----------------------------------------------------------------
    def subset(self, indices: torch.Tensor | list[int], split: str | None = None) -> Dataset:
        """The images at ``indices`` (copied), keeping classes, statistics and provenance."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise DataError(f"dataset {self.name!r}: subset index out of range 0..{len(self) - 1}")
        return replace(
            self,
            split=split or self.split,
            images=self.images.index_select(0, idx).contiguous(),
            labels=self.labels.index_select(0, idx),
        )

    def split_validation(self, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, val): a stratified, seeded split holding out ``round(fraction * N)`` images.

        Each class gives up its share of the held-out images (largest-remainder rounding, so
        the total is exact); which images is decided by a permutation drawn from ``seed`` alone,
        so the split is the same on every machine and every run.  Both parts keep this
        dataset's ``mean``/``std`` (the training split's, as published for the dataset) and
        their original order.
        """
        train_idx, val_idx = validation_indices(
            self.labels, self.num_classes, fraction, seed, f"dataset {self.name!r} ({self.split})"
        )
        return self.subset(train_idx, "train"), self.subset(val_idx, "val")


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit generator seed from ``seed`` and labels, stable across runs and platforms."""
    text = ":".join(str(p) for p in (int(seed), *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def validation_indices(
    labels: torch.Tensor, num_classes: int, fraction: float, seed: int, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices into ``labels``, sorted: the stratified, seeded split of
    :meth:`Dataset.split_validation` (also used by streamed datasets, so both agree)."""
    if not isinstance(fraction, float | int) or not 0 < fraction < 1:
        raise DataError(f"validation fraction {fraction!r}: expected a number in (0, 1)")
    n = len(labels)
    n_val = round(fraction * n)
    if not 0 < n_val < n:
        raise DataError(
            f"{where}: a validation fraction of {fraction} of {n} images leaves {n_val} for "
            "validation; need at least 1 on each side"
        )
    g = torch.Generator().manual_seed(derive_seed(seed, "validation"))
    perm = torch.randperm(n, generator=g)
    grouped = perm[torch.argsort(labels[perm], stable=True)]  # by class, random within
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    exact = [fraction * k for k in counts]
    quota = [int(e) for e in exact]
    by_remainder = sorted(range(len(counts)), key=lambda c: (-(exact[c] - quota[c]), c))
    for c in by_remainder[: n_val - sum(quota)]:
        quota[c] += 1
    val_parts, train_parts, start = [], [], 0
    for c, k in enumerate(counts):
        val_parts.append(grouped[start : start + quota[c]])
        train_parts.append(grouped[start + quota[c] : start + k])
        start += k
    val_idx = torch.sort(torch.cat(val_parts)).values
    train_idx = torch.sort(torch.cat(train_parts)).values
    return train_idx, val_idx


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images (N, C, H, W), in [0, 1] units.

    Exact: computed from a 256-bin histogram per channel in float64 (no float32 sums over
    tens of millions of pixels).
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise DataError("channel_stats needs a non-empty uint8 tensor N x C x H x W")
    return stats_of_histograms(channel_histograms(images))


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """int64 (C, 256): how many pixels of each channel of uint8 images (N, C, H, W) have
    each value; histograms of several batches add up to the histogram of all of them."""
    return torch.stack(
        [
            torch.bincount(images[:, c].reshape(-1).cpu(), minlength=256)
            for c in range(images.shape[1])
        ]
    )


def stats_of_histograms(
    histograms: torch.Tensor,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std, in [0, 1] units, of (C, 256) pixel histograms."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for row in histograms:
        hist = row.double()
        n = hist.sum()
        mean = (hist * values).sum() / n
        var = (hist * (values - mean) ** 2).sum() / n
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def _folder_splits(loc: Location, split: str) -> dict[str, Path]:
    splits = _folder.folder_splits(loc.directory)
    if split not in splits:
        raise DataError(
            f"{loc.directory}: no {split!r} split; it has {', '.join(splits)} (a folder with "
            "train/ and test/ or val/ subfolders has those splits, any other folder is 'train'; "
            "hold out a validation split with Dataset.split_validation)"
        )
    return splits


def _load_folder(loc: Location, split: str, size, mode: str):
    splits = _folder_splits(loc, split)
    train = _folder.scan_split(splits["train"])
    scanned = train if split == "train" else _folder.scan_split(splits[split], train.classes)
    x, y, used_mode = _folder.read_folder(scanned, size=size, mode=mode)
    return x, y, train.classes, used_mode


def _open_stream(loc: Location, name: str, split: str, size, mode: str, workers, train=None):
    from cnnlab.data.stream import open_stream  # it builds on this module

    splits = _folder_splits(loc, split)
    train = train or _folder.scan_split(splits["train"])  # a large folder is scanned once
    _folder.check_stream_memory(train, size)
    key = ("stream", str(splits["train"].resolve()), size, mode, _folder_key(splits["train"]))
    stats = _STATS_CACHE.get(key)
    scanned = train if split == "train" else _folder.scan_split(splits[split], train.classes)
    if stats is None:
        _, stats = open_stream(
            train, name=name, split_name="train", size=size, mode=mode, workers=workers
        )
        _STATS_CACHE[key] = stats
    ds, _ = open_stream(
        scanned,
        name=name,
        split_name=split,
        size=size,
        mode=mode,
        stats=stats,
        workers=workers,
        location=loc,
    )
    return ds


def _normalize_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    given = image_size
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (
        not isinstance(image_size, tuple | list)
        or len(image_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size)
    ):
        raise DataError(f"image_size {given!r}: expected a positive int or (height, width)")
    return (int(image_size[0]), int(image_size[1]))


# Training-split statistics per (files, options), so loading "test" twice reads "train" once.
# Keys include each file's size and mtime: a changed file is read again.
_STATS_CACHE: dict[tuple, tuple] = {}


def _folder_key(root: Path) -> tuple:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _file_key(loc: Location) -> tuple:
    paths = [loc.archive] if loc.archive is not None else [p for _, p in loc.files]
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def _as_name(name: object) -> str | DatasetInfo:
    """A path (``Path``, or text naming an existing folder that is no catalogued name) is an
    image folder, as torchvision's ImageFolder takes it: ``folder:PATH``."""
    if isinstance(name, os.PathLike):
        return FOLDER_PREFIX + os.fspath(name)
    if isinstance(name, str) and name.lower() not in CATALOG and not name.startswith(FOLDER_PREFIX):
        if Path(name).expanduser().is_dir():
            return FOLDER_PREFIX + name
        if "/" in name or os.sep in name or name.startswith((".", "~")):
            raise DataError(f"{name}: no such folder (a path names an image folder dataset)")
    if not isinstance(name, str | DatasetInfo):
        raise DataError(
            f"dataset {name!r}: expected a name (fashion-mnist, mnist, cifar10, cifar100), "
            "folder:PATH or a path"
        )
    return name


def load_dataset(
    name: str | DatasetInfo,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = False,
    *,
    verify: bool = True,
    image_size: int | tuple[int, int] | None = None,
    mode: str = "auto",
    progress: ProgressFn | None = None,
    stream: bool | None = None,
    workers: int | None = None,
) -> Dataset | StreamDataset:
    """Load one split of a dataset into memory (or, for an image folder, open it for
    streaming from disk).

    ``name``: a catalogued name (``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``,
    ``"cifar100"``), a :class:`DatasetInfo`, ``"folder:PATH"``, or the path of an image folder
    (a ``Path``, or text naming an existing folder).  ``split``: ``"train"`` or
    ``"test"`` (image folders: the subfolders present).  ``data_dir``/``download``: see
    :func:`~cnnlab.data.locate.find_dataset`.  ``verify``: a file whose published hash differs
    raises :class:`DataError` unless False (then it loads with ``integrity == "mismatch"``).
    ``image_size`` and ``mode`` apply to image folders only (see :mod:`cnnlab.data._folder`).
    ``stream`` (image folders only): True returns a
    :class:`~cnnlab.data.stream.StreamDataset`, read from disk by ``workers`` processes
    when iterated; None (the default) does so when the decoded training split would not fit
    in the memory available now; False always loads into memory.

    Raises :class:`DataError` for anything wrong with the files, naming the file.
    """
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    name = _as_name(name)
    size = _normalize_size(image_size)
    if stream not in (None, True, False):
        raise DataError(f"stream {stream!r}: expected True, False or None (automatic)")
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        loc = find_dataset(name)
        train_dir = _folder.folder_splits(loc.directory)["train"]
        scanned = None
        if stream is None:
            scanned = _folder.scan_split(train_dir)
            stream = not _folder.fits_in_memory(scanned, size)
        if stream:
            return _open_stream(loc, name, split, size, mode, workers, scanned)
        key = ("folder", str(train_dir.resolve()), size, mode, _folder_key(train_dir))
        if split == "train":
            x, y, classes, used_mode = _load_folder(loc, split, size, mode)
            _STATS_CACHE[key] = (*channel_stats(torch.from_numpy(x)), used_mode)
        if key not in _STATS_CACHE:
            tx, _, _, used_mode = _load_folder(loc, "train", size, mode)
            _STATS_CACHE[key] = (*channel_stats(torch.from_numpy(tx)), used_mode)
        mean, std, used_mode = _STATS_CACHE[key]
        if split != "train":  # decoded in the training split's mode, so channels agree
            x, y, classes, _ = _load_folder(loc, split, size, used_mode)
        return Dataset(
            name=name,
            split=split,
            images=torch.from_numpy(np.ascontiguousarray(x)),
            labels=torch.from_numpy(y),
            classes=classes,
            mean=mean,
            std=std,
            location=loc,
        )
    info = resolve(name)
    if stream:
        raise DataError(
            f"stream=True (--stream) reads image folders from disk (folder:PATH); {info.name} "
            "is loaded into memory, which it fits"
        )
    if size is not None or mode != "auto":
        raise DataError(
            f"image_size and mode apply to folder:PATH datasets; {info.name} images are "
            f"{'x'.join(map(str, info.image_shape))} as published"
        )
    if info.split_size(split) is None:
        raise DataError(
            f"{info.name} has no {split!r} split (it has {', '.join(s for s, _ in info.splits)}); "
            "hold out a validation split with Dataset.split_validation(fraction, seed)"
        )
    loc = find_dataset(info, data_dir, download=download, progress=progress)
    loader = format_of(info).load
    x, y, classes, checks = loader(info, loc, split, verify)
    images = torch.from_numpy(np.ascontiguousarray(x))
    key = (info.name, _file_key(loc))
    if split == "train":
        stats = channel_stats(images)
    elif key in _STATS_CACHE:
        stats = _STATS_CACHE[key]
    else:
        tx, *_ = loader(info, loc, "train", verify)
        stats = channel_stats(torch.from_numpy(np.ascontiguousarray(tx)))
    _STATS_CACHE[key] = stats
    return Dataset(
        name=info.name,
        split=split,
        images=images,
        labels=torch.from_numpy(y),
        classes=classes,
        mean=stats[0],
        std=stats[1],
        location=loc,
        checks=checks,
        info=info,
    )
