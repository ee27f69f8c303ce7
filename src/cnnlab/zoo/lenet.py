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
then gives more than 1x1 outputs and F6 takes all ``120*h*w`` of them.  Both networks are
written in the compact notation (:func:`lenet5_text`).
"""

from __future__ import annotations

import torch

from cnnlab.notation import SpecNet
from cnnlab.zoo._common import build, checked_input
from cnnlab.zoo._registry import REGISTRY

__all__ = ["LeNet5", "lenet5", "lenet5_text"]

PAPER = (
    "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document "
    "Recognition (Proc. IEEE 86(11))"
)
_FIELD = 32  # the paper's input field, in pixels


class LeNet5(SpecNet):
    """LeNet-5 as a plain ``nn.Sequential`` whose layer names are the paper's (c1 ... f6)."""


def _pad(h: int, w: int) -> list[str]:
    """The zero rows and columns that centre an ``h x w`` input in the paper's 32x32 field
    (one more below and right for an odd difference); none for an input that fills it."""
    dh, dw = max(0, _FIELD - h), max(0, _FIELD - w)
    if not dh and not dw:
        return []
    sides = f"top={dh // 2},bottom={dh - dh // 2},left={dw // 2},right={dw - dw // 2}"
    return [f"zeropad({sides},name=pad)"]


def lenet5_text(
    modern: bool = False, input_size: tuple[int, int] = (_FIELD, _FIELD), num_classes: int = 10
) -> str:
    """LeNet-5 in the compact notation with the paper's module names (``c1``, ``s2`` ...
    ``f6``, ``output``): the text :func:`lenet5` builds for an ``input_size`` (H, W) input.

    The paper's (``modern=False``) is ``conv5-6(pad=0,name=c1)-stanh(name=act1)-
    subsample(name=s2)-stanh(name=act2)-conv5-16(pad=0,table=lenet5,name=c3)-...``: the
    squashing function after every layer, S2 and S4 included."""
    act = "relu" if modern else "stanh"

    def pool(n: int) -> str:
        if modern:
            return f"maxpool(name=s{n})"
        return f"subsample(name=s{n})-stanh(name=act{n})"  # the paper squashes S2/S4

    table = "" if modern else "table=lenet5,"
    return "-".join(
        [
            *_pad(*input_size),
            f"conv5-6(pad=0,name=c1)-{act}(name=act1)-{pool(2)}",
            f"conv5-16(pad=0,{table}name=c3)-{act}(name=act3)-{pool(4)}",
            f"conv5-120(pad=0,name=c5)-{act}(name=act5)",
            # C5 gives 1x1 at 32x32; a larger input gives more, and F6 reads all 120*h*w.
            f"fc-84(name=f6)-{act}(name=act6)",
            f"fc-{num_classes}(name=output)",  # the paper: 10 fixed Euclidean RBF units
        ]
    )


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
    hw = checked_input(name, num_classes, in_channels, input_size, (_FIELD, _FIELD))
    text = lenet5_text(modern, hw, num_classes)
    drawn = torch.get_rng_state()
    model = build(name, text, in_channels=in_channels, hw=hw, native=(_FIELD, _FIELD),
                  into=LeNet5)  # fmt: skip
    # LeNet-5's seeded weights have always been drawn C3 first, then C1, C5, F6 and the
    # output (the subsamplings start at fixed values): draw them again in that order from the
    # same generator state, so a seed gives the weights it always gave.
    # (On the meta device no values were drawn: there is nothing to draw again.)
    if not model.c1.weight.is_meta:
        torch.set_rng_state(drawn)
        for layer in ("c3", "c1", "c5", "f6", "output"):
            getattr(model, layer).reset_parameters()
    return model  # type: ignore[return-value]


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
