"""Training on a shared CPU: OpenMP's waiting threads, with and without a busy neighbour.

    .venv/bin/python bench/contention.py                    # the fast net and the 94% net
    .venv/bin/python bench/contention.py --nets fast --steps 10 --rounds 1

PyTorch's CPU wheels run intra-op parallelism on GNU OpenMP, whose threads spin-wait at the
end of every parallel region before they sleep.  When another process keeps one of the
cores busy, one of a two-thread step's threads is often off the CPU while the other spins
for it, and each of the hundreds of parallel regions of a training step waits for the
scheduler.  This script measures it, side by side in one run, each measurement a fresh
process (OpenMP reads its environment when torch is imported):

* ``spin``: torch's default (``OMP_WAIT_POLICY`` unset), with ``--threads`` threads;
* ``short spin``: ``GOMP_SPINCOUNT=20000`` (a waiting thread spins 15 times less long
  than GNU OpenMP's default of 300,000 before it sleeps);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (a waiting thread sleeps at once);
* ``1 thread``: the same step on one thread, for reference;

each on a quiet machine and with one busy neighbour (a Python loop this script starts, on
no particular core), round by round.  A measurement is ``--steps`` SGD steps (bf16 autocast
and channels_last where ``cnnlab.train.device.cpu_precision`` chooses bf16, else fp32) of
a batch of 256 random 28x28 images after two warm-up steps: images/s over their whole wall
time, since the stalls are what is measured.  Printed: the CPU, its flags, the load average
before and after, the median images/s of each, and the ratios to ``spin``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from options import count

_HERE = Path(__file__).resolve().parent
_NETS = ("fast", "res")
_POLICIES = ("spin", "short spin", "passive", "1 thread")


def _worker(net_name: str, threads: int, steps: int) -> None:
    """One measurement, in this fresh process: prints {"images_per_s": ...}."""
    import torch
    import torch.nn.functional as F

    from cnnlab.notation import build_spec
    from cnnlab.train.device import channels_last_gradients, cpu_precision
    from cnnlab.train.optim import SGD
    from cnnlab.train.recipes import FAST_PRESETS, RECIPES

    torch.set_num_threads(threads)
    spec = RECIPES["fast"].model if net_name == "fast" else FAST_PRESETS[2].model
    bf16 = cpu_precision()[0] == "bf16"
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    torch.manual_seed(0)
    net = build_spec(spec, in_channels=1, input_size=28, num_classes=10)
    net = net.to(memory_format=fmt).train()
    if bf16:
        channels_last_gradients(net)
    opt = SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(256, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (256,))

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"images_per_s": 256 * steps / (time.perf_counter() - t)}))


def _measure(net: str, policy: str, threads: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif policy == "short spin":
        env["GOMP_SPINCOUNT"] = "20000"
    n = 1 if policy == "1 thread" else threads
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "--worker", net, str(n), str(steps)],
        capture_output=True, text=True, env=env, check=True, timeout=900,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--nets", default=",".join(_NETS), help="fast (9.98M MACs), res (the 94%% preset's)"
    )
    p.add_argument("--threads", type=count, default=2)
    p.add_argument("--steps", type=count, default=20, help="timed steps per measurement")
    p.add_argument("--rounds", type=count, default=2)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return 0
    sys.path.insert(0, str(_HERE.parent / "src"))
    from cnnlab.train.device import cpu_info, cpu_precision

    info = cpu_info()
    print(f"CPU: {info.describe()}; training in {cpu_precision()[0]}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    nets = [n for n in args.nets.split(",") if n]
    rates: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.rounds):
        for net in nets:
            for condition in ("quiet", "one busy neighbour"):
                neighbour = _busy() if condition != "quiet" else None
                try:
                    for policy in _POLICIES:
                        rate = _measure(net, policy, args.threads, args.steps)
                        rates.setdefault((net, condition, policy), []).append(rate)
                finally:
                    if neighbour is not None:
                        neighbour.kill()
                        neighbour.wait()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    head = " | ".join(f"{p} img/s" for p in _POLICIES)
    print(f"| net | machine | {head} | passive / spin | 1 thread / spin |")
    print("|---|---|" + "---:|" * (len(_POLICIES) + 2))
    for net in nets:
        for condition in ("quiet", "one busy neighbour"):
            med = {p: statistics.median(rates[(net, condition, p)]) for p in _POLICIES}
            cells = " | ".join(f"{med[p]:,.0f}" for p in _POLICIES)
            spin = med["spin"]
            print(
                f"| {net} | {condition} | {cells} | {med['passive'] / spin:.2f}x | "
                f"{med['1 thread'] / spin:.2f}x |"
            )
    print(f"\n({args.threads} threads unless said; median of {args.rounds} rounds of {args.steps}"
          " steps at batch 256)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
