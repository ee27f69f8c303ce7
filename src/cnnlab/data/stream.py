"""Image folders larger than memory: read from disk batch by batch, decoded in worker processes.

ImageNet's training split is 1.28 million JPEGs, about 140 GB decoded at their own sizes; the
in-memory :class:`~cnnlab.data.BatchPipeline` cannot hold it.  A :class:`StreamDataset` holds
only the file names (one NumPy byte-string array, so forked workers share its pages instead of
copying them as they would a list of Python strings, pytorch/pytorch#13246), the labels and
the statistics; a :class:`StreamPipeline` gives the same batches as the in-memory pipeline
would, decoding them on the way.

``load_dataset("folder:PATH", image_size=224, stream=True)`` opens one (``stream=None``, the
default, does so by itself when the decoded split would not fit in the memory available;
``--stream`` on the command line).  Then:

* **The plan is the in-memory pipeline's.**  :class:`StreamPipeline` is a
  :class:`~cnnlab.data.BatchPipeline` that keeps no images: the epoch's order, every crop
  offset, flip and erasing box are drawn on the CPU from (seed, epoch) alone, for the whole
  epoch, by the same code; each rank's shard of each global batch is the same.  So a streamed
  epoch is bit-identical to the in-memory one of the same images, whatever the number of
  workers (each batch is a pure function of its file list and its crop/flip parameters), and
  each image is seen exactly once per epoch, by exactly one rank.
* **Workers** (PyTorch's ``DataLoader``, ``num_workers=workers``, in order): a worker
  receives one batch at a time (its files and their crop offsets and flips), decodes each file
  with the image-folder policies of :func:`~cnnlab.data.read_image` (Pillow, restricted
  formats, decompression-bomb limit, resize to cover and centre-crop), crops and flips it, and
  returns the batch as one uint8 tensor.  The main process moves it to the device and
  normalises and erases it there, as the in-memory pipeline does.  ``workers=0`` decodes in
  the main process.  A file that cannot be read stops the epoch with a
  :class:`~cnnlab.errors.DataError` naming it.  Workers ignore SIGINT and SIGTERM: the main
  process alone stops a run (at a step boundary, with a checkpoint) and ends them.
* **Resuming** mid-epoch (``epoch(e, start=k)``) starts the plan at step k: the skipped steps'
  files are never opened.
* **Statistics**: the training split's per-channel mean and std (and, with ``mode="auto"``,
  whether the images are grey or colour) come from a seeded sample of at most
  :data:`STATS_SAMPLE` training images, decoded once by the workers when the dataset is
  opened: all of them in a smaller folder (then the numbers are exactly those of the in-memory
  path), an estimate in a larger one (10,000 of ImageNet's images give its mean to about 1e-3).
  ``mode="auto"`` decides from the sample; a grey file in a colour dataset becomes colour and
  a colour file met later in a dataset sampled grey becomes grey (Pillow's luma).

Without ``image_size`` every image must have the sample's size; one that does not is a
``DataError`` naming it when it is read.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data import _folder
from cnnlab.data.catalog import DatasetInfo
from cnnlab.data.dataset import (
    Dataset,
    derive_seed,
    stats_of_histograms,
    validation_indices,
)
from cnnlab.data.formats import FileCheck, Location
from cnnlab.data.pipeline import BatchPipeline
from cnnlab.errors import DataError

__all__ = [
    "STATS_SAMPLE",
    "StreamDataset",
    "StreamPipeline",
    "default_workers",
    "open_stream",
    "pipeline_for",
]

STATS_SAMPLE = 10_000  # training images decoded for the mean/std (all, in a smaller split)
_STATS_BATCH = 64  # images per worker task while sampling the statistics


def default_workers() -> int:
    """Worker processes by default: the cores this process may use, less one for the
    training process itself (at least 1, at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))


def _check_workers(workers: object) -> int | None:
    if workers is None:
        return None
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise DataError(
            f"workers {workers!r}: expected an int >= 0 (0 decodes in the training process) "
            "or None (the cores less one)"
        )
    return workers


@dataclass(frozen=True, eq=False, repr=False)
class StreamDataset:
    """A split of an image folder, read from disk when iterated (see the module doc).

    It answers what a :class:`~cnnlab.data.Dataset` answers (``len``, ``classes``,
    ``labels``, ``image_shape``, ``mean``/``std``, ``subset``, ``split_validation``) but has
    no ``images``.  ``paths`` are the files' paths as bytes (``os.fsencode``), ``shape`` the
    (C, H, W) every image is decoded to, ``mode`` ``"L"`` or ``"RGB"``, ``size`` the
    resize target (None: the files' own size), ``stats_images`` how many training images the
    statistics came from, ``workers`` the pipeline's default number of worker processes.
    """

    name: str
    split: str
    paths: np.ndarray
    labels: torch.Tensor
    classes: tuple[str, ...]
    shape: tuple[int, int, int]
    mode: str
    size: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stats_images: int
    workers: int | None = None
    location: Location | None = None
    checks: tuple[FileCheck, ...] = ()
    info: DatasetInfo | None = None

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r} ({self.split})"
        if not isinstance(self.paths, np.ndarray) or self.paths.dtype.kind != "S":
            raise DataError(f"{where}: paths must be a NumPy array of bytes (os.fsencode)")
        y = self.labels
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != self.paths.shape:
            raise DataError(f"{where}: labels must be int64 (N,), one per path")
        if self.mode not in ("L", "RGB") or self.shape[0] != (1 if self.mode == "L" else 3):
            raise DataError(f"{where}: mode {self.mode!r} with shape {self.shape}")
        _check_workers(self.workers)

    # ---- facts, as a Dataset has them ---------------------------------------------------
    def __len__(self) -> int:
        return int(self.paths.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every decoded image."""
        return self.shape

    @property
    def integrity(self) -> str:
        return "unverified"  # an image folder has no published hashes

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def path(self, index: int) -> Path:
        """The file of image ``index``."""
        return Path(os.fsdecode(self.paths[index]))

    @property
    def images(self) -> torch.Tensor:
        """Not held: raises a DataError saying what to use instead (code written for a
        :class:`~cnnlab.data.Dataset` then fails with a message, not an AttributeError)."""
        raise DataError(
            f"dataset {self.name!r} ({self.split}) is streamed from disk ({len(self):,} images "
            "that would not be held in memory): it has no images tensor; iterate "
            "pipeline_for(dataset, batch_size), or decode a few with dataset.read(indices)"
        )

    def read(self, indices: torch.Tensor | list[int]) -> torch.Tensor:
        """uint8 (len(indices), C, H, W): the images at ``indices``, decoded here as the
        pipeline decodes them (no augmentation)."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise DataError(f"dataset {self.name!r}: index out of range 0..{len(self) - 1}")
        reader = _Reader(self.paths, self.mode, self.size, self.shape, 0)
        files = (idx % len(self)).numpy()
        (batch,) = _load(reader, [("batch", files, None, None, None)], 0, False)
        return batch

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (
            f"StreamDataset({self.name!r}, split={self.split!r}, {len(self)} images {c}x{h}x{w} "
            f"read from disk, {self.num_classes} classes, statistics of {self.stats_images} "
            "training images)"
        )

    # ---- derived datasets ---------------------------------------------------------------
    def subset(self, indices: torch.Tensor | list[int], split: str | None = None) -> StreamDataset:
        """The images at ``indices``, keeping classes, statistics and provenance."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise DataError(f"dataset {self.name!r}: subset index out of range 0..{len(self) - 1}")
        return replace(
            self,
            split=split or self.split,
            paths=self.paths[idx.numpy()],
            labels=self.labels.index_select(0, idx),
        )

    def split_validation(
        self, fraction: float = 0.1, seed: int = 0
    ) -> tuple[StreamDataset, StreamDataset]:
        """(train, val), the same images as :meth:`Dataset.split_validation` holds out."""
        where = f"dataset {self.name!r} ({self.split})"
        train_idx, val_idx = validation_indices(
            self.labels, self.num_classes, fraction, seed, where
        )
        return self.subset(train_idx, "train"), self.subset(val_idx, "val")


# --------------------------------------------------------------------------------------------
# what a worker does
# --------------------------------------------------------------------------------------------


class _Reader(torch.utils.data.Dataset):
    """The worker side: ``reader[task]`` for a task the main process planned.

    ``("batch", files, dy, dx, flip)``: uint8 (B, C, H, W) of those files, cropped at
    (dy, dx) of the zero-padded image and mirrored where ``flip`` (None: neither).
    ``("stats", files)``: per file its (C, H, W) and (C, 256) histogram.  Either way the
    answer is ``(result, None)`` or ``(None, message)`` for a file that cannot be read, so
    the main process raises one DataError (a worker's own exception would come back
    wrapped in a traceback).
    """

    def __init__(
        self, paths: np.ndarray, mode: str, size: tuple[int, int] | None, shape, pad: int
    ) -> None:
        self.paths, self.mode, self.size, self.shape, self.pad = paths, mode, size, shape, pad

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    def __getitem__(self, task: tuple) -> tuple[Any, str | None]:
        try:
            if task[0] == "stats":
                return [self._stats(int(i)) for i in task[1]], None
            return self._batch(*task[1:]), None
        except DataError as exc:
            return None, str(exc)

    def _decode(self, i: int, mode: str) -> np.ndarray:
        return _folder.read_image(os.fsdecode(self.paths[i]), mode=mode, size=self.size).pixels

    def _stats(self, i: int) -> tuple[tuple[int, int, int], torch.Tensor]:
        px = self._decode(i, self.mode)  # read-only (Pillow's buffer): counted in NumPy
        hist = np.stack([np.bincount(channel.ravel(), minlength=256) for channel in px])
        return px.shape, torch.from_numpy(hist.astype(np.int64))

    def _batch(self, files: np.ndarray, dy, dx, flip) -> torch.Tensor:
        c, h, w = self.shape
        p = self.pad
        out = np.empty((len(files), c, h, w), dtype=np.uint8)
        padded = np.zeros((c, h + 2 * p, w + 2 * p), dtype=np.uint8) if p else None
        for j, i in enumerate(files):
            px = self._decode(int(i), self.mode)
            if px.shape != self.shape:
                raise DataError(
                    f"{os.fsdecode(self.paths[i])}: {px.shape[1]}x{px.shape[2]} pixels (HxW), "
                    f"but the dataset's images are {h}x{w}; mixed sizes are rejected unless a "
                    "size is given (image_size=64 resizes and centre-crops every image)"
                )
            if dy is None:
                out[j] = px
                continue
            window = px
            if padded is not None:  # out[r, c] = image[r + dy - p, c + dx - p], else 0
                padded[:, p : p + h, p : p + w] = px
                window = padded[:, dy[j] : dy[j] + h, dx[j] : dx[j] + w]
            out[j] = window[:, :, ::-1] if flip[j] else window
        return torch.from_numpy(out)


def _ignore_stop_signals(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: a worker that died of it would end the run
    # with the DataLoader's error instead of the main process's checkpoint and message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _load(reader: _Reader, tasks: list[tuple], workers: int, pin: bool) -> Iterator[Any]:
    """Each task's result, in order, computed by ``workers`` processes (0: here)."""
    loader = torch.utils.data.DataLoader(
        reader,
        batch_size=None,  # a task is a whole batch already
        sampler=tasks,
        num_workers=workers,
        pin_memory=pin,
        worker_init_fn=_ignore_stop_signals if workers else None,
        # Its own generator: a DataLoader otherwise draws its workers' base seed from torch's
        # global one, which would shift the training's dropout masks (nothing random
        # happens in a worker: the plan is drawn before).
        generator=torch.Generator().manual_seed(0),
    )
    it = iter(loader)
    try:
        for result, error in it:
            if error is not None:
                raise DataError(error)
            yield result
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:  # now, not whenever the iterator is collected
            shutdown()


# --------------------------------------------------------------------------------------------
# opening a split
# --------------------------------------------------------------------------------------------


def _stats_sample(n: int) -> np.ndarray:
    """Indices (sorted) of the training images the statistics come from: all, or a seeded
    sample of :data:`STATS_SAMPLE`."""
    if n <= STATS_SAMPLE:
        return np.arange(n)
    g = torch.Generator().manual_seed(derive_seed(0, "stream-stats"))
    return np.sort(torch.randperm(n, generator=g)[:STATS_SAMPLE].numpy())


def _sample_stats(
    paths: np.ndarray, size: tuple[int, int] | None, mode: str, workers: int
) -> tuple[str, tuple[int, int, int], tuple[float, ...], tuple[float, ...], int]:
    """(mode, shape, mean, std, images used) of the training split, from its sample."""
    sample = _stats_sample(len(paths))
    tasks = [("stats", sample[i : i + _STATS_BATCH]) for i in range(0, len(sample), _STATS_BATCH)]
    reader = _Reader(paths, mode, size, None, 0)
    found: list[tuple[int, tuple[int, int, int], torch.Tensor]] = []
    for batch, files in zip(_load(reader, tasks, workers, False), tasks, strict=True):
        found.extend(
            (int(i), tuple(int(v) for v in shape), hist)
            for i, (shape, hist) in zip(files[1], batch, strict=True)
        )
    colour = any(shape[0] == 3 for _, shape, _ in found)
    used = mode if mode != "auto" else ("RGB" if colour else "L")
    i0, (_, h, w), _ = found[0]
    for i, shape, _ in found:
        if shape[1:] != (h, w):
            raise DataError(
                f"{os.fsdecode(paths[i])}: {shape[1]}x{shape[2]} pixels (HxW), but "
                f"{os.fsdecode(paths[i0])} is {h}x{w}; mixed sizes are rejected unless a size "
                "is given (image_size=64, or --image-size 64, resizes and centre-crops every "
                "image)"
            )
    c = 3 if used == "RGB" else 1
    # A grey image in a colour dataset is repeated in R, G and B (Pillow's L -> RGB).
    total = sum(hist.expand(c, 256) for _, _, hist in found)
    mean, std = stats_of_histograms(total)
    return used, (c, h, w), mean, std, len(found)


def open_stream(
    split: _folder.FolderSplit,
    *,
    name: str,
    split_name: str,
    size: tuple[int, int] | None,
    mode: str = "auto",
    stats: tuple | None = None,
    workers: int | None = None,
    location: Location | None = None,
) -> tuple[StreamDataset, tuple]:
    """Open one split of an image folder for streaming; returns it and its ``stats``.

    ``stats`` None (the training split): sampled here (see the module doc), with ``workers``
    processes; for the other splits pass the training split's, so that every split is
    normalised alike and decoded in its mode.
    """
    workers = _check_workers(workers)
    paths = np.array([os.fsencode(p) for p, _ in split.files], dtype=np.bytes_)
    labels = torch.tensor([c for _, c in split.files], dtype=torch.int64)
    if stats is None:
        stats = _sample_stats(paths, size, mode, default_workers() if workers is None else workers)
    used, shape, mean, std, count = stats
    ds = StreamDataset(
        name=name,
        split=split_name,
        paths=paths,
        labels=labels,
        classes=split.classes,
        shape=tuple(shape),
        mode=used,
        size=size,
        mean=tuple(mean),
        std=tuple(std),
        stats_images=count,
        workers=workers,
        location=location,
    )
    return ds, stats


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------


class StreamPipeline(BatchPipeline):
    """:class:`~cnnlab.data.BatchPipeline`'s batches of a :class:`StreamDataset`, decoded
    from disk by ``workers`` processes (default: the dataset's, else :func:`default_workers`).

    The same arguments, sizes, sharding and determinism as ``BatchPipeline`` (its plan is
    drawn by the same code); ``epoch(e, start=k)`` skips without decoding.
    """

    def __init__(self, dataset: StreamDataset, batch_size: int, *, workers=None, **options):
        if not isinstance(dataset, StreamDataset):
            raise DataError(
                f"StreamPipeline reads a StreamDataset (load_dataset(..., stream=True)); got "
                f"{type(dataset).__name__}: use BatchPipeline for a dataset in memory"
            )
        workers = _check_workers(workers)
        if workers is None:
            workers = dataset.workers if dataset.workers is not None else default_workers()
        self.workers = workers
        super().__init__(dataset, batch_size, **options)

    def _hold(self, dataset: Dataset) -> None:
        self.labels = dataset.labels  # on the CPU; each batch's go to the device with it

    def _epoch(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        params = self._draw(epoch)
        crop = "dy" in params
        tasks, positions = [], []
        for k in range(start, self._steps):
            offset, size = self._shard(k)
            pos = torch.arange(offset, offset + size)
            files = params["order"][pos].numpy()
            if crop:
                dy, dx, flip = (params[key][pos].numpy() for key in ("dy", "dx", "flip"))
            else:
                dy = dx = flip = None
            tasks.append(("batch", files, dy, dx, flip))
            positions.append(pos)
        ds = self.dataset
        reader = _Reader(ds.paths, ds.mode, ds.size, ds.shape, self.augment.crop_padding)
        pin = self.device.type == "cuda"
        batches = _load(reader, tasks, self.workers, pin)
        try:
            for x, task, pos in zip(batches, tasks, positions, strict=True):
                x = x.to(self.device, non_blocking=pin)
                y = self.labels[torch.from_numpy(task[1])].to(self.device, non_blocking=pin)
                erase = self._erase_rows_cols(params, pos) if "eh" in params else None
                yield self._normalize(x, erase), y
        finally:
            batches.close()  # a run stopped mid-epoch ends its workers now


def pipeline_for(dataset: Dataset | StreamDataset, batch_size: int, **options) -> BatchPipeline:
    """The pipeline that serves ``dataset``: a :class:`StreamPipeline` for a
    :class:`StreamDataset`, else a :class:`~cnnlab.data.BatchPipeline` (the same arguments)."""
    if isinstance(dataset, StreamDataset):
        return StreamPipeline(dataset, batch_size, **options)
    return BatchPipeline(dataset, batch_size, **options)
