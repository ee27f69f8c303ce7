"""Datasets: found offline first, loaded safely into memory once, served in whole batches.

* :func:`load_dataset` -> :class:`Dataset` (uint8 images N x C x H x W, int64 labels, class
  names, training-split mean/std, integrity of each file); ``Dataset.split_validation``.
* :func:`find_dataset` / :func:`locate`: where the files are (see :mod:`cnnlab.data.locate`
  for the search order), downloading only when asked.
* :class:`BatchPipeline` + :class:`Augment`: shuffled mini-batches on the training device,
  augmented and normalised as whole batches, deterministic per (seed, epoch), shardable.
* :func:`load_dataset` with ``stream=True`` (or by itself, for an image folder larger than
  memory) -> :class:`StreamDataset`, served by :class:`StreamPipeline` from disk, decoded in
  worker processes, with the same batches; :func:`pipeline_for` picks the pipeline.
* :func:`read_image`: one image file, decoded safely and converted to a mode and size.

The catalogue (:func:`list_datasets`, :func:`dataset_info`) needs no torch; the rest imports
it lazily, so ``cnnlab data list`` stays fast.
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports
from cnnlab.data.catalog import DataFile, DatasetInfo, dataset_info, list_datasets
from cnnlab.data.locate import Location, find_dataset, locate, search_dirs, user_cache_dir

__all__ = [
    "Augment",
    "BatchPipeline",
    "DataFile",
    "Dataset",
    "DatasetInfo",
    "DecodedImage",
    "FileCheck",
    "Location",
    "channel_stats",
    "dataset_info",
    "find_dataset",
    "list_datasets",
    "load_dataset",
    "locate",
    "read_image",
    "pipeline_for",
    "search_dirs",
    "StreamDataset",
    "StreamPipeline",
    "user_cache_dir",
]

# name -> module, imported on first use (these need torch)
_LAZY = {
    "Augment": "cnnlab.data.pipeline",
    "BatchPipeline": "cnnlab.data.pipeline",
    "Dataset": "cnnlab.data.dataset",
    "FileCheck": "cnnlab.data.formats",
    "channel_stats": "cnnlab.data.dataset",
    "load_dataset": "cnnlab.data.dataset",
    "DecodedImage": "cnnlab.data._folder",
    "read_image": "cnnlab.data._folder",
    "StreamDataset": "cnnlab.data.stream",
    "StreamPipeline": "cnnlab.data.stream",
    "pipeline_for": "cnnlab.data.stream",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
