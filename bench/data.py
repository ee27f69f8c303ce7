"""Batch pipeline vs a per-sample DataLoader, on the same data, in one run.

    .venv/bin/python bench/data.py                  # Fashion-MNIST, CPU
    .venv/bin/python bench/data.py --device cuda    # pipeline on the GPU; loader + copy

Every side does the same work per training image: random crop of the 2-pixel zero-padded
image, horizontal flip with probability 1/2, conversion to float in [0, 1] and
normalisation.

* per-sample, PIL: what torchvision's ``FashionMNIST`` with ``RandomCrop(28, padding=2)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize`` runs for each image (a PIL image
  from the array, pad, crop, mirror, back to a tensor), written out here because torchvision
  is not installed beside this torch;
* per-sample, tensor: the same steps on a uint8 tensor (a faster per-sample baseline);
* both batched by a ``DataLoader`` (shuffle, ``--workers`` processes, default 0: on a 2-core
  machine workers steal the cores the model needs); on a GPU each batch is then copied to
  the device, as a training loop would;
* pipeline: :class:`cnnlab.data.BatchPipeline` with ``Augment(crop_padding=2, flip=True)``
  (and once more with random erasing, which the per-sample sides do not do).

Rounds alternate between the sides so that a change in machine load hits all of them; the
median round is reported, with the load average (other processes on a small machine change
the numbers a lot: oversubscribed cores slow small tensor operations many times over).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from options import count, workers
from PIL import Image, ImageOps
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from cnnlab.data import Augment, BatchPipeline, load_dataset
from cnnlab.train.device import cpu_info


class PerSampleTensor(TorchDataset):
    """The per-sample steps on uint8 tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, pad: int):
        self.images, self.labels, self.pad = images, labels, pad
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i].float().div(255)  # ToTensor
        _, h, w = x.shape
        p = self.pad
        x = F.pad(x, (p, p, p, p))  # RandomCrop(padding=p)
        dy, dx = random.randint(0, 2 * p), random.randint(0, 2 * p)
        x = x[:, dy : dy + h, dx : dx + w]
        if random.random() < 0.5:  # RandomHorizontalFlip
            x = x.flip(-1)
        x = (x - self.mean) / self.std  # Normalize
        return x, self.labels[i]


class PerSamplePIL(PerSampleTensor):
    """The per-sample steps as torchvision runs them on PIL images."""

    def __getitem__(self, i: int):
        a = self.images[i].numpy()
        img = Image.fromarray(a[0]) if a.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0))
        w, h = img.size
        p = self.pad
        img = ImageOps.expand(img, border=p, fill=0)  # RandomCrop(padding=p) ...
        top, left = random.randint(0, 2 * p), random.randint(0, 2 * p)
        img = img.crop((left, top, left + w, top + h))  # ... at a random offset
        if random.random() < 0.5:  # RandomHorizontalFlip
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.array(img, np.uint8, copy=True))  # ToTensor
        t = t.view(h, w, -1).permute(2, 0, 1).contiguous().float().div(255)
        t.sub_(self.mean).div_(self.std)  # Normalize
        return t, self.labels[i]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loader(loader: DataLoader, device: torch.device, limit: int) -> float:
    """Images per second over the first ``limit`` images of one pass."""
    n = 0
    start = time.perf_counter()
    for x, y in loader:
        if device.type != "cpu":
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
        n += len(y)
        if n >= limit:
            break
    _sync(device)
    return n / (time.perf_counter() - start)


def time_pipeline(pipeline: BatchPipeline, epoch: int, device: torch.device) -> float:
    n = 0
    start = time.perf_counter()
    for _, y in pipeline.epoch(epoch):
        n += len(y)
    _sync(device)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=count, default=128)
    parser.add_argument("--workers", type=workers, default=0)
    parser.add_argument("--rounds", type=count, default=3)
    parser.add_argument(
        "--baseline-images", type=count, default=20_000, help="images per baseline round"
    )
    parser.add_argument(
        "--threads", type=count, default=None, help="torch threads (default: as is)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    random.seed(0)
    torch.manual_seed(0)

    ds = load_dataset(args.data, data_dir=args.data_dir)
    aug = Augment(crop_padding=ds.info.crop_padding if ds.info else 2, flip=True)
    loaders = {
        kind: DataLoader(
            cls(ds.images, ds.labels, ds.mean, ds.std, aug.crop_padding),
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=args.workers > 0,
        )
        for kind, cls in (("PIL", PerSamplePIL), ("tensor", PerSampleTensor))
    }
    pipeline = BatchPipeline(ds, args.batch_size, device=device, augment=aug, seed=0)
    with_erasing = BatchPipeline(
        ds,
        args.batch_size,
        device=device,
        augment=Augment(aug.crop_padding, True, erase_p=0.5),
        seed=0,
    )
    time_pipeline(pipeline, 0, device)  # warm-up (allocator, kernels)
    time_pipeline(with_erasing, 0, device)
    for loader in loaders.values():
        time_loader(loader, device, args.batch_size * 4)

    load_before = os.getloadavg()
    rates: dict[str, list[float]] = {k: [] for k in ("PIL", "tensor", "pipe", "erase")}
    for r in range(args.rounds):
        for kind, loader in loaders.items():
            rates[kind].append(time_loader(loader, device, args.baseline_images))
        rates["pipe"].append(time_pipeline(pipeline, r + 1, device))
        rates["erase"].append(time_pipeline(with_erasing, r + 1, device))
    load_after = os.getloadavg()

    med = {k: statistics.median(v) for k, v in rates.items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    shape = "x".join(map(str, ds.image_shape))
    print(f"cnnlab bench/data.py: {ds.name} train ({len(ds):,} images {shape})")
    print(
        f"device {device} ({name}), torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, batch {args.batch_size}, DataLoader workers {args.workers}"
    )
    print(f"CPU: {cpu_info().describe()}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(f"work per image: pad {aug.crop_padding} + random crop, flip p=0.5, float, normalise")
    print()
    rows = [
        ("PIL", "per-sample DataLoader, PIL (torchvision)"),
        ("tensor", "per-sample DataLoader, tensor ops"),
        ("pipe", "cnnlab BatchPipeline"),
        ("erase", "cnnlab BatchPipeline + erasing 0.5"),
    ]
    for key, label in rows:
        each = ", ".join(f"{v:,.0f}" for v in rates[key])
        print(f"  {label:<42} {med[key]:>11,.0f} images/s   (rounds: {each})")
    print()
    print(f"ratio pipeline / per-sample PIL loader:    {med['pipe'] / med['PIL']:,.1f}x")
    print(f"ratio pipeline / per-sample tensor loader: {med['pipe'] / med['tensor']:,.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
