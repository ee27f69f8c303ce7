"""Activation maps: what each chosen layer computes for one input, as a grid per layer titled
with the layer's name and its W x H x D volume from the analysis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError

__all__ = ["LayerMaps", "activation_figure", "activation_maps", "default_layers"]


@dataclass(frozen=True)
class LayerMaps:
    """One layer's maps for one input: ``maps`` float (D, H, W) as the layer output them,
    ``volume`` the analysis's W x H x D text."""

    name: str
    volume: str
    maps: np.ndarray


def default_layers(model: Any) -> list[str]:
    """Every 2-D convolution and pooling layer, in definition order."""
    from torch import nn

    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    found = [n for n, m in model.named_modules() if n and isinstance(m, kinds)]
    if not found:  # a network of other layers: its leaf modules with spatial outputs
        found = [n for n, m in model.named_modules() if n and not any(m.children())]
    return found


def activation_maps(
    model: Any, image: Any, layers: list[str] | None = None, *, analysis: Any = None
) -> list[LayerMaps]:
    """Run ``model`` on one normalized input ``image`` (C, H, W) and return the maps of each
    layer in ``layers`` (module paths; default :func:`default_layers`).  Layers whose output
    is not a (1, D, H, W) volume are refused, naming them.  ``analysis`` (of the model at
    this input) gives the volumes; it is computed when not given."""
    from cnnlab.analysis import analyze
    from cnnlab.viz.hooks import record_outputs

    if image.dim() != 3:
        raise CnnlabError(f"activation_maps needs one image C x H x W, got {tuple(image.shape)}")
    names = list(layers) if layers else default_layers(model)
    if analysis is None:
        analysis = analyze(model, tuple(image.shape))
    outputs = record_outputs(model, image[None].float(), names)
    volumes = {r.path: r.volume for r in analysis.rows if r.call == 1}
    result = []
    for name in names:
        out = outputs.get(name)
        if out is None:
            raise CnnlabError(f"--layers {name}: the module was not called in the forward")
        if out.dim() != 4:
            raise CnnlabError(
                f"--layers {name}: its output has shape {tuple(out.shape)}, not a volume of "
                "maps (N x D x H x W); choose convolution or pooling layers"
            )
        result.append(LayerMaps(name, volumes.get(name, "?"), out[0].float().numpy()))
    return result


def activation_figure(layers: list[LayerMaps], title: str, *, max_maps: int = 64) -> Any:
    """One section per layer (``fig.subfigs[i + 1]``, after the title's band; its axes show
    maps 0, 1, ... in order),
    each map scaled to its own min..max (stated on the figure)."""
    from cnnlab.viz._figure import new_figure

    cols = [min(16, int(np.ceil(np.sqrt(min(len(lm.maps), max_maps) * 2)))) for lm in layers]
    rows = [
        int(np.ceil(min(len(lm.maps), max_maps) / c)) for lm, c in zip(layers, cols, strict=True)
    ]
    cell = 0.55
    width = max(4.0, max(cols) * cell + 0.3)
    heights = [r * cell + 0.45 for r in rows]
    fig = new_figure(width, sum(heights) + 0.7)
    # a header band for the title, then one section per layer
    header, *subs = fig.subfigures(len(layers) + 1, 1, height_ratios=[0.7, *heights])
    header.suptitle(title + "\neach map scaled to its own min..max", fontsize=9, y=0.9)
    for sub, lm, c, r in zip(subs, layers, cols, rows, strict=True):
        n = min(len(lm.maps), max_maps)
        more = f" (first {n} of {len(lm.maps)})" if n < len(lm.maps) else ""
        sub.suptitle(f"{lm.name}: {lm.volume}{more}", fontsize=8)
        axes = sub.subplots(r, c, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= n:
                ax.set_axis_off()
                continue
            m = lm.maps[i]
            lo = float(m.min())
            hi = max(float(m.max()), lo + 1e-12)  # a constant map is drawn flat, not as NaN
            ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
    return fig
