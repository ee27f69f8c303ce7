"""A network drawn as volumes, like the lecture's LeNet-5 and AlexNet figures: one box per
layer, its height following H, its thickness D and its slant W, labelled with the layer's name
and the analysis's W x H x D.  Fully connected layers are bars as tall as their features.

The boxes are the analysis's layers (rows with a typed layer: convolutions, pools,
normalizations, fully connected layers); a block the analysis names as one layer (an
inception module, a residual block) is one box on the main path, its inside drawn by
:func:`block_boxes`.  A size axis whose largest value is more than 12 times its smallest is
drawn on a log scale (``1 + log2``), stated on the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["Box", "arch_boxes", "arch_figure", "block_boxes", "block_figure"]

_COLOURS = {
    "input": "#bab0ac",
    "conv": "#4e79a7",
    "conv_transpose": "#4e79a7",
    "max_pool": "#e15759",
    "avg_pool": "#f28e2b",
    "adaptive_max_pool": "#e15759",
    "adaptive_avg_pool": "#f28e2b",
    "subsample": "#f28e2b",
    "lrn": "#76b7b2",
    "linear": "#59a14f",
    "block": "#b07aa1",
}


@dataclass(frozen=True)
class Box:
    """One drawn layer: ``path`` (``"(input)"`` for the input), its kind, and the output
    ``shape`` of one example (C, H, W) or (features,); ``volume`` is the analysis's text."""

    path: str
    kind: str
    shape: tuple[int, ...]
    volume: str


def _example_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[1:])


def arch_boxes(analysis: Any) -> list[Box]:
    """The main path: the input, then every layer row not inside a block row, in order."""
    rows = [r for r in analysis.rows if r.layer is not None and r.call == 1]
    blocks = [r.path for r in rows if str(r.layer.kind) == "block"]

    def inside(path: str) -> bool:
        return any(path.startswith(b + ".") for b in blocks)

    shape = _example_shape(tuple(analysis.input_shape))
    boxes = [Box("(input)", "input", shape, "x".join(map(str, [*reversed(shape[1:]), shape[0]])))]
    for r in rows:
        if not inside(r.path):
            boxes.append(Box(r.path, str(r.layer.kind), _example_shape(r.output_shape), r.volume))
    return boxes


def block_boxes(analysis: Any, block: str) -> dict[str, list[Box]]:
    """The inside of a block row: its layers grouped by branch (the block's direct children
    that hold layers), in order.  Raises :class:`CnnlabError` for a path that is not a block."""
    paths = [r.path for r in analysis.rows if r.layer is not None and str(r.layer.kind) == "block"]
    if block not in paths:
        shown = ", ".join(paths[:6]) + (", ..." if len(paths) > 6 else "")
        raise CnnlabError(
            f"--block {block!r}: not a block of this network; its blocks: {shown or 'none'}"
        )
    branches: dict[str, list[Box]] = {}
    for r in analysis.rows:
        if r.layer is None or r.call != 1 or not r.path.startswith(block + "."):
            continue
        if str(r.layer.kind) == "block":
            continue
        branch = r.path[len(block) + 1 :].split(".")[0]
        branches.setdefault(branch, []).append(
            Box(r.path, str(r.layer.kind), _example_shape(r.output_shape), r.volume)
        )
    return branches


class _Scale:
    """Linear when the values span at most 12x, else 1 + log2 (stated by ``word``)."""

    def __init__(self, values: list[int], target: float) -> None:
        values = [v for v in values if v > 0] or [1]
        lo, hi = min(values), max(values)
        self.log = hi > 12 * lo
        top = self._raw(hi)
        self.factor = target / top if top else 1.0

    def _raw(self, v: int) -> float:
        return 1 + math.log2(v) if self.log else float(v)

    def __call__(self, v: int) -> float:
        return max(self._raw(max(v, 1)) * self.factor, 0.08)

    @property
    def word(self) -> str:
        return "log scale (1 + log2)" if self.log else "linear"


def _cuboid(
    ax: Any, x: float, y: float, h: float, t: float, s: float, colour: str, gid: str
) -> Any:
    """Front face at ``x`` (thickness ``t``, height ``h``, centred on ``y``), slant ``s``."""
    from matplotlib.patches import Polygon

    y0, y1 = y - h / 2, y + h / 2
    dx, dy = s * 0.7, s * 0.5
    front = Polygon([(x, y0), (x + t, y0), (x + t, y1), (x, y1)], closed=True)
    top = Polygon([(x, y1), (x + t, y1), (x + t + dx, y1 + dy), (x + dx, y1 + dy)], closed=True)
    side = Polygon(
        [(x + t, y0), (x + t + dx, y0 + dy), (x + t + dx, y1 + dy), (x + t, y1)], closed=True
    )
    from matplotlib.collections import PatchCollection

    faces = PatchCollection(
        [front, top, side],
        facecolors=[colour, _shade(colour, 1.25), _shade(colour, 0.8)],
        edgecolors="#333333",
        linewidths=0.6,
    )
    faces.set_gid(gid)
    ax.add_collection(faces)
    return faces


def _shade(colour: str, f: float) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return tuple(min(1.0, c * f) for c in to_rgb(colour))  # type: ignore[return-value]


def _scales(boxes: list[Box]) -> tuple[_Scale, _Scale, _Scale, _Scale]:
    spatial = [b for b in boxes if len(b.shape) == 3]
    flat = [b for b in boxes if len(b.shape) != 3]
    return (
        _Scale([b.shape[1] for b in spatial] or [1], 4.0),
        _Scale([b.shape[0] for b in spatial] or [1], 1.6),
        _Scale([b.shape[2] for b in spatial] or [1], 1.6),
        _Scale([math.prod(b.shape) for b in flat] or [1], 4.0),
    )


def _row(ax: Any, boxes: list[Box], y: float, scales: tuple[_Scale, ...]) -> float:
    """Draw ``boxes`` left to right centred on height ``y``; returns the x reached."""
    hs, ds, ws, fs = scales
    x = 0.0
    for i, b in enumerate(boxes):
        colour = _COLOURS.get(b.kind, "#9c755f")
        if len(b.shape) == 3:
            c, h, w = b.shape
            height, thick, slant = hs(h), ds(c), ws(w)
        else:
            height, thick, slant = fs(math.prod(b.shape)), 0.18, 0.0
        _cuboid(ax, x, y, height, thick, slant, colour, f"box-{b.path}")
        centre = x + thick / 2
        ax.text(
            centre,
            y + 2.75,
            b.path.rpartition(".")[2] if y else b.path,
            ha="center",
            va="bottom",
            fontsize=7,
            rotation=30,
            gid=f"name-{b.path}",
        )
        ax.text(
            centre,
            y - 2.3 - (i % 2) * 0.35,
            b.volume,
            ha="center",
            va="top",
            fontsize=7,
            gid=f"volume-{b.path}",
        )
        x += thick + slant * 0.7 + 0.55
    return x


def _scale_words(scales: tuple[_Scale, ...], bars: bool) -> str:
    hs, ds, ws, fs = scales
    words = f"height H: {hs.word}; thickness D: {ds.word}; slant W: {ws.word}"
    return words + (f"; bars: features, {fs.word}" if bars else "")


def arch_figure(boxes: list[Box], title: str) -> Any:
    """The boxes left to right.  Each box's faces are one collection whose ``gid`` is
    ``box-<path>`` (so SVG output has one ``<g id="box-...">`` per box), its labels the name
    and the volume."""
    from cnnlab.viz._figure import new_figure

    if not boxes:
        raise CnnlabError("nothing to draw: the network has no layers the analysis types")
    scales = _scales(boxes)
    fig = new_figure(min(40.0, max(6.0, 1.15 * len(boxes) + 1)), 4.6)
    ax = fig.add_axes((0.01, 0.02, 0.98, 0.8))
    x = _row(ax, boxes, 0.0, scales)
    ax.set_xlim(-0.3, x)
    ax.set_ylim(-3.2, 3.6)
    ax.set_axis_off()
    fig.suptitle(title, fontsize=10, y=0.98)
    bars = any(len(b.shape) != 3 for b in boxes)
    fig.text(0.5, 0.88, _scale_words(scales, bars), ha="center", fontsize=7, color="#555555")
    return fig


def block_figure(branches: dict[str, list[Box]], title: str) -> Any:
    """A block's branches (:func:`block_boxes`), one row each, top to bottom, with the
    branch's name at the left; boxes as in :func:`arch_figure`."""
    from cnnlab.viz._figure import new_figure

    every = [b for bs in branches.values() for b in bs]
    if not every:
        raise CnnlabError("nothing to draw: the block has no typed layers")
    scales = _scales(every)
    longest = max(len(bs) for bs in branches.values())
    n = len(branches)
    fig = new_figure(max(6.0, 1.3 * longest + 2.5), 2.3 * n + 1.0)
    ax = fig.add_axes((0.16, 0.02, 0.82, 0.9 - 0.5 / fig.get_figheight()))
    reach = 1.0
    for i, (name, bs) in enumerate(branches.items()):
        y = -7.0 * i
        reach = max(reach, _row(ax, bs, y, scales))
        ax.text(-0.5, y, name, ha="right", va="center", fontsize=8, weight="bold")
    ax.set_xlim(-0.3, reach)
    ax.set_ylim(-7.0 * (n - 1) - 3.2, 3.8)
    ax.set_axis_off()
    fig.suptitle(title + ": branches, each read from the block's input", fontsize=10)
    fig.text(
        0.5,
        1 - 0.45 / fig.get_figheight(),
        _scale_words(scales, False),
        ha="center",
        fontsize=7,
        color="#555555",
    )
    return fig
