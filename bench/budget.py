"""What ``--budget`` takes on this machine: each fast preset's estimated time, and the
preset each budget gets.

    .venv/bin/python bench/budget.py                          # 60s, 2min, 5min, 20min
    .venv/bin/python bench/budget.py --budget 5min --budget 10min

For each precision (fp32, and ``auto``: what ``cpu_precision`` chooses here, as a run
without ``--precision`` trains), each preset's network is probed as a budget probes it
(``cnnlab.train.recipes.training_rate``: a few SGD steps of 256 images) and its whole run
estimated as ``--budget`` estimates it (``estimated_seconds``: the training FLOP over the
probed rate, plus 30% and 10 s), with the estimate without the 30% beside it, to hold
against real runs.  Then, for each ``--budget``, what ``cnnlab train --recipe fast --budget
B`` would take (preset and epochs), from the ``auto`` probes above.  Printed: the CPU, its
flags and the load average before and after.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", action="append", help="a budget, as --budget takes it")
    args = parser.parse_args()
    import torch

    from cnnlab.train.device import cpu_info, cpu_precision
    from cnnlab.train.recipes import (
        FAST_PRESETS,
        estimated_seconds,
        fast_preset,
        parse_budget,
        set_value,
        training_rate,
    )

    print("cnnlab bench/budget.py")
    print(f"CPU: {cpu_info().describe()}; torch {torch.__version__}; "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"load average before {os.getloadavg()[0]:.2f} (1 min)")
    print(f"auto trains in {cpu_precision()[0]} here\n")
    print("preset  epochs  MACs      precision  probed GFLOP/s  estimate  without the 30%")
    rates: dict[str, float] = {}  # auto's, by network: what the budgets below are given
    for precision in ("fp32", "auto"):
        for preset in FAST_PRESETS:
            rate = training_rate(preset, precision)
            if precision == "auto":
                rates[preset.model] = rate
            whole = estimated_seconds(preset, preset.epochs, rate)
            bare = estimated_seconds(preset, preset.epochs, rate, margin=1.0)
            head = f"{preset.target:.0%}     {preset.epochs:6d}  {preset.macs / 1e6:5.2f}M"
            print(f"{head}    {precision:9s}  {rate / 1e9:14.1f}  {whole:6.0f} s  {bare:13.0f} s")
    print()
    for text in args.budget or ["60s", "2min", "5min", "20min"]:
        preset, sets = fast_preset(budget=parse_budget(text), rates=rates)
        epochs = int(set_value(sets, "epochs", str(preset.epochs)))
        cut = "" if epochs == preset.epochs else f" (cut from {preset.epochs})"
        print(f"--budget {text}: the {preset.target:.0%} preset, {epochs} epochs{cut}")
    print(f"\nload average after {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
