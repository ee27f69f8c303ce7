"""LeNet-5's own layers (LeCun et al. 1998): the scaled tanh, trainable subsampling and the
partially connected C3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError, check_int

__all__ = ["LENET5_C3_TABLE", "ConnectionTableConv2d", "ScaledTanh", "Subsampling"]


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
        self.channels = check_int("Subsampling channels", channels)
        self.kernel_size = check_int("Subsampling kernel_size", kernel_size)
        self.stride = check_int("Subsampling stride", kernel_size if stride is None else stride)
        # empty + fill: the same values as torch.full / torch.zeros, and on the meta device
        # (cnnlab.analysis.build_on_meta skips fills) one kind of torch call fewer to set up.
        self.weight = nn.Parameter(torch.empty(channels).fill_(1.0 / kernel_size**2))
        self.bias = nn.Parameter(torch.empty(channels).zero_())

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
        self.in_channels = check_int("ConnectionTableConv2d in_channels", in_channels)
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
    return (check_int(name, items[0], low), check_int(name, items[1], low))
