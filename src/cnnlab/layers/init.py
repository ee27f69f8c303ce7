"""Initialisation as the papers give it, applied to a built model.

* ``"he"``: He et al. 2015 ("Delving deep into rectifiers", the lecture's "Xavier/2"):
  convolution weights from N(0, 2/n) with n = k*k*out_channels (the backward-pass form used
  by the ResNet reference code and torchvision); linear layers from N(0, 0.01), as VGG's;
  biases 0.  For ResNet and for VGG retrained from scratch.
* ``"glorot"``: Glorot & Bengio 2010, uniform in +-sqrt(6 / (fan_in + fan_out)); biases 0.
* ``"lenet"``: LeCun et al. 1998, Appendix C: weights uniform in +-2.4/F_i, F_i the unit's
  fan-in (for LeNet's C3, only its connected maps count); biases 0.  The subsampling layers
  keep their own start as average pooling (the paper gives them no initialisation).
* ``"default"``: leave the builder's initialisation.

BatchNorm layers keep their builder's initialisation (weight 1, bias 0, and the zoo's
zero-initialised last BN of a residual block where asked for) under every choice.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers.lenet import ConnectionTableConv2d

__all__ = ["INITS", "apply_init"]

INITS = ("default", "he", "glorot", "lenet")


def apply_init(model: nn.Module, init: str, *, linear: bool = True) -> nn.Module:
    """Re-initialise ``model``'s convolutions (and, with ``linear``, its linear layers) in
    place (see the module doc); draws from torch's global generator (seed it first), one
    layer after the other in ``model.modules()`` order.  Layers with shape-only (meta)
    weights are skipped: they have no values, and drawing them would cost the time of a real
    initialisation's bookkeeping (a tenth of building ResNet-1202 on the meta device)."""
    if init not in INITS:
        raise CnnlabError(f"init {init!r}: expected one of {', '.join(INITS)}")
    if init == "default":
        return model
    with torch.no_grad():
        for m in model.modules():
            if (
                isinstance(m, nn.Conv2d | ConnectionTableConv2d)
                or (linear and isinstance(m, nn.Linear))
            ) and not m.weight.is_meta:  # a shape-only weight has no values to set
                _init_layer(m, init)
                if m.bias is not None:
                    m.bias.zero_()
    return model


def _init_layer(m: nn.Module, init: str) -> None:
    w = m.weight
    if isinstance(m, ConnectionTableConv2d):
        kh, kw = m.kernel_size
        fan_in = [len(row) * kh * kw for row in m.table for _ in row]  # per stored kernel
        if init == "lenet":
            bound = torch.tensor([2.4 / f for f in fan_in], dtype=w.dtype).view(-1, 1, 1)
            w.uniform_(-1.0, 1.0).mul_(bound)
        elif init == "he":
            w.normal_(0.0, math.sqrt(2.0 / (kh * kw * m.out_channels)))
        else:  # glorot: fan-out of an input map's kernel, over the maps it feeds
            fan_out = [kh * kw * sum(i in r for r in m.table) for r in m.table for i in r]
            bound = torch.tensor(
                [math.sqrt(6.0 / (a + b)) for a, b in zip(fan_in, fan_out, strict=True)],
                dtype=w.dtype,
            ).view(-1, 1, 1)
            w.uniform_(-1.0, 1.0).mul_(bound)
        return
    if init == "lenet":
        fan_in = w[0].numel()
        w.uniform_(-2.4 / fan_in, 2.4 / fan_in)
    elif init == "glorot":
        nn.init.xavier_uniform_(w)
    elif isinstance(m, nn.Linear):
        w.normal_(0.0, 0.01)
    else:
        nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
