"""ZFNet (Zeiler & Fergus 2013/2014, "Visualizing and Understanding Convolutional Networks",
Fig. 3 and section 4.1).

AlexNet with a finer first layer and dense connections: conv1 96@7x7 stride 2 (AlexNet:
11x11 stride 4), conv2 256@5x5 stride 2, conv3-5 384/384/256@3x3, each followed by ReLU;
3x3/2 max pooling after conv1, conv2 and conv5; contrast normalisation across feature maps
after the first two poolings; fc6 and fc7 with 4096 units and dropout 0.5; input 224x224x3.

Reconstructed where the paper is silent (its figure gives only the map sizes
224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6):
- conv1 pads by 1 ((224 + 2 - 7)/2 + 1 = 110.5 -> 110) and pool1/pool2 round up
  (``ceil_mode``: 110 -> 55, 26 -> 13), conv3-5 pad by 1; pool5 is exact (13 -> 6);
- the normalisation is AlexNet's LRN (k=2, n=5, alpha=1e-4, beta=0.75), whose formula the
  paper's "contrast normalized across feature maps" refers to.
With these, 62,357,608 parameters (the paper gives no count).  ``conv345=(512, 1024, 512)``
builds the wider model (b) of Table 2 (the "ZFNet" of CS231n's slides): 107,627,624.  The
network is written in the compact notation (:func:`zfnet_text`).
"""

from __future__ import annotations

from cnnlab.errors import CnnlabError
from cnnlab.notation import SpecNet
from cnnlab.zoo._common import build, check_count, checked_input
from cnnlab.zoo._registry import REGISTRY

__all__ = ["ZFNet", "zfnet", "zfnet_text"]

PAPER = "Zeiler & Fergus 2014, Visualizing and Understanding CNNs (ECCV; arXiv:1311.2901)"
_NATIVE = (224, 224)


class ZFNet(SpecNet):
    """ZFNet as a plain ``nn.Sequential`` with AlexNet-style layer names (conv1 ... fc8)."""


def zfnet_text(conv345: tuple[int, int, int] = (384, 384, 256), num_classes: int = 1000) -> str:
    """ZFNet in the compact notation (the text :func:`zfnet` builds), with AlexNet-style
    module names; ``lrn`` is AlexNet's k=2, n=5, alpha=1e-4, beta=0.75 (the notation's)."""
    if not isinstance(conv345, tuple | list) or len(conv345) != 3:
        raise CnnlabError(f"zfnet: conv345 must be three widths, got {conv345!r}")
    c3, c4, c5 = (check_count("zfnet", "conv345 width", c) for c in conv345)
    return "-".join(
        [
            "conv7/2-96(pad=1,name=conv1)-relu(name=relu1)-maxpool3/2(ceil=true,name=pool1)",
            "lrn(name=norm1)",
            "conv5/2-256(pad=0,name=conv2)-relu(name=relu2)-maxpool3/2(ceil=true,name=pool2)",
            "lrn(name=norm2)",
            f"conv3-{c3}(name=conv3)-relu(name=relu3)",
            f"conv3-{c4}(name=conv4)-relu(name=relu4)",
            f"conv3-{c5}(name=conv5)-relu(name=relu5)-maxpool3/2(name=pool5)",
            # fc6 reads 256*6*6 = 9,216 at 224x224; its width follows the input size.
            "fc-4096(name=fc6)-relu(name=relu6)-dropout(name=drop6)",
            "fc-4096(name=fc7)-relu(name=relu7)-dropout(name=drop7)",
            f"fc-{num_classes}(name=fc8)",
        ]
    )


def zfnet(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    conv345: tuple[int, int, int] = (384, 384, 256),
) -> ZFNet:
    """Build ZFNet (Fig. 3 of the paper, reconstructed as the module docstring says)."""
    hw = checked_input("zfnet", num_classes, in_channels, input_size, _NATIVE)
    text = zfnet_text(conv345, num_classes)
    return build("zfnet", text, in_channels=in_channels, hw=hw, native=_NATIVE,
                 into=ZFNet)  # type: ignore[return-value]  # fmt: skip


REGISTRY.register(
    "zfnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    params=62_357_608,
    macs=1_168_032_896,
    # ZF Table 2.  The lecture's "ZFNet 11.2%" is Clarifai's ILSVRC-2013 entry with extra
    # data (11.7% without), a different system from this paper's network.
    top5="16.5% (ILSVRC-2012 val, 1 net; 6 nets: 14.8% test; paper Table 2)",
    summary="AlexNet with a 7x7/2 first layer, 5x5/2 second layer and dense connections",
)(zfnet)
