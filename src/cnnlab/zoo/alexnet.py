"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, section 3 and Fig. 2) and torchvision's variant.

``alexnet`` is the paper's two-tower network at 227x227x3 (the paper says 224, but
(224 - 11)/4 + 1 = 54.25; 227 gives the paper's 55x55): conv2, conv4 and conv5 are grouped
convolutions (``groups=2``: each GPU's half of the kernels sees only that GPU's maps), conv3
and the fully connected layers see both towers; ReLU after every layer, local response
normalisation (k=2, n=5, alpha=1e-4, beta=0.75) after the first two, overlapping 3x3/2 max
pooling, dropout 0.5 on fc6 and fc7.  ``groups=1`` merges the towers (62,378,344 parameters).

Deviation, on purpose: the paper normalises before pooling (conv1 -> LRN -> pool); the lecture's
table and Caffe's reference "CaffeNet" pool first (conv1 -> pool1 -> norm1), which is the
default here.  ``norm_before_pool=True`` gives the paper's order (same parameters and
conv/linear MACs; the LRN then works on 55x55 instead of 27x27 maps).

``alexnet_onetower`` is torchvision's ``alexnet``: the single-GPU network of Krizhevsky's
"One weird trick" (2014): 64/192/384/256/256 kernels, conv1 padded by 2, no LRN, no groups, a
6x6 adaptive average pool before the classifier, and dropout on the inputs of fc6 and fc7.

Both are written in the compact notation (:func:`alexnet_text`), so the width of fc6 follows
from the input size (the notation's inference, with :mod:`cnnlab.geometry`, at build time); an
input too small for the network fails there, naming the layer where it vanishes.
"""

from __future__ import annotations

from cnnlab.errors import CnnlabError
from cnnlab.notation import SpecNet
from cnnlab.zoo._common import build, check_choice, checked_input
from cnnlab.zoo._registry import REGISTRY

__all__ = ["AlexNet", "alexnet", "alexnet_text"]

PAPER = "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs (NIPS)"
PAPER_ONETOWER = "Krizhevsky 2014, One Weird Trick for Parallelizing CNNs (arXiv:1404.5997)"

# name -> kernels, size, stride, padding, groups (the paper's two towers) per conv layer.
_CONVS = {
    "paper": (
        ("conv1", 96, 11, 4, 0, 1),
        ("conv2", 256, 5, 1, 2, 2),
        ("conv3", 384, 3, 1, 1, 1),
        ("conv4", 384, 3, 1, 1, 2),
        ("conv5", 256, 3, 1, 1, 2),
    ),
    "onetower": (
        ("conv1", 64, 11, 4, 2, 1),
        ("conv2", 192, 5, 1, 2, 1),
        ("conv3", 384, 3, 1, 1, 1),
        ("conv4", 256, 3, 1, 1, 1),
        ("conv5", 256, 3, 1, 1, 1),
    ),
}
_POOLED = {"conv1": "1", "conv2": "2", "conv5": "5"}  # conv -> index of the pool after it
_NORMED = ("conv1", "conv2")
_NATIVE = {"paper": (227, 227), "onetower": (224, 224)}
# The classifier: dropout on the outputs of fc6 and fc7 in the paper (section 4.2, Caffe), on
# their inputs in torchvision's.
_HEAD = {
    "paper": "fc-4096(name=fc6)-relu(name=relu6)-dropout(name=drop6)-"
    "fc-4096(name=fc7)-relu(name=relu7)-dropout(name=drop7)",
    "onetower": "dropout(name=drop6)-fc-4096(name=fc6)-relu(name=relu6)-"
    "dropout(name=drop7)-fc-4096(name=fc7)-relu(name=relu7)",
}


class AlexNet(SpecNet):
    """AlexNet as a plain ``nn.Sequential`` with the paper's layer names (conv1 ... fc8)."""


def alexnet_text(
    variant: str = "paper",
    groups: int | None = None,
    norm_before_pool: bool = False,
    num_classes: int = 1000,
) -> str:
    """AlexNet in the compact notation with the paper's module names (``conv1``, ``relu1``,
    ``pool1``, ``norm1`` ... ``fc8``): the text :func:`alexnet` builds.  The paper's network
    (``variant="paper"``) begins ``conv11/4-96(pad=0,name=conv1)-relu(name=relu1)-
    maxpool3/2(name=pool1)-lrn(name=norm1)-conv5-256(groups=2,name=conv2)-...``."""
    check_choice("alexnet", "variant", variant, _CONVS)
    name = "alexnet" if variant == "paper" else "alexnet_onetower"
    if groups is None:
        groups = 2 if variant == "paper" else 1
    check_choice(name, "groups", groups, (1, 2) if variant == "paper" else (1,))
    if norm_before_pool and variant != "paper":
        raise CnnlabError(f"{name} has no normalisation layers: norm_before_pool does not apply")
    layers = []
    for conv, out, k, s, p, g in _CONVS[variant]:
        i = conv[-1]
        options = [f"pad={p}"] if p != (k - 1) // 2 else []  # else the notation's "same"
        options += [f"groups={min(g, groups)}"] if min(g, groups) > 1 else []
        stride = f"/{s}" if s > 1 else ""
        layers += [f"conv{k}{stride}-{out}({','.join([*options, f'name={conv}'])})",
                   f"relu(name=relu{i})"]  # fmt: skip
        # The paper's LRN (section 3.3): k=2, n=5, alpha=1e-4, beta=0.75, the notation's lrn.
        norm = [f"lrn(name=norm{i})"] if variant == "paper" and conv in _NORMED else []
        pool = [f"maxpool3/2(name=pool{_POOLED[conv]})"] if conv in _POOLED else []
        layers += norm + pool if norm_before_pool else pool + norm
    if variant == "onetower":
        layers.append("adaptavg6(name=avgpool)")
    # fc6 reads 256*6*6 = 9,216 at the native input; its width follows the input size.
    layers += ["flatten", _HEAD[variant], f"fc-{num_classes}(name=fc8)"]
    return "-".join(layers)


def alexnet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    variant: str = "paper",
    groups: int | None = None,
    norm_before_pool: bool = False,
) -> AlexNet:
    """Build AlexNet; ``variant="paper"`` (227x227, two towers) or ``"onetower"``
    (torchvision's, 224x224).  ``groups`` and ``norm_before_pool`` apply to the paper's
    network only (see the module docstring)."""
    check_choice("alexnet", "variant", variant, _CONVS)
    name = "alexnet" if variant == "paper" else "alexnet_onetower"
    hw = checked_input(name, num_classes, in_channels, input_size, _NATIVE[variant])
    text = alexnet_text(variant, groups, norm_before_pool, num_classes)
    return build(name, text, in_channels=in_channels, hw=hw, native=_NATIVE[variant],
                 into=AlexNet)  # type: ignore[return-value]  # fmt: skip


REGISTRY.register(
    "alexnet",
    paper=PAPER,
    input_size=(3, 227, 227),
    num_classes=1000,
    params=60_965_224,
    macs=724_406_816,
    # Krizhevsky et al. Table 2; the lecture's "18.2% -> 15.4%" is 1 CNN -> 7 CNNs on val.
    top5="16.4% (ILSVRC-2012 test, 5 CNNs; 1 CNN: 18.2% val; paper Table 2)",
    summary="the original two-tower AlexNet: grouped conv2/4/5, LRN, overlapping pooling, dropout",
)(alexnet)

REGISTRY.register(
    "alexnet_onetower",
    paper=PAPER_ONETOWER,
    input_size=(3, 224, 224),
    num_classes=1000,
    params=61_100_840,
    macs=714_188_480,
    top5="20.9% (ImageNet val, 1 crop, torchvision's weights: acc@5 79.066)",
    summary="torchvision's single-GPU AlexNet: 64/192/384/256/256 kernels, no LRN, adaptive "
    "6x6 pool",
    options={"variant": "onetower"},
)(alexnet)
