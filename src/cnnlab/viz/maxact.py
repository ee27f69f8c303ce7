"""Maximally activating patches (Zeiler & Fergus 2013, "Visualizing and understanding
convolutional networks", Fig. 2): for each channel of a layer, the dataset images whose patch
gives the channel's largest response, each cropped to the exact receptive field of the unit
that responded.

The search is one batched pass over the data: each batch's maps of the chosen channels are
reduced to each image's maximum (and where it is), and a running top-k over images is kept.
The receptive field comes from the analysis (:class:`~cnnlab.analysis.RField`: unit ``i``
sees input cells ``start + i*jump .. start + i*jump + size - 1`` along each axis); cells it
sees outside the image are the layer stack's zero padding, kept in a mask and drawn as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError

__all__ = [
    "Patch",
    "crop_field",
    "max_activations",
    "maxact_figure",
    "project_patches",
    "strongest_channels",
]

PAD_RGB = (255, 105, 180)  # padding cells in a patch: a colour no grey image has


@dataclass(frozen=True)
class Patch:
    """One top response: dataset ``index``, the activation ``value``, the ``unit`` (row, col)
    of the map, the receptive field ``rows``/``cols`` (first, last; input coordinates, may
    reach outside the image), ``pixels`` uint8 (C, h, w) of the field (0 where it is padding)
    and ``padding`` bool (h, w)."""

    index: int
    value: float
    unit: tuple[int, int]
    rows: tuple[int, int]
    cols: tuple[int, int]
    pixels: np.ndarray
    padding: np.ndarray


def _field(analysis: Any, layer: str) -> Any:
    try:
        row = analysis.row(layer)
    except KeyError:
        raise CnnlabError(f"--layer {layer!r}: not a layer of the analysis") from None
    f = row.field
    if f is None or f.jump is None or f.is_global or len(f.size) != 2:
        raise CnnlabError(
            f"--layer {layer}: its units have no 2-D receptive field of their own (they see the "
            "whole image, or it is not a map); choose a convolution or pooling layer"
        )
    return f


def crop_field(image: Any, field: Any, unit: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (C, h, w) unit ``(row, col)`` sees in ``image`` (uint8 C x H x W), with 0
    and ``True`` in the mask where the field lies outside the image (padding)."""
    img = np.asarray(image)
    c, height, width = img.shape
    (sh, sw), (jh, jw), (zh, zw) = field.size, field.jump, field.start
    top, left = zh + unit[0] * jh, zw + unit[1] * jw
    pixels = np.zeros((c, sh, sw), dtype=np.uint8)
    mask = np.ones((sh, sw), dtype=bool)
    r0, r1 = max(top, 0), min(top + sh, height)
    c0, c1 = max(left, 0), min(left + sw, width)
    if r0 < r1 and c0 < c1:
        pixels[:, r0 - top : r1 - top, c0 - left : c1 - left] = img[:, r0:r1, c0:c1]
        mask[r0 - top : r1 - top, c0 - left : c1 - left] = False
    return pixels, mask


def strongest_channels(model: Any, layer: str, count: int) -> list[int]:
    """The ``count`` output channels of a convolution with the largest kernel norm (the
    first ``count`` for a layer without a kernel)."""
    import torch

    from cnnlab.viz.source import conv_weight

    found = conv_weight(dict(model.named_modules()).get(layer))
    if found is None:  # not a convolution (a pooling layer): its first channels
        return list(range(count))
    norms = found[0].flatten(1).norm(dim=1)
    return [int(i) for i in torch.argsort(norms, descending=True, stable=True)[:count]]


def max_activations(
    model: Any,
    dataset: Any,
    layer: str,
    channels: list[int],
    *,
    mean: Any,
    std: Any,
    top: int = 9,
    batch_size: int = 500,
    analysis: Any = None,
) -> dict[int, list[Patch]]:
    """For each channel of ``layer``'s output, the ``top`` images of ``dataset`` (a
    :class:`~cnnlab.data.Dataset`) with the largest response anywhere in the map, strongest
    first, each with its receptive-field crop.  ``mean``/``std`` normalise as in training."""
    import torch

    from cnnlab.analysis import analyze
    from cnnlab.viz.hooks import hooked
    from cnnlab.viz.images import normalize

    if top < 1:
        raise CnnlabError(f"--top {top}: expected a whole number >= 1")
    if analysis is None:
        analysis = analyze(model, tuple(dataset.image_shape))
    field = _field(analysis, layer)
    n = len(dataset)
    chans = torch.tensor(channels, dtype=torch.int64)
    best_v = torch.full((len(channels), 0), float("-inf"))
    best_i = torch.zeros((len(channels), 0), dtype=torch.int64)
    best_p = torch.zeros((len(channels), 0), dtype=torch.int64)
    seen: dict[str, torch.Tensor] = {}
    width = None

    def keep(name: str, module: Any, args: Any, out: Any) -> None:
        seen["out"] = out[0] if isinstance(out, tuple | list) else out

    model.eval()
    with hooked(model, keep, [layer]), torch.no_grad():
        for start in range(0, n, batch_size):
            x = normalize(dataset.images[start : start + batch_size], mean, std)
            model(x)
            maps = seen.pop("out")  # (B, K, H, W)
            if maps.dim() != 4:
                raise CnnlabError(f"--layer {layer}: its output {tuple(maps.shape)} is not maps")
            k = maps.shape[1]
            if int(chans.max()) >= k:
                raise CnnlabError(f"--channel {int(chans.max())}: {layer} has {k} channels")
            width = maps.shape[3]
            flat = maps[:, chans].flatten(2).float()  # (B, k, H*W)
            v, pos = flat.max(dim=2)  # each image's strongest unit per channel
            idx = torch.arange(start, start + flat.shape[0]).expand(len(channels), -1)
            best_v = torch.cat([best_v, v.T], dim=1)
            best_i = torch.cat([best_i, idx], dim=1)
            best_p = torch.cat([best_p, pos.T], dim=1)
            # stable: equal responses keep dataset order
            order = torch.argsort(best_v, dim=1, descending=True, stable=True)[:, :top]
            best_v = best_v.gather(1, order)
            best_i = best_i.gather(1, order)
            best_p = best_p.gather(1, order)
    result = {}
    for row, ch in enumerate(channels):
        patches = []
        for v, i, p in zip(
            best_v[row].tolist(), best_i[row].tolist(), best_p[row].tolist(), strict=True
        ):
            unit = divmod(int(p), int(width))
            pixels, mask = crop_field(dataset.images[i].numpy(), field, unit)
            top_row = field.start[0] + unit[0] * field.jump[0]
            left = field.start[1] + unit[1] * field.jump[1]
            patches.append(
                Patch(
                    int(i),
                    float(v),
                    unit,
                    (top_row, top_row + field.size[0] - 1),
                    (left, left + field.size[1] - 1),
                    pixels,
                    mask,
                )
            )
        result[ch] = patches
    return result


def _rgb(p: Patch) -> np.ndarray:
    img = p.pixels
    rgb = np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img[:3]
    rgb = np.transpose(rgb, (1, 2, 0)).copy()
    rgb[p.padding] = PAD_RGB
    return rgb


def _projection_rgb(p: Any, mask: np.ndarray) -> np.ndarray:
    """A projection crop (C, h, w) as RGB in [0, 1]: 0 at mid grey, scaled by its max |g|
    (the deconvnet papers' display); padding in pink."""
    g = np.asarray(p, dtype=np.float64)
    m = np.abs(g).max() or 1.0
    shown = 0.5 + 0.5 * g / m
    rgb = np.repeat(shown, 3, axis=0) if shown.shape[0] == 1 else shown[:3]
    rgb = np.transpose(rgb, (1, 2, 0)).copy()
    rgb[mask] = np.asarray(PAD_RGB) / 255
    return rgb


def project_patches(
    model: Any,
    dataset: Any,
    layer: str,
    found: dict[int, list[Patch]],
    *,
    mean: Any,
    std: Any,
    method: str = "guided",
    field: Any = None,
    analysis: Any = None,
) -> dict[int, list[np.ndarray]]:
    """Each patch's projection to the pixels (:func:`~cnnlab.viz.attribution.unit_projection`
    of its unit), cropped to the same receptive field: float (C, h, w) per patch."""
    from cnnlab.viz.attribution import unit_projection
    from cnnlab.viz.images import normalize

    if field is None:
        from cnnlab.analysis import analyze

        field = _field(analysis or analyze(model, tuple(dataset.image_shape)), layer)
    out: dict[int, list[np.ndarray]] = {}
    for ch, patches in found.items():
        crops = []
        for p in patches:
            x = normalize(dataset.images[p.index : p.index + 1], mean, std)[0]
            g = unit_projection(model, x, layer, ch, p.unit, method).numpy()
            crops.append(_crop_float(g, field, p.unit))
        out[ch] = crops
    return out


def _crop_float(g: np.ndarray, field: Any, unit: tuple[int, int]) -> np.ndarray:
    c, height, width = g.shape
    (sh, sw), (jh, jw), (zh, zw) = field.size, field.jump, field.start
    top, left = zh + unit[0] * jh, zw + unit[1] * jw
    crop = np.zeros((c, sh, sw))
    r0, r1 = max(top, 0), min(top + sh, height)
    c0, c1 = max(left, 0), min(left + sw, width)
    if r0 < r1 and c0 < c1:
        crop[:, r0 - top : r1 - top, c0 - left : c1 - left] = g[:, r0:r1, c0:c1]
    return crop


def maxact_figure(
    found: dict[int, list[Patch]],
    layer: str,
    field_size: tuple[int, ...],
    title: str,
    projections: dict[int, list[np.ndarray]] | None = None,
    method: str = "",
) -> Any:
    """One row per channel: its patches, strongest first, each titled with its response,
    each followed by its projection when ``projections`` are given; padding in pink, as the
    figure says.  One Axes (``fig.axes[0]``, a :class:`~cnnlab.viz._figure.TileGrid`): its
    images are the pictures in row order."""
    from cnnlab.viz._figure import TileGrid, new_figure

    step = 2 if projections else 1
    rows = len(found)
    cols = max(len(p) for p in found.values()) * step
    cell = 0.75
    fig = new_figure(cols * cell + 1.0, rows * (cell + 0.2) + 0.9)
    height = fig.get_figheight()
    grid = TileGrid(fig, rows, cols, (0.1, 0.3 / height, 0.99, 1 - 0.55 / height), (0.1, 0.4))
    for r, (ch, patches) in enumerate(found.items()):
        if patches:
            grid.label_row(r, f"ch {ch}")
        for i, patch in enumerate(patches):
            grid.draw(r, i * step, _rgb(patch), f"{patch.value:.2f}")
            if projections:
                shown = _projection_rgb(projections[ch][i], patch.padding)
                grid.draw(r, i * step + 1, shown, method, fontsize=5)
    h, w = field_size
    more = f"; beside each, its {method} projection" if projections else ""
    fig.suptitle(
        f"{title}\n{layer}: top responses per channel, each cropped to the unit's {h}x{w} "
        f"receptive field (pink: padding){more}",
        fontsize=8,
    )
    return fig
