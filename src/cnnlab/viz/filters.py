"""Learned filters as a grid of tiles (the lecture's 32 learned 5x5 filters; Krizhevsky et
al. 2012, Fig. 3, for an RGB first layer).

Each tile maps weights to grey levels (or RGB colours) linearly with 0 at mid grey:
``pixel = 0.5 + 0.5 * w / m``, where ``m`` is the largest ``|w|`` of the filter
(``normalize="filter"``) or of the whole layer (``"shared"``, which keeps the filters'
strengths comparable).  The normalization is written on the figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError

__all__ = ["NORMALIZATIONS", "FilterTiles", "filter_figure", "filter_tiles"]

NORMALIZATIONS = ("filter", "shared")


@dataclass(frozen=True)
class FilterTiles:
    """Tiles in grid order.  ``tiles``: float (N, kh, kw) grey or (N, kh, kw, 3) RGB in
    [0, 1]; ``filters[i]``/``channels[i]``: the output filter and input channel of tile i
    (channel None for an RGB tile, which shows all three; -1 for a blank cell);
    ``columns`` of the grid."""

    tiles: np.ndarray
    filters: tuple[int, ...]
    channels: tuple[int | None, ...]
    columns: int
    normalize: str
    rgb: bool

    @property
    def note(self) -> str:
        scale = (
            "each filter by its own max |w|"
            if self.normalize == "filter"
            else ("one scale for the layer (its max |w|)")
        )
        return f"0 = mid grey; {scale}"


def filter_tiles(
    weight: Any,
    *,
    normalize: str = "filter",
    max_filters: int = 64,
    max_tiles: int = 256,
    max_channels: int = 8,
    mask: Any = None,
) -> FilterTiles:
    """The tiles of a convolution's weight (K, C, kh, kw).

    C = 3 gives one RGB tile per filter (``columns`` about sqrt(K)).  Otherwise each filter
    is one row of tiles, one per input channel; with more than ``max_channels`` channels a
    row shows that filter's strongest channels (largest L2 norm of ``w[k, c]``), strongest
    first.  At most ``max_filters`` filters are shown, the first ones, and for a deeper layer
    at most ``max_tiles`` tiles in all (so at most ``max_tiles // channels per row`` filters)."""
    import torch

    if normalize not in NORMALIZATIONS:
        raise CnnlabError(f"normalize {normalize!r}: expected one of {', '.join(NORMALIZATIONS)}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise CnnlabError("filter_tiles needs a 2-D convolution's weight K x C x kh x kw")
    c = weight.shape[1]
    if c != 3 and c != 1:
        seen_max = c if mask is None else int(torch.as_tensor(mask).sum(dim=1).max())
        max_filters = min(max_filters, max(1, max_tiles // min(seen_max, max_channels)))
    w = weight.detach().to("cpu", torch.float64).numpy()[:max_filters]
    k = w.shape[0]
    if normalize == "shared":  # the whole layer's max |w|, shown filters or not
        scale = np.full(k, float(weight.detach().abs().max()))
    else:
        scale = np.abs(w).reshape(k, -1).max(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    shown = 0.5 + 0.5 * w / scale[:, None, None, None]  # (K, C, kh, kw) in [0, 1]
    if c == 3:
        tiles = np.transpose(shown, (0, 2, 3, 1))
        columns = int(np.ceil(np.sqrt(k)))
        return FilterTiles(tiles, tuple(range(k)), (None,) * k, columns, normalize, True)
    if c == 1:
        columns = int(np.ceil(np.sqrt(k)))
        return FilterTiles(shown[:, 0], tuple(range(k)), (0,) * k, columns, normalize, False)
    seen = np.ones((k, c), dtype=bool) if mask is None else np.asarray(mask)[:k]
    per_row = min(int(seen.sum(axis=1).max()), max_channels)
    tiles, filters, channels = [], [], []
    for f in range(k):
        norms = np.sqrt((w[f] ** 2).sum(axis=(1, 2)))
        connected = [int(ch) for ch in np.argsort(-norms, kind="stable") if seen[f, ch]]
        if len(connected) <= max_channels:
            connected.sort()  # all of them: in input order
        row = connected[:per_row]
        for ch in row:
            tiles.append(shown[f, ch])
            filters.append(f)
            channels.append(ch)
        for _ in range(per_row - len(row)):  # a filter seeing fewer maps: blank cells
            tiles.append(np.full(shown.shape[2:], np.nan))
            filters.append(f)
            channels.append(-1)
    return FilterTiles(np.stack(tiles), tuple(filters), tuple(channels), per_row, normalize, False)


def filter_figure(tiles: FilterTiles, title: str) -> Any:
    """The tiles as a matplotlib figure, in one Axes (``fig.axes[0]``, a
    :class:`~cnnlab.viz._figure.TileGrid`): its images are the tiles in grid order (blank
    cells have none), each titled (its texts, in the same order) with its filter (and input
    channel), the normalization stated below."""
    from cnnlab.viz._figure import TileGrid, new_figure

    n, cols = len(tiles.tiles), tiles.columns
    rows = int(np.ceil(n / cols))
    cell = 0.62
    fig = new_figure(max(3.0, cols * cell + 0.4), rows * (cell + 0.12) + 0.9)
    height = fig.get_figheight()
    grid = TileGrid(fig, rows, cols, (0.02, 0.4 / height, 0.98, 1 - 0.6 / height))
    multi = _multi(tiles)
    colours = {} if tiles.rgb else {"cmap": "gray"}
    for i in range(n):
        if tiles.channels[i] == -1:
            continue
        label = f"{tiles.filters[i]}:{tiles.channels[i]}" if multi else f"{tiles.filters[i]}"
        grid.draw(i // cols, i % cols, tiles.tiles[i], label, vmin=0, vmax=1, **colours)
    fig.suptitle(title, fontsize=9)
    fig.text(
        0.5,
        0.08 / height,
        tiles.note + ("; tiles are filter:input channel" if multi else ""),
        ha="center",
        va="bottom",
        fontsize=7,
    )
    return fig


def _multi(tiles: FilterTiles) -> bool:
    return not tiles.rgb and any(ch != 0 for ch in tiles.channels)
