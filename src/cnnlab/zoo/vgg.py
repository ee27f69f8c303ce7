"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556).

The configurations are Table 1 of the paper, written in cnnlab's compact notation, one
column per configuration.  The paper leaves the ReLUs out of the table "for brevity"; here
every conv is followed by one, as the paper's text says.  Shared by all configurations: 3x3
convs at stride 1 with padding 1 (1x1 convs in C, padding 0), five 2x2/2 max pools, then
FC-4096, FC-4096 (each with ReLU and dropout 0.5, the paper's section 3.1) and FC-1000,
softmax.

Layer names are those of the VGG team's Caffe models (conv1_1 ... conv5_3, pool1 ... pool5,
fc6, fc7, fc8), by the naming rule of :mod:`cnnlab.notation._naming`.

Deviations, all deliberate and all optional:

- ``batch_norm=True`` (the ``vgg_*_bn`` entries, aliases ``vgg11_bn`` ...) puts BatchNorm
  after every conv (conv -> bn -> relu, convs keep their bias), as torchvision's
  ``vgg*_bn``; BatchNorm (2015) postdates the paper.
- No adaptive pooling before fc6 (torchvision adds ``AdaptiveAvgPool2d(7)``): fc6 reads
  ``512 x (H/32) x (W/32)``, 7*7*512 = 25,088 at 224x224, as in the paper.  Another
  ``input_size`` sizes fc6 for it; below 32x32 the volume vanishes at pool5 and building
  fails with a GeometryError naming that layer.
- Initialisation: torchvision's (He-normal convs, N(0, 0.01) fc), not the paper's
  N(0, 0.01) plus pre-training deeper nets from A (the paper notes that Glorot's random
  initialisation works without pre-training).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.notation import Spec, build_spec, parse_spec
from cnnlab.zoo._registry import REGISTRY, ModelInfo

__all__ = ["VGG_CONFIGS", "vgg", "vgg_spec"]

# Table 1 of the paper.  A-LRN's LRN follows conv1_1's ReLU, where AlexNet applies it
# (its parameters are AlexNet's: "where applicable, LRN layer parameters are those of
# Krizhevsky et al."; the notation's lrn defaults are exactly those: size 5, alpha 1e-4,
# beta 0.75, k 2).
VGG_CONFIGS: dict[str, str] = {
    "A": """
        conv3-64 relu,                                   maxpool,
        conv3-128 relu,                                  maxpool,
        (conv3-256 relu)*2,                              maxpool,
        (conv3-512 relu)*2,                              maxpool,
        (conv3-512 relu)*2,                              maxpool,
        fc-4096 relu dropout, fc-4096 relu dropout, fc-1000, softmax
    """,
    "A-LRN": """
        conv3-64 relu lrn,                               maxpool,
        conv3-128 relu,                                  maxpool,
        (conv3-256 relu)*2,                              maxpool,
        (conv3-512 relu)*2,                              maxpool,
        (conv3-512 relu)*2,                              maxpool,
        fc-4096 relu dropout, fc-4096 relu dropout, fc-1000, softmax
    """,
    "B": """
        (conv3-64 relu)*2,                               maxpool,
        (conv3-128 relu)*2,                              maxpool,
        (conv3-256 relu)*2,                              maxpool,
        (conv3-512 relu)*2,                              maxpool,
        (conv3-512 relu)*2,                              maxpool,
        fc-4096 relu dropout, fc-4096 relu dropout, fc-1000, softmax
    """,
    "C": """
        (conv3-64 relu)*2,                               maxpool,
        (conv3-128 relu)*2,                              maxpool,
        (conv3-256 relu)*2 conv1-256 relu,               maxpool,
        (conv3-512 relu)*2 conv1-512 relu,               maxpool,
        (conv3-512 relu)*2 conv1-512 relu,               maxpool,
        fc-4096 relu dropout, fc-4096 relu dropout, fc-1000, softmax
    """,
    "D": """
        (conv3-64 relu)*2,                               maxpool,
        (conv3-128 relu)*2,                              maxpool,
        (conv3-256 relu)*3,                              maxpool,
        (conv3-512 relu)*3,                              maxpool,
        (conv3-512 relu)*3,                              maxpool,
        fc-4096 relu dropout, fc-4096 relu dropout, fc-1000, softmax
    """,
    "E": """
        (conv3-64 relu)*2,                               maxpool,
        (conv3-128 relu)*2,                              maxpool,
        (conv3-256 relu)*4,                              maxpool,
        (conv3-512 relu)*4,                              maxpool,
        (conv3-512 relu)*4,                              maxpool,
        fc-4096 relu dropout, fc-4096 relu dropout, fc-1000, softmax
    """,
}


def vgg_spec(config: str, batch_norm: bool = False) -> Spec:
    """The :class:`~cnnlab.notation.Spec` of a configuration ("A", "A-LRN", "B", "C", "D", "E")."""
    if config not in VGG_CONFIGS:
        raise CnnlabError(
            f"VGG configuration must be one of {', '.join(VGG_CONFIGS)}, got {config!r}"
        )
    spec = parse_spec(VGG_CONFIGS[config])
    return spec.with_batchnorm() if batch_norm else spec


def vgg(
    config: str,
    num_classes: int = 1000,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    batch_norm: bool = False,
) -> nn.Module:
    """Build VGG configuration ``config`` (see the module docstring for what deviates).

    ``input_size``: ``(H, W)`` or an int; None is the paper's 224x224.
    """
    if input_size is None:
        input_size = 224
    if not isinstance(batch_norm, bool):
        raise CnnlabError(f"vgg: batch_norm must be True or False, got {batch_norm!r}")
    return build_spec(
        vgg_spec(config, batch_norm),
        in_channels=in_channels,
        input_size=input_size,
        num_classes=num_classes,
    )


_PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)"

# name, config, aliases, params (224x224x3, 1000 classes; equal to torchvision's for A, B,
# D, E), conv+linear MACs (derived from the layer shapes), single-net top-5 val error
# at single scale S=Q=256 (paper Table 3).
_ENTRIES = (
    ("vgg_a", "A", ("vgg11",), 132_863_336, 7_609_090_048, "10.4%"),
    ("vgg_a_lrn", "A-LRN", (), 132_863_336, 7_609_090_048, "10.5%"),
    ("vgg_b", "B", ("vgg13",), 133_047_848, 11_308_466_176, "9.9%"),
    ("vgg_c", "C", (), 133_638_952, 11_770_888_192, "9.4%"),
    ("vgg_d", "D", ("vgg16",), 138_357_544, 15_470_264_320, "8.8%"),
    ("vgg_e", "E", ("vgg19",), 143_667_240, 19_632_062_464, "9.0%"),
)
# BatchNorm variants; the paper has no error for them.  Counts: torchvision's vgg*_bn for A, B,
# D, E; C's is derived (C + 2 per conv channel over the same 13 conv widths as D: 8,448).
_BN_ENTRIES = (
    ("vgg_a_bn", "A", ("vgg11_bn",), 132_868_840, 7_609_090_048),
    ("vgg_b_bn", "B", ("vgg13_bn",), 133_053_736, 11_308_466_176),
    ("vgg_c_bn", "C", (), 133_647_400, 11_770_888_192),
    ("vgg_d_bn", "D", ("vgg16_bn",), 138_365_992, 15_470_264_320),
    ("vgg_e_bn", "E", ("vgg19_bn",), 143_678_248, 19_632_062_464),
)

for _name, _config, _aliases, _params, _macs, _top5 in _ENTRIES:
    _layers = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}[_config]
    REGISTRY.add(
        ModelInfo(
            name=_name,
            builder=partial(vgg, _config),
            paper=_PAPER,
            input_size=(3, 224, 224),
            num_classes=1000,
            params=_params,
            macs=_macs,
            top5=f"{_top5} (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)",
            summary=(
                f"VGG configuration {_config}: {_layers} weight layers, 3x3 convs"
                + (" with 1x1 convs" if _config == "C" else "")
                + (" and LRN" if _config == "A-LRN" else "")
                + "; the ILSVRC-2014 entry (7 nets) had 7.3% top-5 test error"
            ),
            aliases=_aliases,
        )
    )

for _name, _config, _aliases, _params, _macs in _BN_ENTRIES:
    REGISTRY.add(
        ModelInfo(
            name=_name,
            builder=partial(vgg, _config),
            paper=_PAPER + "; BatchNorm after each conv as in torchvision",
            input_size=(3, 224, 224),
            num_classes=1000,
            params=_params,
            macs=_macs,
            top5=None,
            summary=f"VGG configuration {_config} with BatchNorm (conv -> bn -> relu)",
            options={"batch_norm": True},
            aliases=_aliases,
        )
    )
