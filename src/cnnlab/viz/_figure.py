"""Matplotlib figures without pyplot: each figure has its own Agg canvas, so nothing global
(no pyplot state machine, no interactive backend) is touched, and figures render the same in
a test, a server or a terminal without a display."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["TileGrid", "figure_bytes", "figure_rgb", "new_figure", "text_style"]

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


class TileGrid:
    """A ``rows`` x ``cols`` grid of small pictures in one Axes (``self.ax``) of ``fig``,
    filling ``rect`` (left, bottom, right, top in figure fractions); ``gap`` (across, down)
    between cells, in cell sizes (the space a tile's title takes).  One Axes per tile, as
    subplots, cost about 5 ms to make and 3 ms to draw each: the 70 tiles of a run's
    report took a third of its time.  :meth:`draw` adds a tile: ``ax.images`` and
    ``ax.texts`` hold the tiles and their titles in the order drawn."""

    def __init__(
        self,
        fig: Any,
        rows: int,
        cols: int,
        rect: tuple[float, float, float, float],
        gap: tuple[float, float] = (0.15, 0.35),
    ) -> None:
        left, bottom, right, top = rect
        self.ax = fig.add_axes((left, bottom, right - left, top - bottom))
        self.ax.set_axis_off()
        self.pitch = (1 + gap[0], 1 + gap[1])
        self.ax.set_xlim(-0.02, cols * self.pitch[0] - gap[0] + 0.02)
        self.ax.set_ylim(rows * self.pitch[1] - gap[1] + 0.02, -gap[1])  # row 0 at the top
        self.ax.set_aspect("equal")

    def draw(
        self, row: int, col: int, image: Any, title: str = "", fontsize: float = 6, **imshow: Any
    ) -> None:
        """``image`` (h, w) or (h, w, 3) in cell (``row``, ``col``), framed, as large as the
        cell lets it be without changing its shape, ``title`` above it."""
        from matplotlib.patches import Rectangle

        h, w = np.shape(image)[:2]
        tw, th = (1.0, h / w) if w >= h else (w / h, 1.0)
        x0 = col * self.pitch[0] + (1 - tw) / 2
        y0 = row * self.pitch[1] + (1 - th) / 2
        self.ax.imshow(image, extent=(x0, x0 + tw, y0 + th, y0), interpolation="nearest", **imshow)
        self.ax.add_patch(Rectangle((x0, y0), tw, th, fill=False, linewidth=0.8))
        if title:
            self.ax.text(x0 + tw / 2, y0 - 0.04, title, fontsize=fontsize, ha="center",
                         va="bottom")  # fmt: skip

    def label_row(self, row: int, text: str, fontsize: float = 7) -> None:
        """``text`` left of ``row``, written upwards (as an Axes' y label)."""
        y = row * self.pitch[1] + 0.5
        self.ax.text(-0.08, y, text, fontsize=fontsize, rotation=90, ha="right", va="center")
