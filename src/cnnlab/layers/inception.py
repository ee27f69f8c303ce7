"""GoogLeNet's inception module (Szegedy et al. 2015, Figure 2b and Table 1)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.errors import check_int

__all__ = ["Inception"]


class Inception(nn.Module):
    """The inception module of GoogLeNet (Szegedy et al. 2014, Fig. 2(b) and Table 1).

    Four branches over the same input, concatenated along channels in this order::

        branch1x1:  1x1 conv (n1x1)                                   -> ReLU
        branch3x3:  1x1 conv (n3x3_reduce) -> ReLU -> 3x3 conv, pad 1 (n3x3) -> ReLU
        branch5x5:  1x1 conv (n5x5_reduce) -> ReLU -> 5x5 conv, pad 2 (n5x5) -> ReLU
        branch_pool: 3x3/1 max pool, pad 1 -> 1x1 conv (pool_proj)    -> ReLU

    The 5x5 branch is a real 5x5 convolution (torchvision's GoogLeNet uses 3x3 there, a
    known deviation: pytorch/vision#906).  All branches keep H and W, so the output is
    ``(N, n1x1 + n3x3 + n5x5 + pool_proj, H, W)`` (``out_channels``).  Convolutions have biases
    and there is no batch normalisation, as in the paper.

    ``n3x3_reduce``/``n5x5_reduce`` = ``None`` leaves out the 1x1 reduction and ``pool_proj`` =
    ``None`` the projection (the pool branch then passes ``in_channels`` maps): with all three
    ``None`` this is the paper's "naive" module of Fig. 2(a).

    Parameters: those of its convolutions (``c_in*c_out*k*k + c_out`` each).  MACs per image:
    ``H*W*(in*n1x1 + in*r3 + r3*n3x3*9 + in*r5 + r5*n5x5*25 + in*pool_proj)`` with ``r3``,
    ``r5`` the reduce widths; the max pool is not counted.
    """

    def __init__(
        self,
        in_channels: int,
        n1x1: int,
        n3x3_reduce: int | None,
        n3x3: int,
        n5x5_reduce: int | None,
        n5x5: int,
        pool_proj: int | None,
    ):
        super().__init__()
        self.in_channels = check_int("Inception in_channels", in_channels)
        for name, value in (("n1x1", n1x1), ("n3x3", n3x3), ("n5x5", n5x5)):
            check_int(f"Inception {name}", value)
        self.branch1x1 = nn.Sequential(OrderedDict(_conv_relu("conv", in_channels, n1x1, 1)))
        self.branch3x3 = _reduce_then(in_channels, n3x3_reduce, n3x3, 3, "n3x3_reduce")
        self.branch5x5 = _reduce_then(in_channels, n5x5_reduce, n5x5, 5, "n5x5_reduce")
        pool = [("pool", nn.MaxPool2d(3, stride=1, padding=1))]
        if pool_proj is not None:
            check_int("Inception pool_proj", pool_proj)
            pool += _conv_relu("proj", in_channels, pool_proj, 1)
        self.branch_pool = nn.Sequential(OrderedDict(pool))
        self.out_channels = n1x1 + n3x3 + n5x5 + (in_channels if pool_proj is None else pool_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([b(x) for b in branches], dim=1)


def _conv_relu(
    name: str, c_in: int, c_out: int, k: int, relu: str = "relu"
) -> list[tuple[str, nn.Module]]:
    # A separate ReLU module per use, never inplace, so hooks see each activation on its own.
    return [(name, nn.Conv2d(c_in, c_out, k, padding=k // 2)), (relu, nn.ReLU())]


def _reduce_then(c_in: int, reduce: int | None, c_out: int, k: int, what: str) -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = []
    if reduce is not None:
        check_int(f"Inception {what}", reduce)
        layers += _conv_relu("reduce", c_in, reduce, 1, relu="relu_reduce")
        c_in = reduce
    layers += _conv_relu("conv", c_in, c_out, k)
    return nn.Sequential(OrderedDict(layers))
