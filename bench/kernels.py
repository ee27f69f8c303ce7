"""Convolution weight gradients: oneDNN's bf16 kernel against one matrix product, per layer
and for whole training steps, in one run.

    .venv/bin/python bench/kernels.py                  # the fast net and the 94% preset's
    .venv/bin/python bench/kernels.py --nets fast --rounds 10

Per layer (every plain ``nn.Conv2d`` of each network, at its own input shape at batch
``--batch``): the verdict :mod:`cnnlab.train.kernels` measures on a layer's first training
call (seconds of each way, best of three, interleaved) and whether the layer would switch.
Per network: a training step (bf16 autocast, channels_last, SGD-Nesterov, batch
``--batch``) with oneDNN's weight gradients everywhere against the same network with the
switch (:func:`cnnlab.train.kernels.matmul_weight_gradients`), the two alternating, five
steps a round, ``--rounds`` rounds; printed: each side's median step, images/s and the
ratio.  With the CPU model, its flags and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from options import count
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from cnnlab.notation import build_spec  # noqa: E402
from cnnlab.train import kernels  # noqa: E402
from cnnlab.train.device import channels_last_gradients, configure_threads, cpu_info  # noqa: E402
from cnnlab.train.optim import SGD  # noqa: E402
from cnnlab.train.recipes import _FAST_RES, RECIPES  # noqa: E402

_NETS = {"fast": RECIPES["fast"].model, "fast94": _FAST_RES}


def _net(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = build_spec(_NETS[name], in_channels=1, input_size=28, num_classes=10)
    return net.to(memory_format=torch.channels_last).train()


def _layer_shapes(net: nn.Module, batch: int) -> list[tuple[nn.Conv2d, tuple[int, ...]]]:
    shapes: list[tuple[nn.Conv2d, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, a: shapes.append((m, tuple(a[0].shape))))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        net(torch.zeros(batch, 1, 28, 28))
    for h in hooks:
        h.remove()
    return shapes


def stepper(net: nn.Module, batch: int):
    channels_last_gradients(net)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=gen).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=gen)
    opt = SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True)

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16):
            loss = F.cross_entropy(net(x).float(), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default="fast,fast94", help="comma list of: fast, fast94")
    parser.add_argument("--batch", type=count, default=256)
    parser.add_argument("--rounds", type=count, default=6)
    parser.add_argument("--threads", type=count, default=None)
    args = parser.parse_args(argv)
    names = [n for n in args.nets.split(",") if n]
    unknown = [n for n in names if n not in _NETS]
    if unknown:
        parser.error(f"--nets: unknown {', '.join(unknown)}; valid: {', '.join(_NETS)}")
    threads = configure_threads(args.threads)
    load_before = os.getloadavg()
    print(f"CPU: {cpu_info().describe()}; torch {torch.__version__}; {threads} threads")
    print(f"load average before {load_before[0]:.2f} (1 min)")
    for name in names:
        print(f"\n{name}: weight gradient per layer, batch {args.batch} (oneDNN ms / product ms)")
        for m, shape in _layer_shapes(_net(name), args.batch):
            r = kernels._measure(m, shape)
            switch = "switches" if r["gain"] >= kernels._GAIN else "stays"
            print(
                f"  {shape[1]:>4} -> {m.out_channels:<4} at {shape[2]}x{shape[3]}, kernel "
                f"{m.kernel_size[0]}x{m.kernel_size[1]}: {r['onednn_s'] * 1e3:7.3f} / "
                f"{r['product_s'] * 1e3:7.3f} ms ({r['gain']:.2f}x, {switch})"
            )
        plain = stepper(_net(name), args.batch)
        switched_net = _net(name)
        kernels.matmul_weight_gradients(switched_net)
        switched = stepper(switched_net, args.batch)
        times: dict[str, list[float]] = {"oneDNN": [], "switched": []}
        for step in (plain, switched):
            for _ in range(3):  # warm-up (and the switch's first-call measurement)
                step()
        for _ in range(args.rounds):
            for side, step in (("oneDNN", plain), ("switched", switched)):
                t = time.perf_counter()
                for _ in range(5):
                    step()
                times[side].append((time.perf_counter() - t) / 5)
        med = {side: statistics.median(ts) for side, ts in times.items()}
        for side, s in med.items():
            print(f"  step, {side:>8}: {s * 1e3:7.1f} ms median, {args.batch / s:7,.0f} img/s")
        print(f"  ratio: {med['oneDNN'] / med['switched']:.2f}x")
    print(f"\nload average after {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
