"""The recipe's dropout and whitened first layer, applied to a built model.

The papers' initialisations (:func:`apply_init`, :data:`INITS`) live with the layers, in
:mod:`cnnlab.layers.init`, where the zoo and the notation use them too; they are re-exported
here for the training code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.geometry import output_size
from cnnlab.layers.init import INITS, apply_init

__all__ = ["INITS", "apply_init", "set_dropout", "whiten_first_conv"]


def set_dropout(model: nn.Module, p: float | None, name: str = "the model") -> int:
    """Set the probability of every dropout layer of ``model`` to ``p`` (None: leave them);
    returns how many there are.  Raises :class:`CnnlabError` when ``p`` is given and the
    model has no dropout layer (the recipe does not fit the model)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if p is None:
        return len(layers)
    if not layers:
        raise CnnlabError(
            f"dropout={p}: {name} has no dropout layer; valid: dropout=none (or a model with "
            "dropout)"
        )
    for m in layers:
        m.p = float(p)
    return len(layers)


def whiten_first_conv(
    model: nn.Module,
    train: Any,
    *,
    frozen: bool = False,
    values: bool = True,
    images: int = 10_000,
    eps: float = 5e-4,
) -> nn.Conv2d:
    """Initialise the first convolution of ``model`` as a whitening of the image patches it
    sees (Coates & Ng 2011; Page 2018 and Jordan 2024 for fast CIFAR-10 training).

    Its input patches are taken from the first ``images`` images of the split ``train``
    (fewer where they would give more than 2M patches; normalised as training normalises them,
    zero-padded as the layer pads), centred, and their
    covariance's eigenvectors ``v`` with eigenvalues ``l`` give the filters ``v / sqrt(l + eps)``
    and their negatives (a ReLU after keeps both signs of each direction), the directions of
    most variance first, as many as the layer has output channels (any beyond twice the patch
    size keep their initialisation); biases are set to 0.  ``frozen``: its weights are then
    not trained (their ``requires_grad`` is False; the bias still is).  ``values=False``:
    the weights come from elsewhere (a checkpoint, a weights file) and are left as they are;
    only ``frozen`` applies.  Returns the layer;
    :class:`CnnlabError` when the model has no ungrouped convolution over the image channels.
    """
    channels = train.image_shape[0]
    conv = next(
        (
            m
            for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.in_channels == channels and m.groups == 1
        ),
        None,
    )
    if conv is None:
        raise CnnlabError(
            f"whiten: the model has no convolution over the {channels}-channel images; "
            "valid: whiten=none, or a model with a Conv2d over the images"
        )
    if isinstance(conv.padding, str):
        raise CnnlabError(
            f"whiten: the first convolution pads {conv.padding!r}, which cnnlab cannot "
            "unfold into patches; valid: whiten=none, or padding given in pixels"
        )
    weight = conv.weight
    if frozen:
        weight.requires_grad_(False)
    if not values:
        return conv
    with torch.no_grad():
        eigenvalues, vectors = torch.linalg.eigh(_patch_covariance(conv, train, images))
        order = eigenvalues.argsort(descending=True)
        filters = (vectors[:, order] / (eigenvalues[order] + eps).sqrt()).T
        filters = torch.stack([filters, -filters], dim=1).flatten(0, 1)  # v1, -v1, v2, ...
        n = min(conv.out_channels, len(filters))
        weight[:n] = filters[:n].view(n, *weight.shape[1:]).to(weight.dtype)
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


_MAX_PATCHES = 2_000_000  # 10,000 Fashion-MNIST images under a 4x4 stride-2 conv: 1.96M
_CHUNK_VALUES = 8_000_000  # float64 values of patches held at once (64 MB)


def _patch_covariance(conv: nn.Conv2d, train: Any, images: int) -> torch.Tensor:
    """float64 covariance of ``conv``'s input patches over the first images of ``train``
    (normalised as training normalises them), accumulated a chunk of images at a time."""
    c, h, w = train.image_shape
    kh, kw = conv.kernel_size
    rows = [
        output_size(size, k, stride, pad, dil)
        for size, k, stride, pad, dil in zip(
            (h, w), (kh, kw), conv.stride, conv.padding, conv.dilation, strict=True
        )
    ]
    per_image, d = rows[0] * rows[1], c * kh * kw
    n = max(1, min(images, len(train), _MAX_PATCHES // max(1, per_image)))
    chunk = max(1, _CHUNK_VALUES // (per_image * d))
    mean = torch.tensor(train.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(train.std, dtype=torch.float64).view(1, -1, 1, 1)
    total, outer = torch.zeros(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(n, start + chunk))
        pixels = train.read(idx) if hasattr(train, "read") else train.images[idx]
        p = _patches((pixels.to(torch.float64) / 255.0 - mean) / std, conv)
        total += p.sum(dim=0)
        outer += p.T @ p
    count = n * per_image
    centre = total / count
    return outer / count - torch.outer(centre, centre)


def _patches(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv``'s input patches of the images ``x``, one row each ``(C, kh, kw)`` as its
    filters are laid out: the rows of ``F.unfold`` transposed.  Without dilation, a strided
    view of the padded images copied once (twice as fast as ``unfold`` and its transpose,
    the same values)."""
    d = x.shape[1] * conv.kernel_size[0] * conv.kernel_size[1]
    if conv.dilation != (1, 1):
        p = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        return p.transpose(1, 2).reshape(-1, d)
    (ph, pw), (kh, kw), (sh, sw) = conv.padding, conv.kernel_size, conv.stride
    view = F.pad(x, (pw, pw, ph, ph)).unfold(2, kh, sh).unfold(3, kw, sw)  # B,C,H',W',kh,kw
    return view.permute(0, 2, 3, 1, 4, 5).reshape(-1, d)
