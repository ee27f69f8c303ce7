"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, section II-B and Fig. 2).

``lenet5`` is the paper's network: C1 6@5x5, S2 trainable 2x2 subsampling, C3 16@5x5 with the
partial connection table (Table I), S4, C5 120@5x5, F6 84, each followed by the squashing
function ``1.7159*tanh(2a/3)``.  Deviation: the paper's output layer is 10 Euclidean RBF units
with fixed, hand-chosen parameters; here it is a trainable linear layer (84*10 + 10 = 850
parameters), trained with cross-entropy.  ``lenet5_modern`` is the variant most courses
teach: full C3, ReLU, 2x2 max pooling and the same linear output.

Input sizes: the paper's input is 32x32, "significantly larger than the largest character"
(MNIST digits were centred in a 28x28 field, which was itself placed in the 32x32 input).  A
smaller input (Fashion-MNIST's 28x28) is centred the same way: a ``pad`` layer adds zero
rows and columns to reach 32x32 (2 on each side for 28), so every later layer and the
parameter count are the paper's.  Zero is the background only if the data are normalised
so that it is (the paper used -0.1 for the background).  A larger input keeps its size; C5
then gives more than 1x1 outputs and F6 takes all ``120*h*w`` of them.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab.layers import LENET5_C3_TABLE, ConnectionTableConv2d, ScaledTanh, Subsampling
from cnnlab.zoo._common import checked_input, trace
from cnnlab.zoo._registry import REGISTRY

__all__ = ["LeNet5", "lenet5"]

PAPER = (
    "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document "
    "Recognition (Proc. IEEE 86(11))"
)
_FIELD = 32  # the paper's input field, in pixels


class LeNet5(nn.Sequential):
    """LeNet-5 as a plain ``nn.Sequential`` whose layer names are the paper's (c1 ... f6)."""


def lenet5(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] | None = None,
    modern: bool = False,
) -> LeNet5:
    """Build LeNet-5 for ``in_channels x H x W`` inputs (default 1x32x32) and ``num_classes``.

    ``modern=False``: the paper's network (60,850 parameters with the linear output);
    ``modern=True``: full C3, ReLU, max pooling (61,706).  See the module docstring for how
    inputs other than 32x32 are handled.
    """
    name = "lenet5_modern" if modern else "lenet5"
    h, w = checked_input(name, num_classes, in_channels, input_size, (_FIELD, _FIELD))

    def act() -> nn.Module:
        return nn.ReLU() if modern else ScaledTanh()

    def pool(n: int, c: int) -> list[tuple[str, nn.Module]]:
        if modern:
            return [(f"s{n}", nn.MaxPool2d(2))]
        return [(f"s{n}", Subsampling(c)), (f"act{n}", ScaledTanh())]  # the paper squashes S2/S4

    c3 = nn.Conv2d(6, 16, 5) if modern else ConnectionTableConv2d(6, LENET5_C3_TABLE, 5)
    layers: list[tuple[str, nn.Module]] = []
    if h < _FIELD or w < _FIELD:
        # Centre the input in the paper's 32x32 field (ZeroPad2d takes left, right, top, bottom).
        dh, dw = max(0, _FIELD - h), max(0, _FIELD - w)
        layers.append(("pad", nn.ZeroPad2d((dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))))
    layers += [("c1", nn.Conv2d(in_channels, 6, 5)), ("act1", act()), *pool(2, 6)]
    layers += [("c3", c3), ("act3", act()), *pool(4, 16)]
    layers += [("c5", nn.Conv2d(16, 120, 5)), ("act5", act())]
    oh, ow = trace(name, layers, (h, w), (_FIELD, _FIELD))
    layers += [
        ("flatten", nn.Flatten()),
        ("f6", nn.Linear(120 * oh * ow, 84)),
        ("act6", act()),
        ("output", nn.Linear(84, num_classes)),  # the paper: 10 fixed Euclidean RBF units
    ]
    return LeNet5(OrderedDict(layers))


REGISTRY.register(
    "lenet5",
    paper=PAPER,
    input_size=(1, 32, 32),
    num_classes=10,
    params=60_850,
    macs=326_520,
    top5="MNIST error 0.95% (test, RBF output; 0.8% with distorted training data)",
    summary="LeNet-5 as published: partial C3, trainable subsampling, scaled tanh; linear "
    "output instead of the RBF units (60,000 parameters in C1..F6 + 850)",
)(lenet5)

REGISTRY.register(
    "lenet5_modern",
    paper=PAPER,
    input_size=(1, 32, 32),
    num_classes=10,
    params=61_706,
    macs=416_520,
    summary="LeNet-5 as usually taught today: full C3, ReLU, 2x2 max pooling, linear output",
    options={"modern": True},
)(lenet5)
