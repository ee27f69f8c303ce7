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

The width of fc6 follows from the input size (computed with :mod:`cnnlab.geometry` at build
time); an input too small for the network fails there, naming the layer where it vanishes.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import LocalResponseNorm
from cnnlab.zoo._common import check_choice, checked_input, trace
from cnnlab.zoo._registry import REGISTRY

__all__ = ["AlexNet", "alexnet"]

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


class AlexNet(nn.Sequential):
    """AlexNet as a plain ``nn.Sequential`` with the paper's layer names (conv1 ... fc8)."""


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
    native = (227, 227) if variant == "paper" else (224, 224)
    h, w = checked_input(name, num_classes, in_channels, input_size, native)
    if groups is None:
        groups = 2 if variant == "paper" else 1
    check_choice(name, "groups", groups, (1, 2) if variant == "paper" else (1,))
    if norm_before_pool and variant != "paper":
        raise CnnlabError(f"{name} has no normalisation layers: norm_before_pool does not apply")

    layers: list[tuple[str, nn.Module]] = []
    c = in_channels
    for conv, out, k, s, p, g in _CONVS[variant]:
        i = conv[-1]
        conv_layer = nn.Conv2d(c, out, k, s, p, groups=min(g, groups))
        layers += [(conv, conv_layer), (f"relu{i}", nn.ReLU())]
        c = out
        # The paper's LRN (section 3.3): k=2, n=5, alpha=1e-4, beta=0.75, the layer's defaults.
        norm = [(f"norm{i}", LocalResponseNorm())]
        if variant != "paper" or conv not in _NORMED:
            norm = []
        pool = [(f"pool{_POOLED[conv]}", nn.MaxPool2d(3, 2))] if conv in _POOLED else []
        layers += norm + pool if norm_before_pool else pool + norm
    if variant == "onetower":
        layers.append(("avgpool", nn.AdaptiveAvgPool2d((6, 6))))
    oh, ow = trace(name, layers, (h, w), native)
    features = c * oh * ow  # 256*6*6 = 9,216 at the native input

    if variant == "paper":  # dropout on the outputs of fc6 and fc7 (section 4.2, Caffe)
        head = [
            ("fc6", nn.Linear(features, 4096)),
            ("relu6", nn.ReLU()),
            ("drop6", nn.Dropout(0.5)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU()),
            ("drop7", nn.Dropout(0.5)),
        ]
    else:  # torchvision: dropout on the inputs of fc6 and fc7
        head = [
            ("drop6", nn.Dropout(0.5)),
            ("fc6", nn.Linear(features, 4096)),
            ("relu6", nn.ReLU()),
            ("drop7", nn.Dropout(0.5)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU()),
        ]
    layers += [("flatten", nn.Flatten()), *head, ("fc8", nn.Linear(4096, num_classes))]
    return AlexNet(OrderedDict(layers))


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
