"""The baseline the speed benchmarks measure cnnlab against: a plain PyTorch pipeline.

It is what the pytorch/examples MNIST program does (``mnist/main.py``), written out here
because torchvision is not installed beside this torch:

* data: a per-sample ``Dataset`` that turns each uint8 image into a PIL image, then a float
  tensor in [0, 1] (``ToTensor``) and normalises it (``Normalize``), batched by a shuffling
  ``DataLoader`` with no worker processes (on a 2-core machine workers steal the cores the
  model needs);
* network (:class:`ExamplesNet`): conv3-32, conv3-64, 2x2 max-pool, dropout 0.25, fc-128,
  dropout 0.5, fc-10 (12 M multiply-adds per 28x28 image);
* loop: fp32, NCHW, one ``optimizer.step()`` per batch of 64.

:func:`baseline_steps` runs that loop on any network, so the throughput benchmark can feed
cnnlab's networks through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

__all__ = ["ExamplesNet", "PerSampleImages", "baseline_loader", "baseline_steps"]


class ExamplesNet(nn.Module):
    """pytorch/examples' MNIST network, for ``in_channels`` x ``size`` x ``size`` images."""

    def __init__(self, in_channels: int = 1, size: int = 28, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        side = (size - 4) // 2  # two unpadded 3x3 convolutions, then a 2x2 pool
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return self.fc2(x)


class PerSampleImages(TorchDataset):
    """One image at a time, as torchvision's dataset with ``ToTensor()`` and ``Normalize``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        a = self.images[i].numpy()
        img = Image.fromarray(a[0]) if a.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0))
        w, h = img.size
        t = torch.from_numpy(np.array(img, np.uint8, copy=True))  # ToTensor
        t = t.view(h, w, -1).permute(2, 0, 1).contiguous().float().div(255)
        t.sub_(self.mean).div_(self.std)  # Normalize
        return t, int(self.labels[i])


def baseline_loader(dataset, batch_size: int = 64, seed: int = 0) -> DataLoader:
    """A shuffling per-sample ``DataLoader`` over a cnnlab ``Dataset`` split."""
    g = torch.Generator().manual_seed(seed)
    images = PerSampleImages(dataset.images, dataset.labels, dataset.mean, dataset.std)
    return DataLoader(images, batch_size=batch_size, shuffle=True, num_workers=0, generator=g)


def _forever(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


def baseline_steps(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    images: int,
    on_step: Callable[[], None] | None = None,
) -> tuple[int, float]:
    """Train ``model`` with the baseline loop on at least ``images`` images (whole batches,
    the loader cycled as often as needed): returns (images, seconds).  ``on_step`` runs
    after each step (a schedule)."""
    model.train()
    n = 0
    start = time.perf_counter()
    for x, y in _forever(loader):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step()
        n += len(y)
        if n >= images:
            break
    return n, time.perf_counter() - start
