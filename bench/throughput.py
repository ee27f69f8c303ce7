"""Training throughput: cnnlab's loop against a plain PyTorch pipeline, in one run.

    .venv/bin/python bench/throughput.py                       # lenet5_modern, resnet20, fast
    .venv/bin/python bench/throughput.py --nets fast --images 4096 --rounds 3

For each network, in the same process and alternating round by round (so that a change in
the machine's load hits both sides alike):

* cnnlab: :func:`cnnlab.train.fit` for one epoch over ``--images`` Fashion-MNIST training
  images, with the network family's default recipe (its batch size, optimizer, crop and
  flip augmentation) and the precision and memory format :func:`cnnlab.train.device.placement`
  chooses for this machine; the rate is the epoch row's ``images_per_s`` (training only);
* baseline: the same network, freshly initialised, trained by the pytorch/examples MNIST
  pipeline (``bench/baseline.py``: per-sample ``DataLoader``, batch 64, fp32) on as many
  images.

Printed: the CPU model, the flags that decide speed, torch's vector capability, the load
average before and after, this machine's fp32 peak (a 2-thread, or ``--threads``, 1536^2
matmul; and the bf16 one), then per network images/s of both sides (median round), the
ratio, and cnnlab's achieved GFLOP/s (multiply-adds x 6 per image: 2 FLOPs per MAC forward,
4 backward) as a share of that peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import torch
from baseline import baseline_loader, baseline_steps
from options import count

from cnnlab.analysis import analyze
from cnnlab.train.device import configure_threads, cpu_info, cpu_precision, matmul_gflops, placement
from cnnlab.train.loop import fit
from cnnlab.train.recipes import RECIPES, default_recipe
from cnnlab.train.splits import TrainData, load_data
from cnnlab.zoo.target import load_target

_NETS = ("lenet5_modern", "resnet20", "fast")


def _build(name: str, shape: tuple[int, ...], classes: int, seed: int):
    """(model, recipe) of ``name`` ("fast": the fast recipe's own network)."""
    recipe = RECIPES[default_recipe(None if name == "fast" else name)]
    text = recipe.model if name == "fast" else name
    torch.manual_seed(seed)
    model = load_target(text, input_size=shape, num_classes=classes).model
    # one plain epoch: no iteration-counted schedule, no milestones, no test-time flips
    recipe = dataclasses.replace(
        recipe, epochs=1, iterations=None, schedule="constant", milestones=(), test_flip=False
    )
    return model, recipe


def _cnnlab_rate(name: str, train, where, seed: int) -> float:
    model, recipe = _build(name, train.image_shape, train.num_classes, seed)
    result = fit(
        model, TrainData(train, None, None), recipe, where=where, seed=seed, handle_signals=False
    )
    return float(result.history[-1]["images_per_s"])


def _baseline_rate(name: str, train, images: int, seed: int) -> float:
    model, _ = _build(name, train.image_shape, train.num_classes, seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n, seconds = baseline_steps(model, baseline_loader(train, 64, seed), opt, images)
    return n / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=",".join(_NETS), help="comma-separated; 'fast'")
    parser.add_argument("--images", type=count, default=8192, help="images per side per round")
    parser.add_argument("--rounds", type=count, default=2)
    parser.add_argument("--threads", type=count, default=None, help="default: the usable cores")
    parser.add_argument("--data", default="fashion-mnist")
    args = parser.parse_args(argv)
    threads = configure_threads(args.threads)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]

    load_before = os.getloadavg()
    info = cpu_info()
    peak = matmul_gflops(torch.float32, 1536)
    peak_bf16 = matmul_gflops(torch.bfloat16, 1536) if info.has_bf16 else None
    where = placement("cpu")
    data = load_data(args.data, val_split=0)
    train = data.train.subset(torch.arange(min(args.images, len(data.train))))

    rows = []
    for name in nets:
        # warm-up of both sides (allocator, oneDNN primitives) on a few batches
        warm = train.subset(torch.arange(min(1024, len(train))))
        _cnnlab_rate(name, warm, where, 0)
        _baseline_rate(name, warm, 256, 0)
        ours, theirs = [], []
        for r in range(args.rounds):
            ours.append(_cnnlab_rate(name, train, where, r))
            theirs.append(_baseline_rate(name, train, len(train), r))
        model, recipe = _build(name, train.image_shape, train.num_classes, 0)
        totals = analyze(model, train.image_shape).totals
        rows.append((name, totals, recipe.batch_size, ours, theirs))
    load_after = os.getloadavg()

    print(
        f"cnnlab bench/throughput.py: {train.name} training, {len(train):,} images per side "
        f"and round, {args.rounds} rounds (median shown)"
    )
    print(f"CPU: {info.describe()}; OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(
        f"torch {torch.__version__}, {threads} threads; placement: {where.precision}, "
        f"{'channels_last' if where.channels_last else 'NCHW'} ({cpu_precision()[1]})"
    )
    bf16 = f", bf16 {peak_bf16:.1f} GFLOP/s" if peak_bf16 is not None else ""
    print(f"peak: fp32 matmul 1536^2 on {threads} threads {peak:.1f} GFLOP/s{bf16}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print()
    print(
        f"{'network':<14} {'params':>9} {'MACs':>8} {'batch':>5} {'cnnlab img/s':>13} "
        f"{'baseline img/s':>15} {'ratio':>6} {'GFLOP/s':>8} {'of peak':>8}"
    )
    for name, totals, batch, ours, theirs in rows:
        a, b = statistics.median(ours), statistics.median(theirs)
        gflops = a * totals.macs * 6 / 1e9
        print(
            f"{name:<14} {totals.params:>9,} {totals.macs / 1e6:>7.2f}M {batch:>5} {a:>13,.0f} "
            f"{b:>15,.0f} {a / b:>5.2f}x {gflops:>8.1f} {gflops / peak:>7.0%}"
        )
    print()
    print(
        "baseline: pytorch/examples MNIST pipeline (per-sample PIL ToTensor + Normalize, "
        "DataLoader batch 64, fp32 NCHW, SGD) on the same network"
    )
    print(
        "rounds, cnnlab/baseline img/s: "
        + "; ".join(
            f"{name} " + ", ".join(f"{x:,.0f}/{y:,.0f}" for x, y in zip(ours, theirs, strict=True))
            for name, _, _, ours, theirs in rows
        )
    )
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(code)
