"""Layers the lecture's networks need that torch lacks, or gets subtly different.

Each class computes exactly what its paper describes; its docstring says what it computes, its
parameters, and its multiply-adds (MACs), so that analysis code can count it.  Shapes are
``(N, C, H, W)`` unless stated.

- :class:`LocalResponseNorm`: AlexNet's normalisation across feature maps (alpha NOT divided by
  the window size, unlike ``torch.nn.LocalResponseNorm``).
- :class:`ScaledTanh`, :class:`Subsampling`, :class:`ConnectionTableConv2d` with
  :data:`LENET5_C3_TABLE`: LeNet-5's squashing function, trainable S2/S4 and partial C3.
- :class:`Inception`: GoogLeNet's four-branch module with a real 5x5 branch.
- :class:`BasicBlock`, :class:`Bottleneck` (v1 and v1.5) and :class:`ZeroPadShortcut`: ResNet's
  residual blocks with shortcut options A, B and C.

ReLUs are separate, non-inplace modules so that forward hooks can record every activation.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError

__all__ = [
    "LENET5_C3_TABLE",
    "SHORTCUTS",
    "VARIANTS",
    "BasicBlock",
    "Bottleneck",
    "ConnectionTableConv2d",
    "Inception",
    "LocalResponseNorm",
    "ScaledTanh",
    "Subsampling",
    "ZeroPadShortcut",
]


def _positive_int(name: str, value: object, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise CnnlabError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class LocalResponseNorm(nn.Module):
    """Local response normalisation across feature maps, as in AlexNet (Krizhevsky et al.
    2012, section 3.3).

    For the activity ``a[c]`` of map ``c`` at one position, over ``C`` maps::

        b[c] = a[c] / (k + alpha * sum_{j = c - size//2}^{c + (size-1)//2} a[j]**2) ** beta

    where maps outside ``0 .. C-1`` contribute nothing (zero padding along channels).  The
    paper's values are the defaults: ``size`` (n) = 5, ``alpha`` = 1e-4, ``beta`` = 0.75,
    ``k`` = 2.  For odd ``size`` the window is centred (``c-2 .. c+2`` for 5); for even sizes
    it reaches one map further back than forward, as ``torch.nn.LocalResponseNorm`` does.

    **alpha is NOT divided by size here.**  ``torch.nn.LocalResponseNorm`` (and Caffe's LRN)
    compute ``k + alpha/n * sum``; this layer computes the paper's ``k + alpha * sum``.  The
    two agree when torch's alpha is ``n`` times this one:
    ``LocalResponseNorm(5, 1e-4, 0.75, 2)`` == ``torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2)``.
    (Caffe's reference models use ``alpha=1e-4`` *with* the division and ``k=1``, which is
    ``LocalResponseNorm(5, 2e-5, 0.75, 1.0)`` here.)

    Parameters: none.  MACs: none in the conv+linear convention; the arithmetic per output
    element is ``size`` multiply-adds (squares summed over the window), then one
    multiply-add (``k + alpha*s``), one power and one division.  Input ``(N, C, *)``, with at
    least one dimension after ``C``; output has the same shape.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.size = _positive_int("LocalResponseNorm size", size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch divides its alpha by size; multiplying by size first gives the paper's formula.
        return F.local_response_norm(x, self.size, self.alpha * self.size, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g}"


class ScaledTanh(nn.Module):
    """LeCun's squashing function ``f(a) = A * tanh(S * a)`` (LeCun et al. 1998, Appendix A).

    Defaults ``A = 1.7159``, ``S = 2/3``, chosen so that ``f(1) = 1`` and ``f(-1) = -1``, and the
    second derivative is largest at ``a = 1``.  Parameters: none.  MACs: none in the
    conv+linear convention (one tanh and two multiplies per element).  Any shape.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0):
        super().__init__()
        self.amplitude = float(amplitude)
        self.slope = float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude:g}, slope={self.slope:.6g}"


class Subsampling(nn.Module):
    """LeNet-5's trainable subsampling (layers S2 and S4; LeCun et al. 1998, section II-B).

    Each output unit adds the ``kernel_size x kernel_size`` inputs of its window in one map,
    multiplies the sum by the map's trainable coefficient and adds the map's trainable bias::

        y[n, c, i, j] = weight[c] * sum_{window(i, j)} x[n, c, ...] + bias[c]

    The paper then applies its squashing function; here that is a separate module
    (:class:`ScaledTanh` in ``lenet5``).  Windows do not overlap by default
    (``stride = kernel_size``), so 28x28 -> 14x14 and 10x10 -> 5x5; sizes follow PyTorch's
    floor rounding.

    Parameters: ``2 * channels`` (``weight`` and ``bias``, shape ``(channels,)``): 12 for S2,
    32 for S4.  MACs: none in the conv+linear convention (LeCun's and cnnlab's totals leave
    subsampling out); the arithmetic per output element is ``kernel_size**2 - 1`` additions,
    one multiply and one bias add, and the paper counts ``kernel_size**2 + 1`` connections
    per output unit (S2: 6*14*14*5 = 5,880).

    Initialisation (the paper gives none for these layers): coefficient ``1/kernel_size**2``
    and bias 0, so an untrained layer is an average pooling.
    """

    def __init__(self, channels: int, kernel_size: int = 2, stride: int | None = None):
        super().__init__()
        self.channels = _positive_int("Subsampling channels", channels)
        self.kernel_size = _positive_int("Subsampling kernel_size", kernel_size)
        self.stride = _positive_int("Subsampling stride", kernel_size if stride is None else stride)
        self.weight = nn.Parameter(torch.full((channels,), 1.0 / kernel_size**2))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The window sum is the window mean times its area, the area folded into the
        # coefficient.  Not avg_pool2d(divisor_override=1): torch's ONNX exporters (both, in
        # torch 2.13) drop divisor_override and silently export a mean, 4x too small for S2.
        area = self.kernel_size * self.kernel_size
        s = F.avg_pool2d(x, self.kernel_size, self.stride)
        return s * (self.weight * area).view(-1, 1, 1) + self.bias.view(-1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}"


# LeCun et al. 1998, Table I: the S2 maps (0-5) each C3 map (0-15) takes as input.  Maps 0-5
# see 3 contiguous maps, 6-11 see 4 contiguous maps, 12-14 see 4 non-contiguous maps and 15 sees
# all six (the paper's indices wrap around modulo 6).
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class ConnectionTableConv2d(nn.Module):
    """A convolution in which output map ``o`` sees only the input maps ``table[o]``.

    This is LeNet-5's C3 (LeCun et al. 1998, Table I: :data:`LENET5_C3_TABLE`): the paper
    breaks symmetry and saves connections by connecting each C3 map to a subset of the S2
    maps.  It computes what ``nn.Conv2d`` computes with the unconnected kernel slices held at
    zero, but stores parameters ONLY for connected (output, input) pairs:

    - ``weight``: shape ``(connections, kH, kW)``, one kernel per connected pair, in the order
      of ``table`` (output map by output map, input maps as listed);
    - ``bias``: shape ``(out_channels,)`` where ``out_channels = len(table)``.

    So C3 has ``60*25 + 16 = 1,516`` parameters (the paper's count), not ``16*6*25 + 16 =
    2,416``.  MACs per image: ``H_out * W_out * connections * kH * kW`` (C3: 10*10*60*25 =
    150,000, the paper's 151,600 connections less the 1,600 bias additions).
    :meth:`dense_weight` gives the equivalent ``(out, in, kH, kW)`` kernel with zeros.

    Initialisation: as ``nn.Conv2d`` (uniform in ``+-1/sqrt(fan_in)`` for weights and bias),
    with each output map's fan-in counting only its connected inputs (``len(table[o])*kH*kW``).
    """

    def __init__(
        self,
        in_channels: int,
        table: tuple[tuple[int, ...], ...] | list[list[int]],
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels = _positive_int("ConnectionTableConv2d in_channels", in_channels)
        rows: list[tuple[int, ...]] = []
        for o, inputs in enumerate(table):
            row = tuple(inputs)
            bad = [i for i in row if not isinstance(i, int) or not 0 <= i < in_channels]
            if not row or bad or len(set(row)) != len(row):
                raise CnnlabError(
                    f"connection table row {o} is {row!r}: each row must list distinct input "
                    f"maps in 0..{in_channels - 1}, at least one"
                )
            rows.append(row)
        if not rows:
            raise CnnlabError("connection table is empty: give one row per output map")
        self.table: tuple[tuple[int, ...], ...] = tuple(rows)
        self.out_channels = len(rows)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        self.connections = sum(len(r) for r in rows)
        kh, kw = self.kernel_size
        # Flat index (o * in_channels + i) of each connected pair in the dense kernel.
        flat = [o * in_channels + i for o, row in enumerate(rows) for i in row]
        self.register_buffer("_index", torch.tensor(flat, dtype=torch.long), persistent=False)
        self.weight = nn.Parameter(torch.empty(self.connections, kh, kw))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kh, kw = self.kernel_size
        # Bounds from Python numbers, so this also runs under ``torch.device("meta")``.
        bound = [1.0 / math.sqrt(len(r) * kh * kw) for r in self.table]  # per output map
        per_pair = [b for b, r in zip(bound, self.table, strict=True) for _ in r]
        with torch.no_grad():
            scale = torch.tensor(per_pair, dtype=self.weight.dtype, device=self.weight.device)
            self.weight.uniform_(-1.0, 1.0).mul_(scale.view(-1, 1, 1))
            if self.bias is not None:
                scale = torch.tensor(bound, dtype=self.bias.dtype, device=self.bias.device)
                self.bias.uniform_(-1.0, 1.0).mul_(scale)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent ``nn.Conv2d`` kernel, ``(out, in, kH, kW)``, zero where unconnected."""
        kh, kw = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels * self.in_channels, kh, kw)
        dense = dense.index_copy(0, self._index, self.weight)
        return dense.view(self.out_channels, self.in_channels, kh, kw)

    def mask(self) -> torch.Tensor:
        """Boolean ``(out, in)`` connection matrix (True where output map sees input map), on
        the CPU."""
        rows = [[i in row for i in range(self.in_channels)] for row in self.table]
        return torch.tensor(rows, dtype=torch.bool, device="cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, connections={self.connections}"
            + ("" if self.bias is not None else ", bias=False")
        )


def _pair(name: str, value: object, low: int) -> tuple[int, int]:
    items = value if isinstance(value, tuple | list) else (value, value)
    if len(items) != 2:
        raise CnnlabError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return (_positive_int(name, items[0], low), _positive_int(name, items[1], low))


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
        self.in_channels = _positive_int("Inception in_channels", in_channels)
        for name, value in (("n1x1", n1x1), ("n3x3", n3x3), ("n5x5", n5x5)):
            _positive_int(f"Inception {name}", value)
        self.branch1x1 = nn.Sequential(OrderedDict(_conv_relu("conv", in_channels, n1x1, 1)))
        self.branch3x3 = _reduce_then(in_channels, n3x3_reduce, n3x3, 3, "n3x3_reduce")
        self.branch5x5 = _reduce_then(in_channels, n5x5_reduce, n5x5, 5, "n5x5_reduce")
        pool = [("pool", nn.MaxPool2d(3, stride=1, padding=1))]
        if pool_proj is not None:
            _positive_int("Inception pool_proj", pool_proj)
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
        _positive_int(f"Inception {what}", reduce)
        layers += _conv_relu("reduce", c_in, reduce, 1, relu="relu_reduce")
        c_in = reduce
    layers += _conv_relu("conv", c_in, c_out, k)
    return nn.Sequential(OrderedDict(layers))


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
        self.in_channels = _positive_int("ZeroPadShortcut in_channels", in_channels)
        self.out_channels = _positive_int("ZeroPadShortcut out_channels", out_channels)
        self.stride = _positive_int("ZeroPadShortcut stride", stride)
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
        self.in_channels = _positive_int("BasicBlock in_channels", in_channels)
        self.out_channels = _positive_int("BasicBlock planes", planes)
        self.stride = _positive_int("BasicBlock stride", stride)
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
        self.in_channels = _positive_int("Bottleneck in_channels", in_channels)
        _positive_int("Bottleneck planes", planes)
        self.stride = _positive_int("Bottleneck stride", stride)
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
