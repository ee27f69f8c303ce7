"""Streaming from disk vs the in-memory pipeline, on the same folder of JPEGs, in one run.

    .venv/bin/python bench/stream.py                       # 3,000 JPEGs 80x80, --image-size 64
    .venv/bin/python bench/stream.py --images 10000 --workers 0 1 2 4

It writes a folder of generated colour JPEGs (10 classes; smooth patterns plus noise, so
that they compress like photographs rather than like flat colour) into a temporary folder,
then measures training-side images/s for one epoch of batches of ``--batch`` with random
crop (padding 8) and flip, normalised, on the CPU:

* in memory: ``load_dataset(..., stream=False)`` decodes every file once (timed apart, as
  "load"), then :class:`cnnlab.data.BatchPipeline` serves the epoch from memory;
* streamed: :class:`cnnlab.data.StreamPipeline` with 0, 1, 2 ... worker processes, which
  decode (Pillow), resize and crop each batch's files on every epoch.

Nothing trains, so the numbers are what the data side can deliver; a training process uses
cores too, and on a small machine the workers compete with it.  The median of ``--rounds``
epochs is reported, with the load average before and after (other processes on the machine
change the numbers a lot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from options import count, workers
from PIL import Image

from cnnlab.data import Augment, BatchPipeline, StreamPipeline, load_dataset
from cnnlab.train.device import cpu_info


def write_folder(root: Path, n: int, side: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        c = i % 10
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        f = 1.5 + (i % 7)
        base = 110 + 60 * np.sin(xx / f + c) * np.cos(yy / (f + 1))
        rgb = base[..., None] + rng.normal(0, 12, (side, side, 3)) + [10 * c, 0, -10 * c]
        img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
        img.save(folder / f"{i:06d}.jpg", quality=90)
    return root


def epoch_rate(pipeline, epoch: int) -> float:
    start = time.perf_counter()
    n = 0
    for x, _ in pipeline.epoch(epoch):
        n += x.shape[0]
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=count, default=3000)
    parser.add_argument("--side", type=count, default=80, help="JPEG side in pixels")
    parser.add_argument("--image-size", type=count, default=64, help="decoded (resized) side")
    parser.add_argument("--batch", type=count, default=128)
    parser.add_argument("--workers", type=workers, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=count, default=3)
    parser.add_argument("--threads", type=count, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_info().describe()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp) / "jpegs", args.images, args.side)
        size = (args.image_size, args.image_size)
        aug = Augment(crop_padding=8, flip=True)
        start = time.perf_counter()
        mem = load_dataset(root, image_size=size, stream=False)
        load_s = time.perf_counter() - start
        streamed = load_dataset(root, image_size=size, stream=True)
        sides = {"in memory (BatchPipeline)": BatchPipeline(mem, args.batch, augment=aug)}
        for w in args.workers:
            sides[f"streamed, {w} workers"] = StreamPipeline(
                streamed, args.batch, augment=aug, workers=w
            )
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):  # rounds alternate, so load changes hit every side
            for name, pipeline in sides.items():
                rates[name].append(epoch_rate(pipeline, r))
    print(
        f"{args.images:,} JPEGs {args.side}x{args.side} -> {args.image_size}x{args.image_size} "
        f"RGB, batch {args.batch}, crop (padding 8) + flip + normalise, CPU, "
        f"{args.threads} threads, median of {args.rounds} epochs"
    )
    rate = args.images / load_s
    print(f"in memory: decoding the folder once took {load_s:.2f} s ({rate:,.0f} images/s)")
    print("| pipeline | images/s |")
    print("|---|---:|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} |")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
