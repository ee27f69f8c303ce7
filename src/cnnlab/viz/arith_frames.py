"""The lecture's sliding window, drawn: one frame per output position, the filter's taps
highlighted on the zero-padded input while the output fills in, the formula worked out on
every frame; and, for a window that does not fit, where the last window falls off the edge.

Coordinates: a cell of the padded input is ``(row, col)`` with 0 at the top left of the
padding, so input cell ``(i, j)`` is padded cell ``(i + P, j + P)``.  Output unit ``(r, c)``
reads the taps ``(r*S + a*D, c*S + b*D)`` for ``a, b`` in ``0..F-1`` (Dumoulin & Visin 2016,
"A guide to convolution arithmetic for deep learning", whose figures these follow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.geometry import effective_kernel, fit
from cnnlab.viz.arithmetic import WindowArithmetic

__all__ = [
    "ArithAnimation",
    "Misfit",
    "WindowPosition",
    "arith_animation",
    "gif_bytes",
    "misfit",
    "misfit_figure",
    "strip_image",
    "window_positions",
]

_INPUT, _PAD, _TAP, _SPAN = "#ffffff", "#d9d9d9", "#f28e2b", "#fbd7b4"
_DONE, _NOW, _TODO = "#4e79a7", "#f28e2b", "#ffffff"
TAP_RGB = (0xF2, 0x8E, 0x2B)  # the highlighted taps' colour, for readers of the frames


@dataclass(frozen=True)
class WindowPosition:
    """Output unit ``(row, col)`` and the padded-input cells its taps read."""

    row: int
    col: int
    tap_rows: tuple[int, ...]
    tap_cols: tuple[int, ...]


def window_positions(a: WindowArithmetic) -> list[WindowPosition]:
    """Every output position of a window that fits, in reading order."""
    taps = [k * a.dilation for k in range(a.kernel)]
    out = []
    for r in range(a.output):
        for c in range(a.output):
            out.append(
                WindowPosition(
                    r,
                    c,
                    tuple(r * a.stride + t for t in taps),
                    tuple(c * a.stride + t for t in taps),
                )
            )
    return out


@dataclass
class ArithAnimation:
    """The frames (RGB Pillow images, one per :func:`window_positions` entry) and where each
    padded-input cell's centre lies in them (``input_px[(row, col)] = (x, y)``, pixels from
    the top left) and each output cell's (``output_px``)."""

    arithmetic: WindowArithmetic
    positions: list[WindowPosition]
    frames: list[Any]
    input_px: dict[tuple[int, int], tuple[int, int]]
    output_px: dict[tuple[int, int], tuple[int, int]]


def _formula(a: WindowArithmetic) -> str:
    return f"output = (N - F + 2P)/S + 1 = {a.fit.formula()}"


def _settings(a: WindowArithmetic) -> str:
    d = f", dilation {a.dilation} (spans {a.span})" if a.dilation != 1 else ""
    return f"N = {a.size}, F = {a.kernel}, S = {a.stride}, P = {a.padding}{d}"


def _grid(ax: Any, n: int, colour_of: Any) -> dict[tuple[int, int], Any]:
    from matplotlib.patches import Rectangle

    cells = {}
    for r in range(n):
        for c in range(n):
            rect = Rectangle((c, r), 1, 1, facecolor=colour_of(r, c), edgecolor="#555555", lw=0.6)
            ax.add_patch(rect)
            cells[(r, c)] = rect
    ax.set_xlim(-0.2, n + 0.2)
    ax.set_ylim(n + 0.2, -0.2)  # row 0 at the top
    ax.set_aspect("equal")
    ax.set_axis_off()
    return cells


def _centres(fig: Any, ax: Any, n: int) -> dict[tuple[int, int], tuple[int, int]]:
    height = fig.canvas.get_width_height()[1]
    out = {}
    for r in range(n):
        for c in range(n):
            x, y = ax.transData.transform((c + 0.5, r + 0.5))
            out[(r, c)] = (int(round(x)), int(round(height - y)))
    return out


def arith_animation(a: WindowArithmetic, *, dpi: int = 80) -> ArithAnimation:
    """Draw every frame of the sliding window ``a`` (a window that fits)."""
    from PIL import Image

    from cnnlab.viz._figure import figure_rgb, new_figure

    n = a.size + 2 * a.padding
    p = a.padding
    positions = window_positions(a)
    fig = new_figure(7.0, 4.0, dpi=dpi)
    ax_in = fig.add_axes((0.02, 0.1, 0.52, 0.66))
    ax_out = fig.add_axes((0.6, 0.1, 0.36, 0.66))

    def base(r: int, c: int) -> str:
        return _INPUT if p <= r < p + a.size and p <= c < p + a.size else _PAD

    cells = _grid(ax_in, n, base)
    outs = _grid(ax_out, a.output, lambda r, c: _TODO)
    ax_in.set_title(f"input {a.size}x{a.size}, padding {p} (grey)", fontsize=9)
    ax_out.set_title(f"output {a.output}x{a.output}", fontsize=9)
    fig.text(0.02, 0.97, _settings(a), fontsize=9, va="top")
    fig.text(0.02, 0.9, _formula(a), fontsize=10, va="top", family="monospace")
    caption = fig.text(0.02, 0.02, "", fontsize=9, va="bottom")
    frames = []
    for i, pos in enumerate(positions):
        for (r, c), rect in cells.items():
            rect.set_facecolor(base(r, c))
        r0, c0 = pos.tap_rows[0], pos.tap_cols[0]
        for r in range(r0, pos.tap_rows[-1] + 1):
            for c in range(c0, pos.tap_cols[-1] + 1):
                cells[(r, c)].set_facecolor(_SPAN)  # inside the window, between taps
        for r in pos.tap_rows:
            for c in pos.tap_cols:
                cells[(r, c)].set_facecolor(_TAP)
        for k, rect in enumerate(outs.values()):
            rect.set_facecolor(_DONE if k < i else _NOW if k == i else _TODO)
        caption.set_text(
            f"output[{pos.row}, {pos.col}] reads rows {r0 - p}..{pos.tap_rows[-1] - p}, "
            f"cols {c0 - p}..{pos.tap_cols[-1] - p}"
        )
        frames.append(Image.fromarray(figure_rgb(fig)))
    return ArithAnimation(
        a, positions, frames, _centres(fig, ax_in, n), _centres(fig, ax_out, a.output)
    )


def gif_bytes(anim: ArithAnimation, *, ms_per_frame: int = 600) -> bytes:
    """The frames as a looping GIF (the last frame held twice as long)."""
    import io

    buf = io.BytesIO()
    frames = [f.quantize(colors=64, method=0, dither=0) for f in anim.frames]
    durations = [ms_per_frame] * (len(frames) - 1) + [2 * ms_per_frame]
    frames[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
        disposal=1,
    )
    return buf.getvalue()


def strip_image(anim: ArithAnimation, *, shrink: int = 2) -> Any:
    """Every frame, shrunk, in one picture: one row of frames per output row."""
    from PIL import Image

    w, h = anim.frames[0].size
    sw, sh = w // shrink, h // shrink
    cols = anim.arithmetic.output
    rows = int(np.ceil(len(anim.frames) / cols))
    sheet = Image.new("RGB", (cols * sw, rows * sh), "white")
    for i, frame in enumerate(anim.frames):
        small = frame.resize((sw, sh), Image.Resampling.LANCZOS)
        sheet.paste(small, ((i % cols) * sw, (i // cols) * sh))
    return sheet


@dataclass(frozen=True)
class Misfit:
    """Where a window that does not fit falls off: along one axis, windows start at
    ``starts`` (padded coordinates); the last of them, needed to reach the cells left over,
    runs ``overhang`` cells past the padded input's ``padded`` cells."""

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    span: int
    padded: int
    starts: tuple[int, ...]
    overhang: int
    formula: str


def misfit(size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1) -> Misfit:
    """The windows along one axis of a window that does not tile its input: those that fit,
    then the one that falls off the edge."""
    f = fit(size, kernel, stride, padding, dilation)
    span = effective_kernel(kernel, dilation)
    padded = size + 2 * padding
    fitting = max(f.output, 0)
    starts = tuple(k * stride for k in range(fitting + 1))
    return Misfit(
        size,
        kernel,
        stride,
        padding,
        dilation,
        span,
        padded,
        starts,
        starts[-1] + span - padded,
        f"output = (N - F + 2P)/S + 1 = {f.formula()}",
    )


def misfit_figure(m: Misfit, *, dpi: int = 90) -> Any:
    """The padded input's first rows with the windows along the top: those that fit in
    outline, the last one in red where it falls off the edge."""
    from matplotlib.patches import Rectangle

    from cnnlab.viz._figure import new_figure

    n, p = m.padded, m.padding
    width = n + max(m.overhang, 0) + 1
    fig = new_figure(max(6.5, 0.4 * width + 1), 0.4 * n + 1.8, dpi=dpi)
    ax = fig.add_axes((0.03, 0.16, 0.94, 0.6))

    def base(r: int, c: int) -> str:
        return _INPUT if p <= r < p + m.size and p <= c < p + m.size else _PAD

    _grid(ax, n, base)
    for k, s in enumerate(m.starts):
        last = k == len(m.starts) - 1
        ax.add_patch(
            Rectangle(
                (s + 0.06 * k, 0.06 * k),
                m.span,
                m.span,
                fill=last,
                alpha=0.35 if last else 1,
                facecolor="#e15759",
                edgecolor="#e15759" if last else "#4e79a7",
                lw=2.2,
                ls="--" if last else "-",
                gid=f"window-{k}",
            )
        )
    ax.set_xlim(-0.2, width)
    ax.set_aspect("equal")
    fig.text(0.03, 0.97, m.formula, fontsize=10, va="top", family="monospace")
    fig.text(
        0.03,
        0.97 - 0.28 / fig.get_figheight(),
        "is not a whole number: the window does not fit",
        fontsize=9,
        va="top",
    )
    k = len(m.starts)
    fig.text(
        0.03,
        0.04,
        f"window {k} (start {m.starts[-1] - p}) runs {m.overhang} cell(s) past the edge; "
        f"stride {m.stride} does not tile {m.size} + 2*{p} cells",
        fontsize=9,
        va="bottom",
        color="#b22222",
    )
    return fig
