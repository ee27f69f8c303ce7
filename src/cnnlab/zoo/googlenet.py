"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going deeper with convolutions", Table 1,
Fig. 3 and section 5).

Table 1 written in the compact notation (:func:`googlenet_text`: each row of inception
widths ``inception(64,96,128,16,32,32)``, the rows below), with Table 1's module names:
conv1 7x7/2, pool1 3x3/2, norm1, conv2 (1x1 reduce to 64,
then 3x3 to 192), norm2, pool2, inception 3a-3b, pool3, 4a-4e, pool4, 5a-5b, average pooling,
dropout 40%, a linear layer.  Every convolution, inside the inception modules too, is
followed by ReLU and has a bias; there is no batch normalisation; the "5x5" branches are real
5x5 convolutions.  Parameters: 6,998,552 (the Caffe reference model's count).  Without the
auxiliary heads the model is the notation's ``SpecNet`` and formats back to that text.

Written down where the paper is silent or this code differs:
- the 3x3/2 max pools round up (``ceil_mode``, as Caffe does), which gives Table 1's sizes
  112 -> 56 -> 28 -> 14 -> 7 at the 224x224 input;
- the paper gives no LRN parameters; these are the Caffe reference model's (size 5,
  alpha 1e-4 divided by the size, beta 0.75, k 1): ``LocalResponseNorm(5, 2e-5, 0.75, 1.0)``;
- the final 7x7/1 average pool is a global average pool (``AdaptiveAvgPool2d(1)``): the same
  at 224x224, and other input sizes still work;
- ``aux_logits=True`` adds the two auxiliary classifiers of section 5 on 4a and 4d (5x5/3
  average pool, 1x1 conv with 128 filters, fc 1024, dropout 70%, linear): 13,378,280
  parameters.  Each head is notation text too, with torchvision's module names; an input
  too small for a head is reported with the smallest network input that feeds it.  In
  training mode the model then returns :class:`GoogLeNetOutputs` ``(logits, aux1, aux2)``;
  the paper adds their losses with weight :data:`AUX_LOSS_WEIGHT` = 0.3 and discards them at
  inference.  In eval mode it returns the logits tensor alone, as it always does without the
  heads.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from cnnlab import geometry
from cnnlab.notation import SpecNet, not_a_spec, parse_spec
from cnnlab.notation.spec import smallest_input
from cnnlab.zoo._common import build, checked_input, too_small
from cnnlab.zoo._registry import REGISTRY

__all__ = [
    "AUX_LOSS_WEIGHT",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "InceptionAux",
    "googlenet",
    "googlenet_text",
]

PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions (CVPR; arXiv:1409.4842)"
_NATIVE = (224, 224)
AUX_LOSS_WEIGHT = 0.3  # section 5: auxiliary losses are added with weight 0.3

# Table 1 from pool2 on: an inception module with
# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), or a 3x3/2 max pool (None).
TABLE1: tuple[tuple[str, tuple[int, int, int, int, int, int] | None], ...] = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("pool3", None),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("pool4", None),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)
_AUX_AFTER = {"inception4a": "aux1", "inception4d": "aux2"}


class GoogLeNetOutputs(NamedTuple):
    """What a GoogLeNet with auxiliary heads returns in training mode (each ``(N, classes)``)."""

    logits: torch.Tensor
    aux1: torch.Tensor  # the head on inception4a
    aux2: torch.Tensor  # the head on inception4d


def _aux_text(num_classes: int) -> str:
    """An auxiliary classifier of section 5 in the compact notation, with torchvision's
    module names (``aux1.conv``, ``aux1.fc1``...)."""
    return (
        "avgpool5/3(name=pool)-conv1-128(name=conv)-relu(name=relu_conv)-fc-1024(name=fc1)-"
        f"relu(name=relu_fc1)-dropout-0.7(name=dropout)-fc-{num_classes}(name=fc2)"
    )


class InceptionAux(SpecNet):
    """An auxiliary classifier of section 5: 5x5/3 average pool (14x14 -> 4x4), 1x1 conv with
    128 filters + ReLU, fc with 1024 units + ReLU, dropout 70%, linear to the classes.
    ``spatial`` is the (H, W) of its input (the fc's width depends on it)."""

    def __init__(self, in_channels: int, num_classes: int, spatial: tuple[int, int]):
        head = build("googlenet auxiliary classifier", _aux_text(num_classes),
                     in_channels=in_channels, hw=spatial, native=(14, 14))  # fmt: skip
        super().__init__(OrderedDict(head._modules))


class GoogLeNet(nn.Module):
    """GoogLeNet with Table 1's layer names as direct children, in forward order; the
    auxiliary heads (``aux1``, ``aux2``), when present, are the last children."""

    def __init__(self, layers: list[tuple[str, nn.Module]], aux: dict[str, nn.Module]):
        super().__init__()
        for name, module in layers:
            self.add_module(name, module)
        self._order = [name for name, _ in layers]
        self._aux_after = {after: head for after, head in _AUX_AFTER.items() if head in aux}
        for name, module in aux.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        aux: dict[str, torch.Tensor] = {}
        for name in self._order:
            x = getattr(self, name)(x)
            if self.training and name in self._aux_after:
                head = self._aux_after[name]
                aux[head] = getattr(self, head)(x)
        if aux:
            return GoogLeNetOutputs(x, aux["aux1"], aux["aux2"])
        return x


def _lrn(name: str) -> str:
    # Caffe's alpha=1e-4 is divided by the size 5: the notation's lrn takes AlexNet's
    # formula, alpha not divided.
    return f"lrn(alpha=2e-05, k=1.0, name={name})"


def googlenet_text() -> str:
    """GoogLeNet of Table 1 in the compact notation (without the auxiliary heads), with the
    module names of Table 1 (``conv1``, ``inception3a``...): the text :func:`googlenet`
    builds."""
    rows = [
        f"inception({','.join(map(str, widths))})(name={name})"
        if widths is not None
        else "maxpool3/2(ceil=true)"  # pool3, pool4 by the naming rule
        for name, widths in TABLE1
    ]
    return "-".join(
        [
            "conv7/2-64(name=conv1)-relu(name=relu1)-maxpool3/2(ceil=true)",  # pool1
            _lrn("norm1"),
            "conv1-64(name=conv2_reduce)-relu(name=relu2_reduce)",
            "conv3-192(name=conv2)-relu(name=relu2)",
            _lrn("norm2"),
            "maxpool3/2(ceil=true)",  # pool2
            *rows,
            "gap(name=avgpool)-flatten-dropout-0.4(name=dropout)-fc-1000(name=fc)",
        ]
    )


def googlenet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    aux_logits: bool = False,
) -> nn.Sequential:
    """Build GoogLeNet from Table 1 (see the module docstring for its details): the network
    of :func:`googlenet_text`, a :class:`~cnnlab.notation.SpecNet`; with ``aux_logits`` a
    :class:`GoogLeNet` holding the same modules and the two heads."""
    hw = checked_input("googlenet", num_classes, in_channels, input_size, _NATIVE)
    if aux_logits:
        not_a_spec()  # the heads are more modules than the trunk's spec
    text = googlenet_text()
    trunk = build("googlenet", text, in_channels=in_channels, hw=hw, native=_NATIVE,
                  num_classes=num_classes)  # fmt: skip
    if not aux_logits:
        return trunk
    spec = parse_spec(text)
    steps = {step.name: (i, step) for i, step in enumerate(spec.infer(in_channels, hw))}
    aux: dict[str, nn.Module] = {}
    head_spec = parse_spec(_aux_text(num_classes))
    for after, head in _AUX_AFTER.items():
        i, step = steps[after]
        c, h, w = step.output
        try:
            head_spec.infer(c, (h, w))
        except geometry.VanishingVolume as v:
            # The smallest input of the network (trunk to the head's input, then the head).
            need = smallest_input(spec.layers[: i + 1] + head_spec.layers, v.axis)
            raise too_small("googlenet", v, hw, _NATIVE, need, f"{head}.{v.where}") from None
        aux[head] = InceptionAux(c, num_classes, (h, w))
    return GoogLeNet(list(trunk.named_children()), aux)


REGISTRY.register(
    "googlenet",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    params=6_998_552,
    macs=1_582_671_872,
    top5="6.67% (ILSVRC-2014 test, 7 models x 144 crops; 1 model, 1 crop: 10.07%; paper "
    "Tables 2, 3)",
    summary="Inception v1 from Table 1: real 5x5 branches, LRN, no BN; aux_logits=True adds "
    "the two auxiliary classifiers",
)(googlenet)
