"""The universal-approximation slide, made visible: one hidden layer can fit any continuous
function on an interval given enough units (Cybenko 1989; Hornik 1991), and depth buys more
with the same parameters (Telgarsky 2016; Eldan & Shamir 2016).

:func:`approximation_demo` fits a continuous 1-D target with one hidden layer of growing
width, and with deeper networks of (about) the same parameter counts, each trained full-batch
with Adam from a fixed seed, and measures the error on a dense grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError

__all__ = ["Fit", "TARGET_TEXT", "approximation_demo", "approx_figure", "mlp", "target"]

TARGET_TEXT = "sin(3x) + 0.4 sin(11x) + |x|, x in [-1, 1]"


def target(x: np.ndarray) -> np.ndarray:
    """The continuous function to fit (a kink at 0, two frequencies): :data:`TARGET_TEXT`."""
    return np.sin(3 * x) + 0.4 * np.sin(11 * x) + np.abs(x)


def mlp(depth: int, width: int) -> Any:
    """``depth`` hidden layers of ``width`` ReLU units, 1 input, 1 output."""
    from torch import nn

    layers: list[nn.Module] = []
    n_in = 1
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, 1))
    return nn.Sequential(*layers)


def _spread_kinks(first: Any) -> None:
    """Put each first-layer unit's kink (where ``w*x + b = 0``) uniformly in [-1, 1], slope
    +-3.  PyTorch's default puts many kinks outside the interval, where they are wasted, and
    a one-hidden-layer fit then stalls far above what its width can reach."""
    import torch

    with torch.no_grad():
        n = first.weight.shape[0]
        kink = torch.rand(n) * 2 - 1
        slope = torch.where(torch.rand(n) < 0.5, -3.0, 3.0)
        first.weight.copy_(slope[:, None])
        first.bias.copy_(-slope * kink)


def _params(depth: int, width: int) -> int:
    # input layer 2w, (depth - 1) hidden-to-hidden layers w^2 + w, output w + 1
    return 2 * width + (depth - 1) * (width * width + width) + width + 1


def _width_for(depth: int, params: int) -> int:
    """The width whose ``depth``-layer network has the parameter count nearest ``params``."""
    best = min(range(1, 512), key=lambda w: abs(_params(depth, w) - params))
    return best


@dataclass(frozen=True)
class Fit:
    """One trained network: its shape, parameter count, RMS error on the test grid, and its
    predictions there."""

    depth: int
    width: int
    params: int
    rms: float
    prediction: np.ndarray = field(repr=False)


def approximation_demo(
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64),
    depths: tuple[int, ...] = (2, 3),
    *,
    steps: int = 1500,
    points: int = 256,
    seed: int = 0,
    threads: int | None = 1,
) -> tuple[np.ndarray, np.ndarray, list[Fit]]:
    """(grid, target on the grid, fits): one hidden layer of each width; for each deeper
    ``depth`` and each width, the network of that depth with the nearest parameter count.
    Each is trained for ``steps`` full-batch Adam steps (lr 0.02, cosine decay to 0) on
    ``points`` evenly spaced points, from ``seed``, its first layer's kinks spread over the
    interval.  The networks train on ``threads`` CPU threads (PyTorch's setting is given
    back afterwards; None keeps it): for a few hundred parameters one thread is fastest, and
    more only wait on each other, far more so on a busy machine."""
    import torch

    if steps < 1 or points < 2:
        raise CnnlabError("the demo needs steps >= 1 and points >= 2")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(widths, depths, steps, points, seed)
    finally:
        torch.set_num_threads(before)


def _run(
    widths: tuple[int, ...], depths: tuple[int, ...], steps: int, points: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[Fit]]:
    import torch

    x_train = torch.linspace(-1, 1, points).unsqueeze(1)
    y_train = torch.from_numpy(target(x_train.numpy())).float()
    grid = np.linspace(-1, 1, 1001, dtype=np.float32)
    x_test = torch.from_numpy(grid).unsqueeze(1)
    y_test = target(grid)
    fits = []
    shapes = [(1, w) for w in widths]
    for d in depths:
        # the deep net nearest in parameters to each shallow one (at least 2 units wide)
        shapes += [(d, max(2, _width_for(d, _params(1, w)))) for w in widths]
    for depth, width in dict.fromkeys(shapes):
        torch.manual_seed(seed)
        net = mlp(depth, width)
        _spread_kinks(net[0])
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            loss = torch.mean((net(x_train) - y_train) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        with torch.no_grad():
            pred = net(x_test).squeeze(1).numpy()
        n = sum(p.numel() for p in net.parameters())
        rms = float(math.sqrt(np.mean((pred - y_test) ** 2)))
        fits.append(Fit(depth, width, n, rms, pred))
    return grid, y_test, fits


def approx_figure(grid: np.ndarray, y: np.ndarray, fits: list[Fit], steps: int) -> Any:
    """Left: RMS error against parameters (log-log), one line per depth (``fig.axes[0]``,
    lines labelled ``depth D``).  Right: the target and the one-hidden-layer fits."""
    from cnnlab.viz._figure import new_figure

    fig = new_figure(10.0, 3.8)
    left, right = fig.subplots(1, 2)
    for depth in sorted({f.depth for f in fits}):
        mine = sorted((f for f in fits if f.depth == depth), key=lambda f: f.params)
        left.plot([f.params for f in mine], [f.rms for f in mine], marker="o",
                  label=f"depth {depth}")  # fmt: skip
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("parameters")
    left.set_ylabel("RMS error on 1001 points")
    left.legend(fontsize=7)
    left.grid(alpha=0.3, which="both")
    right.plot(grid, y, "k", lw=2, label="target")
    for f in fits:
        if f.depth == 1:
            right.plot(grid, f.prediction, lw=1, label=f"width {f.width} ({f.params} params)")
    right.legend(fontsize=6)
    right.set_xlabel("x")
    fig.suptitle(f"fitting {TARGET_TEXT}: one hidden layer of growing width vs deeper ReLU "
                 f"nets of the same size ({steps} Adam steps each)", fontsize=9)  # fmt: skip
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.14, top=0.88, wspace=0.2)
    return fig
