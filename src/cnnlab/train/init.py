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
    model: nn.Module, train: Any, *, frozen: bool = False, images: int = 10_000, eps: float = 5e-4
) -> nn.Conv2d:
    """Initialise the first convolution of ``model`` as a whitening of the image patches it
    sees (Coates & Ng 2011; Page 2018 and Jordan 2024 for fast CIFAR-10 training).

    Its input patches are taken from the first ``images`` images of the split ``train``
    (normalised as training normalises them, zero-padded as the layer pads), centred, and their
    covariance's eigenvectors ``v`` with eigenvalues ``l`` give the filters ``v / sqrt(l + eps)``
    and their negatives (a ReLU after keeps both signs of each direction), the directions of
    most variance first, as many as the layer has output channels (any beyond twice the patch
    size keep their initialisation); biases are set to 0.  ``frozen``: its weights are then
    not trained (their ``requires_grad`` is False; the bias still is).  Returns the layer;
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
            f"whiten: the model has no convolution over the {channels}-channel images to "
            "whiten; valid: whiten=none (or a model that starts with a Conv2d)"
        )
    with torch.no_grad():
        x = train.images[:images].to(torch.float64) / 255.0
        mean = torch.tensor(train.mean, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(train.std, dtype=torch.float64).view(1, -1, 1, 1)
        x = (x - mean) / std
        patches = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        patches = patches - patches.mean(dim=0)
        eigenvalues, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        order = eigenvalues.argsort(descending=True)
        filters = (vectors[:, order] / (eigenvalues[order] + eps).sqrt()).T
        filters = torch.stack([filters, -filters], dim=1).flatten(0, 1)  # v1, -v1, v2, ...
        n = min(conv.out_channels, len(filters))
        weight = conv.weight
        weight[:n] = filters[:n].view(n, *weight.shape[1:]).to(weight.dtype)
        if conv.bias is not None:
            conv.bias.zero_()
    if frozen:
        weight.requires_grad_(False)
    return conv
