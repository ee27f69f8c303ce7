"""ResNet's residual blocks and shortcuts (He et al. 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError, check_int

__all__ = ["SHORTCUTS", "VARIANTS", "BasicBlock", "Bottleneck", "ZeroPadShortcut"]


class ZeroPadShortcut(nn.Module):
    """ResNet's parameter-free shortcut "option A" (He et al. 2015, section 3.3; used by the
    CIFAR-10 networks of section 4.2).

    Identity on the first ``in_channels`` maps, subsampled by ``stride`` (taking every
    ``stride``-th row and column, starting at 0, which lines up with a 3x3/pad-1 or a 1x1
    convolution of that stride), and ``out_channels - in_channels`` maps of zeros appended::

        y = cat([x[:, :, ::stride, ::stride], zeros], dim=1)

    (akamaster's popular CIFAR code pads half the zeros before and half after; the place of
    the zero maps makes no difference to what a network can learn.)
    Output spatial size: ``ceil(H / stride)``.  Parameters: none.  MACs: none.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.in_channels = check_int("ZeroPadShortcut in_channels", in_channels)
        self.out_channels = check_int("ZeroPadShortcut out_channels", out_channels)
        self.stride = check_int("ZeroPadShortcut stride", stride)
        if out_channels < in_channels:
            raise CnnlabError(
                f"a zero-padding shortcut cannot reduce {in_channels} maps to {out_channels}; "
                "use a projection shortcut (option B) instead"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra else x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


SHORTCUTS = ("A", "B", "C")  # ResNet's shortcut options (He et al. 2015, section 3.3)
VARIANTS = ("v1.5", "v1")  # where a downsampling bottleneck strides (see Bottleneck)


def _shortcut(c_in: int, c_out: int, stride: int, kind: str) -> nn.Module | None:
    """``None`` for a plain identity, else the shortcut module named ``downsample``."""
    if kind not in SHORTCUTS:
        raise CnnlabError(
            f"shortcut must be 'A' (zero-padding identity), 'B' (projection where the shape "
            f"changes) or 'C' (projection everywhere), got {kind!r}"
        )
    changes = stride != 1 or c_in != c_out
    if kind == "A":
        return ZeroPadShortcut(c_in, c_out, stride) if changes else None
    if kind == "B" and not changes:
        return None
    # Projection W_s x: 1x1 conv of the block's stride, then BN.  Unnamed (0, 1) like
    # torchvision, so state_dict keys read layerN.M.downsample.0.weight there and here.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """ResNet's basic residual block: two 3x3 convolutions (He et al. 2015, Fig. 2 and Table 1
    for ResNet-18/34 and the CIFAR networks)::

        conv1 3x3/stride (planes) -> bn1 -> relu1 -> conv2 3x3 (planes) -> bn2
        -> + shortcut(x) -> relu2

    ``shortcut``: ``"B"`` (default) projects with a 1x1 conv + BN where the shape changes,
    ``"A"`` zero-pads the identity (:class:`ZeroPadShortcut`), ``"C"`` projects everywhere.
    The shortcut module is ``downsample`` (``None`` for a plain identity).  Convolutions have
    no bias (BN follows each).  Output ``(N, planes, ceil(H/stride), ceil(W/stride))``.

    Parameters: ``9*in*planes + 9*planes*planes + 4*planes`` (BN gamma and beta), plus
    ``in*planes + 2*planes`` for a projection.  MACs per image:
    ``H'*W'*(9*in*planes + 9*planes*planes)`` (+ ``H'*W'*in*planes`` for a projection).
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: str = "B"):
        super().__init__()
        self.in_channels = check_int("BasicBlock in_channels", in_channels)
        self.out_channels = check_int("BasicBlock planes", planes)
        self.stride = check_int("BasicBlock stride", stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_channels, planes, stride, shortcut)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """ResNet's bottleneck block: 1x1 reduce, 3x3, 1x1 expand by 4 (He et al. 2015, Fig. 5
    and Table 1 for ResNet-50/101/152)::

        conv1 1x1 (planes) -> bn1 -> relu1 -> conv2 3x3 (planes) -> bn2 -> relu2
        -> conv3 1x1 (4*planes) -> bn3 -> + shortcut(x) -> relu3

    ``variant`` says where a downsampling block strides: ``"v1"`` on ``conv1`` (the first 1x1,
    as in the paper and its Caffe models), ``"v1.5"`` on ``conv2`` (the 3x3, as torchvision
    does; the same parameters, more MACs).  ``shortcut`` as in
    :class:`BasicBlock` (the paper uses "B" for these networks).  No conv biases.

    Parameters: ``in*p + 9*p*p + p*4p`` weights + ``2*(p + p + 4p)`` BN, plus ``in*4p + 8p``
    for a projection.  MACs per image: the three convolutions at their output sizes (with
    ``v1`` the 3x3 runs on the strided, 4x smaller map) plus the projection.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        variant: str = "v1.5",
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise CnnlabError(
                f"variant must be 'v1' (stride on the first 1x1, the paper) or 'v1.5' "
                f"(stride on the 3x3, torchvision), got {variant!r}"
            )
        self.in_channels = check_int("Bottleneck in_channels", in_channels)
        check_int("Bottleneck planes", planes)
        self.stride = check_int("Bottleneck stride", stride)
        self.variant = variant
        self.out_channels = planes * self.expansion
        s1, s2 = (stride, 1) if variant == "v1" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, s2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, self.out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.out_channels)
        self.downsample = _shortcut(in_channels, self.out_channels, stride, shortcut)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)
