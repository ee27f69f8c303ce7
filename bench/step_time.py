"""Training-step time of several networks, side by side in one run: what a change of the
network costs or saves per image on this machine.

    .venv/bin/python bench/step_time.py                       # the 94% and 93% presets' nets
    .venv/bin/python bench/step_time.py --net fast94 --net 'w48=conv3-32-maxpool-...'

Each ``--net`` is a preset's network by name (``fast``: the 92% and 93% presets',
``fast94``, ``fast95``) or ``LABEL=NOTATION`` (any network in the notation, for 1x28x28
images and 10 classes); the first is the reference.  Every network trains as a preset
trains it on this machine's CPU: bf16 autocast and channels_last, the weight-gradient switch
of :mod:`cnnlab.train.kernels`, SGD-Nesterov, batch ``--batch`` of random images.  After
warm-up steps, the networks take turns one step at a time, ``--steps`` steps each, so that
all of them share whatever the machine does meanwhile (this host's speed changes within
minutes); printed: each network's MACs, its median and fastest step, images/s, and the
median of its step-by-step ratios to the reference's neighbouring step, with their
quartiles.  With the CPU model, its flags and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from kernels import stepper
from options import count

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from cnnlab.analysis import analyze  # noqa: E402
from cnnlab.errors import CnnlabError  # noqa: E402
from cnnlab.notation import build_spec  # noqa: E402
from cnnlab.train import kernels  # noqa: E402
from cnnlab.train.device import configure_threads, cpu_info  # noqa: E402
from cnnlab.train.recipes import FAST_PRESETS  # noqa: E402

_BY_TARGET = {p.target: p.model for p in FAST_PRESETS}
_NAMED = {"fast": _BY_TARGET[0.93], "fast94": _BY_TARGET[0.94], "fast95": _BY_TARGET[0.95]}


def _network(text: str) -> tuple[str, str]:
    """``--net`` as (label, notation)."""
    if text in _NAMED:
        return text, _NAMED[text]
    label, sep, notation = text.partition("=")
    if not sep or not label or not notation:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a preset's network ({', '.join(_NAMED)}) or LABEL=NOTATION"
        )
    return label, notation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", type=_network, action="append",
                        help="fast, fast94, fast95 or LABEL=NOTATION; the first is the "
                             "reference (default: fast94, fast)")  # fmt: skip
    parser.add_argument("--batch", type=count, default=256)
    parser.add_argument("--steps", type=count, default=40, help="timed steps per network")
    parser.add_argument("--threads", type=count, default=None)
    args = parser.parse_args(argv)
    nets = args.net or [_network("fast94"), _network("fast")]
    if len({label for label, _ in nets}) < len(nets):
        parser.error("--net: each network needs a label of its own")
    threads = configure_threads(args.threads)
    steps, macs = {}, {}
    for label, notation in nets:
        torch.manual_seed(0)
        try:
            net = build_spec(notation, in_channels=1, input_size=28, num_classes=10)
        except CnnlabError as exc:
            parser.error(f"--net {label}: {exc}")
        macs[label] = analyze(net, (1, 28, 28)).totals.macs
        net = net.to(memory_format=torch.channels_last).train()
        kernels.matmul_weight_gradients(net)
        steps[label] = stepper(net, args.batch)
    load_before = os.getloadavg()
    print(f"CPU: {cpu_info().describe()}; torch {torch.__version__}; {threads} threads")
    print(f"load average before {load_before[0]:.2f} (1 min); batch {args.batch}")
    for step in steps.values():
        for _ in range(3):  # warm-up (and the switch's first-call measurement)
            step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(args.steps):
        for label, step in steps.items():
            t = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - t)
    ref = nets[0][0]
    print(f"\n{'network':10} {'MACs':>8} {'median ms':>10} {'fastest':>8} {'img/s':>7}  "
          f"ratio to {ref} (quartiles)")  # fmt: skip
    for label, ts in times.items():
        ratios = sorted(a / b for a, b in zip(ts, times[ref], strict=True))
        q = len(ratios) // 4
        med = statistics.median(ts)
        print(f"{label:10} {macs[label] / 1e6:7.2f}M {med * 1e3:10.2f} {min(ts) * 1e3:8.2f} "
              f"{args.batch / med:7,.0f}  {statistics.median(ratios):.3f} "
              f"({ratios[q]:.3f}-{ratios[-1 - q]:.3f})")  # fmt: skip
    print(f"\nload average after {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
