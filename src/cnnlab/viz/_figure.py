"""Matplotlib figures without pyplot: each figure has its own Agg canvas, so nothing global
(no pyplot state machine, no interactive backend) is touched, and figures render the same in
a test, a server or a terminal without a display."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["figure_bytes", "figure_rgb", "new_figure", "text_style"]

# SVG keeps text as text (searchable, and the tests read the labels back).
_RC = {"svg.fonttype": "none", "font.size": 9}


def new_figure(width: float, height: float, dpi: int = 100) -> Any:
    """A :class:`matplotlib.figure.Figure` of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def text_style() -> dict[str, Any]:
    """The rc settings figures are saved under (see :func:`figure_bytes`)."""
    return dict(_RC)


def figure_bytes(fig: Any, fmt: str = "png", dpi: int | None = None) -> bytes:
    """The figure encoded as ``fmt`` ("png" or "svg")."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format=fmt, dpi=dpi or fig.dpi, facecolor="white")
    return buf.getvalue()


def figure_rgb(fig: Any) -> np.ndarray:
    """The figure drawn on its Agg canvas: uint8 (H, W, 3), row 0 at the top."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
