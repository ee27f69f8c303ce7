"""Looking at networks and data: image grids, the denormalization, the worked arithmetic of
one window, and forward hooks that never outlive the forward they were set for.

* :func:`image_grid`: uint8 images (N, C, H, W) as a labelled Pillow grid;
* :func:`denormalize`: normalized float batches back to uint8 pixels;
* :func:`window_arithmetic`: the lecture's ``(N - F + 2P)/S + 1`` for one window, worked out,
  as plain data (:class:`WindowArithmetic`) for the CLI or a drawing to render;
* :func:`hooked` / :func:`record_outputs`: forward hooks on named modules, removed whatever
  happens.

Viz reads the analysis, the data and (later) training runs; nothing below imports it.
Everything is imported on first use, so ``cnnlab arith`` needs neither torch nor Pillow.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ConvParams",
    "WindowArithmetic",
    "denormalize",
    "hooked",
    "image_grid",
    "record_outputs",
    "window_arithmetic",
]

_LAZY = {
    "ConvParams": "cnnlab.viz.arithmetic",
    "WindowArithmetic": "cnnlab.viz.arithmetic",
    "window_arithmetic": "cnnlab.viz.arithmetic",
    "denormalize": "cnnlab.viz.images",
    "image_grid": "cnnlab.viz.grid",
    "hooked": "cnnlab.viz.hooks",
    "record_outputs": "cnnlab.viz.hooks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnlab.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
