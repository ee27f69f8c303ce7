"""Probe small networks for the ``fast`` recipe: validation top-1 per epoch and CPU time.

    .venv/bin/python bench/probe_nets.py base --epochs 6
    .venv/bin/python bench/probe_nets.py 32p,64p,128,128p --epochs 6
    .venv/bin/python bench/probe_nets.py s32,64p,128,128p --epochs 6

How the ``fast`` recipe's network was chosen (README, Performance): each candidate is
trained with the fast recipe's hyperparameters (SGD-Nesterov 0.9, batch 256, peak lr 0.2,
one-cycle with 20% linear warm-up and linear decay, label smoothing 0.2, weight decay 5e-4
on weights only, crop (padding 2) and flip from cnnlab's ``BatchPipeline``), on 54,000
Fashion-MNIST training images, and scored on the 6,000 held-out validation images (never
the test split) with flip test-time augmentation.  The time printed is this process's CPU
time per training image on ``--threads`` threads (1 by default): unlike wall time it hardly
depends on what else the machine runs, so probes can be compared on a busy machine.

A network is ``base`` (three conv3-BN-ReLU-maxpool groups of 32, 64 and 128 channels) or a
comma list of layers: ``64`` a conv3-BN-ReLU of 64 channels, ``64p`` a conv3 of 64 with a
2x2 max pool right after it (before its BatchNorm and ReLU), ``s32`` a 4x4 stride-2 conv of
32 channels (padding 1) with BatchNorm and ReLU; then global average pooling and a linear
layer.  Convolutions have no bias (BatchNorm follows), the linear layer none either.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from options import count
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def _conv_group(c_in: int, c_out: int, pool: bool, pool_first: bool) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    norm = [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if not pool:
        return [conv, *norm]
    return [conv, nn.MaxPool2d(2), *norm] if pool_first else [conv, *norm, nn.MaxPool2d(2)]


def network(text: str) -> nn.Sequential:
    """The network ``text`` names (see the module doc)."""
    layers: list[nn.Module] = []
    c_in = 1
    if text == "base":
        for c_out in (32, 64, 128):
            layers += _conv_group(c_in, c_out, True, pool_first=False)
            c_in = c_out
    else:
        for token in text.split(","):
            if token.startswith("s"):
                c_out = int(token[1:])
                layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]  # fmt: skip
            else:
                c_out = int(token.rstrip("p"))
                layers += _conv_group(c_in, c_out, token.endswith("p"), pool_first=True)
            c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(c_in, 10, bias=False))  # fmt: skip


def _macs(model: nn.Module) -> int:
    counts: list[int] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: counts.append(o.numel() * m.weight[0].numel()))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    model.eval()(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    model.train()
    return sum(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("net", help="base, or a layer list such as s32,64p,128,128p")
    parser.add_argument("--epochs", type=count, default=6)
    parser.add_argument("--threads", type=count, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--label-smoothing", type=float, default=0.2)
    args = parser.parse_args(argv)
    if args.net != "base" and not re.fullmatch(r"(s?[0-9]+|[0-9]+p)(,([0-9]+p?))*", args.net):
        parser.error(
            f"net {args.net!r}: expected base, or layers such as s32,64p,128,128p "
            "(N: conv3 of N channels, Np: with a 2x2 max pool, sN first: 4x4/2 stem)"
        )

    from cnnlab.data import Augment, BatchPipeline
    from cnnlab.train.device import cpu_info
    from cnnlab.train.splits import load_data

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = network(args.net)
    data = load_data("fashion-mnist", 0.1, seed=0)
    batches = BatchPipeline(data.train, 256, augment=Augment(crop_padding=2, flip=True),
                            seed=args.seed, drop_last=True)  # fmt: skip
    val = BatchPipeline(data.val, 1000, shuffle=False)
    weights = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": 5e-4},
                           {"params": others, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)  # fmt: skip
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, args.lr, total_steps=args.epochs * len(batches), pct_start=0.2,
        anneal_strategy="linear", div_factor=1e4, final_div_factor=1.0, cycle_momentum=False,
    )  # fmt: skip
    print(f"bench/probe_nets.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"CPU: {cpu_info().describe()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"{args.net}: {_macs(model) / 1e6:.2f}M MACs, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")  # fmt: skip
    cpu = 0.0
    for epoch in range(args.epochs):
        start = time.process_time()
        for x, y in batches.epoch(epoch):
            loss = F.cross_entropy(model(x), y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        cpu += time.process_time() - start
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val.epoch(0):
                correct += int(((model(x) + model(x.flip(3))).argmax(1) == y).sum())
        model.train()
        per_image = cpu / (epoch + 1) / len(data.train) * 1e3
        print(f"  epoch {epoch + 1}  val top-1 {correct / len(data.val):.4f}  "
              f"CPU {cpu:.0f} s ({per_image:.3f} ms per training image)", flush=True)  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
