"""The layer kinds of the compact notation that slide windows or make vectors, and the table
of all kinds (:data:`KINDS`).  What a kind holds and says: :mod:`cnnlab.notation.layer`; the
kinds that set a map's size without sliding a window (global and adaptive average pooling,
zero padding): :mod:`cnnlab.notation.sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab import geometry
from cnnlab.errors import GeometryError, SpecError
from cnnlab.notation._values import (
    MAX_INT,
    FieldError,
    NoNotation,
    Pair,
    as_pair,
    check_bool,
    check_int,
    check_pair,
    settle,
    write_value,
)
from cnnlab.notation.blocks import Inception, Residual
from cnnlab.notation.elementwise import ACTIVATIONS, LRN, Activation, BatchNorm, Dropout, Identity
from cnnlab.notation.layer import Layer, Option, Param, layer_text
from cnnlab.notation.sizes import AdaptiveAvgPool, GlobalAvgPool, ZeroPad

__all__ = [
    "ACTIVATIONS",
    "FC",
    "AdaptiveAvgPool",
    "KINDS",
    "LRN",
    "Activation",
    "BatchNorm",
    "Conv",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "Identity",
    "Inception",
    "Layer",
    "Pool",
    "Residual",
    "Softmax",
    "Subsample",
    "ZeroPad",
    "layer_text",
]


def _windows(kernel: Pair, stride: Pair, padding: Pair, dilation: Pair):
    return tuple(
        geometry.Window(k, s, p, d)
        for k, s, p, d in zip(kernel, stride, padding, dilation, strict=True)
    )


def _checked_table(value: Any) -> tuple[tuple[int, ...], ...]:
    """A connection table as rows of distinct input maps (``"lenet5"``: the paper's)."""
    if isinstance(value, str):
        if value != "lenet5":
            raise FieldError(
                "table",
                f"unknown connection table {value!r}: lenet5 (the paper's C3) or rows of "
                f"input maps such as 0+1+2/1+2+3",
            )
        from cnnlab.layers import LENET5_C3_TABLE

        return LENET5_C3_TABLE
    if not isinstance(value, tuple | list) or not value:
        raise FieldError("table", f"a connection table is rows of input maps, got {value!r}")
    rows = []
    for o, row in enumerate(value):
        if (
            not isinstance(row, tuple | list)
            or not row
            or any(
                not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < MAX_INT for i in row
            )  # fmt: skip
        ):
            raise FieldError(
                "table", f"row {o} of the connection table must list input maps >= 0, got {row!r}"
            )
        if len(set(row)) != len(row):
            raise FieldError("table", f"row {o} of the connection table repeats a map: {row!r}")
        rows.append(tuple(row))
    return tuple(rows)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Conv(Layer):
    """``conv3-64``: 2-D convolution, ``out`` filters of ``kernel`` (kh, kw).

    ``padding=None`` (or ``"same"``) means the lecture's usual "same" padding ``(F-1)/2`` per
    axis (for the effective, dilated kernel); an even kernel has none and needs an explicit
    padding.  ``"valid"`` is 0.

    ``table``: a partial connection table (LeCun et al. 1998, Table I, LeNet-5's C3): output
    map ``o`` sees only the input maps ``table[o]``, and only those kernels are parameters
    (:class:`~cnnlab.layers.ConnectionTableConv2d`).  Written ``table=lenet5`` (the paper's
    16 rows over 6 maps, :data:`~cnnlab.layers.LENET5_C3_TABLE`) or as rows
    ``table=0+1+2/1+2+3/...``; one row per filter, no groups or dilation with it.  A spec with
    a table imports torch (the paper's table is kept with its layer).
    """

    words = (("conv", "convolution"),)
    word = "conv"
    windowed = True
    param = Param("out", "filters", "conv3-64")
    options = (
        Option("stride", "pair"),
        Option("pad", "pad", "padding"),
        Option("dilation", "pair"),
        Option("groups", "int"),
        Option("bias", "bool"),
        Option("table", "table"),
    )
    needs_volume = True
    role = "conv"
    kernel_help = "conv3-64 is 64 filters of 3x3 (conv7/2-64: 7x7 at stride 2)"

    kernel: Pair
    out: int
    stride: Pair = (1, 1)
    padding: Pair | str | None = None
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = True
    table: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "kernel", check_pair("kernel", self.kernel, 1))
        settle(self, "out", check_int("out", self.out, 1, "width (filters)"))
        settle(self, "stride", check_pair("stride", self.stride, 1))
        settle(self, "dilation", check_pair("dilation", self.dilation, 1))
        settle(self, "groups", check_int("groups", self.groups, 1))
        settle(self, "bias", check_bool("bias", self.bias))
        padding = {"valid": 0, "same": None}.get(self.padding, self.padding)  # type: ignore
        if padding is None:
            padding = self.same_padding()
            if padding is None:
                kh, kw = self.kernel
                raise FieldError(
                    "kernel",
                    f"a {kh}x{kw} kernel has no symmetric 'same' padding (F-1)/2 "
                    f"(an even window needs one more cell on one side); give it, e.g. pad=0",
                )
        settle(self, "padding", check_pair("padding", padding, 0))
        if self.out % self.groups:
            raise FieldError("groups", f"groups={self.groups} must divide the {self.out} filters")
        if self.table is not None:
            settle(self, "table", _checked_table(self.table))
            if len(self.table) != self.out:
                raise FieldError(
                    "table",
                    f"the connection table has {len(self.table)} rows, one per output map, "
                    f"but the conv has {self.out} filters; write conv{write_value(self.kernel)}-"
                    f"{len(self.table)}",
                )
            if self.groups != 1 or self.dilation != (1, 1):
                raise FieldError("table", "a connection table takes no groups or dilation")

    def option_text(self, field, value):
        if field == "table":
            from cnnlab.layers import LENET5_C3_TABLE

            if value == LENET5_C3_TABLE:
                return "lenet5"
            return "/".join("+".join(map(str, row)) for row in value)
        return super().option_text(field, value)

    def same_padding(self) -> Pair | None:
        """``(F-1)/2`` per axis for the dilated kernel, or None if an axis is even."""
        try:
            return tuple(  # type: ignore[return-value]
                geometry.same_padding(k, d) for k, d in zip(self.kernel, self.dilation, strict=True)
            )
        except GeometryError:
            return None

    def default(self, name: str) -> Any:
        return self.same_padding() if name == "padding" else super().default(name)

    def head(self) -> str:
        stride = f"/{write_value(self.stride)}" if self.stride != (1, 1) else ""
        return f"conv{write_value(self.kernel)}{stride}-{self.out}"

    def windows(self):
        return _windows(self.kernel, self.stride, self.padding, self.dilation)  # type: ignore

    def infer(self, name, shape, hw):
        c = shape[0]
        if c % self.groups:
            raise SpecError(
                f"{self.where(name)}: groups={self.groups} must divide its {c} input channels"
            )
        area = self.kernel[0] * self.kernel[1]
        if self.table is not None:
            top = max(max(row) for row in self.table)
            if top >= c:
                raise SpecError(
                    f"{self.where(name)}: its connection table reads input map {top}, but the "
                    f"input has {c} map{'s' if c > 1 else ''} (0..{c - 1})"
                )
            weights = sum(len(row) for row in self.table) * area  # connected pairs only
        else:
            weights = self.out * (c // self.groups) * area
        params = weights + (self.out if self.bias else 0)
        macs = None if hw[0] is None else hw[0] * hw[1] * weights
        return (self.out, *hw), params, macs

    def module(self, shape):
        from torch import nn

        if self.table is not None:
            from cnnlab.layers import ConnectionTableConv2d

            return ConnectionTableConv2d(shape[0], self.table, self.kernel, self.stride,
                                         self.padding, self.bias)  # type: ignore  # fmt: skip
        return nn.Conv2d(shape[0], self.out, self.kernel, self.stride, self.padding,  # type: ignore
                         self.dilation, self.groups, self.bias)  # fmt: skip

    @classmethod
    def read(cls, m, name):
        from torch import nn

        from cnnlab.layers import ConnectionTableConv2d

        if type(m) is ConnectionTableConv2d:
            return cls(m.kernel_size, m.out_channels, stride=m.stride, padding=m.padding,
                       bias=m.bias is not None, table=m.table, name=name)  # fmt: skip
        if type(m) is not nn.Conv2d:
            return None
        if m.padding_mode != "zeros":
            raise NoNotation(f"padding_mode={m.padding_mode!r}")
        padding = m.padding if isinstance(m.padding, str) else as_pair(m.padding)
        return cls(as_pair(m.kernel_size), m.out_channels, stride=as_pair(m.stride),
                   padding=padding, dilation=as_pair(m.dilation), groups=m.groups,
                   bias=m.bias is not None, name=name)  # fmt: skip


@dataclass(frozen=True)
class Pool(Layer):
    """``maxpool`` (2x2/2), ``maxpool3/2``, ``avgpool7/1``: max or average pooling.

    ``stride=None`` means ``stride = kernel`` (PyTorch's default: windows do not overlap);
    ``padding="same"`` is ``F // 2`` for an odd window, ``"valid"`` 0.
    """

    words = (("maxpool", "max_pool", "pool"), ("avgpool", "avg_pool"))
    word = "pool"
    windowed = True
    options = (Option("stride", "pair"), Option("pad", "pad", "padding"), Option("ceil", "bool"))
    needs_volume = True
    role = "pool"

    op: str = "max"  # "max" or "avg"
    kernel: Pair = (2, 2)
    stride: Pair | None = None
    padding: Pair | str = (0, 0)
    ceil: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.op not in ("max", "avg"):
            raise FieldError("op", f"pooling op must be 'max' or 'avg', got {self.op!r}")
        if self.padding == "same" and any(  # before the kernel's own check, as the text reads
            isinstance(k, int) and k % 2 == 0 for k in as_pair(self.kernel)
        ):
            raise FieldError("padding", "an even window has no symmetric 'same' padding")
        settle(self, "kernel", check_pair("kernel", self.kernel, 1))
        stride = self.kernel if self.stride is None else self.stride
        settle(self, "stride", check_pair("stride", stride, 1))
        padding = 0 if self.padding == "valid" else self.padding
        if padding == "same":
            padding = (self.kernel[0] // 2, self.kernel[1] // 2)
        settle(self, "padding", check_pair("padding", padding, 0))
        settle(self, "ceil", check_bool("ceil", self.ceil))
        for p, k in zip(self.padding, self.kernel, strict=True):
            if 2 * p > k:  # PyTorch's rule: a window must not lie wholly in the padding
                raise FieldError(
                    "padding",
                    f"pooling padding {p} is more than half of the {k}-cell window; "
                    f"use at most {k // 2}",
                )

    @classmethod
    def fixed_by_word(cls, word):
        return {"op": word[:3]}

    def head(self) -> str:
        if self.kernel == (2, 2) and self.stride == (2, 2):
            return f"{self.op}pool"
        return f"{self.op}pool{write_value(self.kernel)}/{write_value(self.stride)}"  # type: ignore

    def windows(self):
        return _windows(self.kernel, self.stride, self.padding, (1, 1))  # type: ignore

    def rounds_up(self) -> bool:
        return self.ceil

    def infer(self, name, shape, hw):
        return (shape[0], *hw), 0, 0

    def module(self, shape):
        from torch import nn

        cls = nn.MaxPool2d if self.op == "max" else nn.AvgPool2d
        return cls(self.kernel, stride=self.stride, padding=self.padding, ceil_mode=self.ceil)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) not in (nn.MaxPool2d, nn.AvgPool2d):
            return None
        op = "max" if type(m) is nn.MaxPool2d else "avg"
        if op == "max" and (as_pair(m.dilation) != (1, 1) or m.return_indices):
            raise NoNotation("dilation or return_indices")
        if op == "avg" and (not m.count_include_pad or m.divisor_override is not None):
            raise NoNotation("count_include_pad=False or divisor_override")
        stride = m.stride if m.stride is not None else m.kernel_size
        return cls(op, kernel=as_pair(m.kernel_size), stride=as_pair(stride),
                   padding=as_pair(m.padding), ceil=bool(m.ceil_mode), name=name)  # fmt: skip


@dataclass(frozen=True)
class Subsample(Layer):
    """``subsample`` (2x2/2), ``subsample3/2``: LeNet-5's trainable subsampling, S2 and S4
    (LeCun et al. 1998, section II-B): each map's window sum times the map's coefficient plus
    its bias (:class:`~cnnlab.layers.Subsampling`; 2 parameters per map, no MACs in the
    conv + linear count).  Square windows; ``stride=None`` means ``stride = kernel``."""

    words = (("subsample", "subsampling", "subsamp"),)
    word = "subsample"
    windowed = True
    options = (Option("stride", "pair"),)
    needs_volume = True
    role = "pool"

    kernel: Pair = (2, 2)
    stride: Pair | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "kernel", check_pair("kernel", self.kernel, 1))
        stride = self.kernel if self.stride is None else self.stride
        settle(self, "stride", check_pair("stride", stride, 1))
        for key in ("kernel", "stride"):
            a, b = getattr(self, key)
            if a != b:
                raise FieldError(key, f"subsampling takes a square {key}, got {a}x{b}")

    def head(self) -> str:
        if self.kernel == (2, 2) and self.stride == (2, 2):
            return "subsample"
        return f"subsample{write_value(self.kernel)}/{write_value(self.stride)}"

    def windows(self):
        return _windows(self.kernel, self.stride, (0, 0), (1, 1))  # type: ignore

    def infer(self, name, shape, hw):
        return (shape[0], *hw), 2 * shape[0], 0

    def module(self, shape):
        from cnnlab.layers import Subsampling

        return Subsampling(shape[0], self.kernel[0], self.stride[0])  # type: ignore[index]

    @classmethod
    def read(cls, m, name):
        from cnnlab.layers import Subsampling

        if type(m) is not Subsampling:
            return None
        return cls(kernel=m.kernel_size, stride=m.stride, name=name)


# --------------------------------------------------------------------------- vectors


@dataclass(frozen=True)
class Flatten(Layer):
    """``flatten``: ``C x H x W -> C*H*W``; implicit before the first fc on a spatial volume."""

    words = (("flatten",),)
    word = "flatten"
    needs_volume = True
    flattens = True
    role = "flatten"

    def infer(self, name, shape, hw):
        c, h, w = shape
        if h is None:
            reader = "flatten" if self.name else "the fc after the convolutions"
            raise SpecError(
                f"{name}: {reader} needs the size of the volume, which depends on the "
                f"input size: pass input_size=(H, W) (or end the convolutions with gap)"
            )
        return (c * h * w,), 0, 0

    def module(self, shape):
        from torch import nn

        return nn.Flatten()

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) is not nn.Flatten:
            return None
        if (m.start_dim, m.end_dim) != (1, -1):
            raise NoNotation("start_dim/end_dim other than 1/-1")
        return cls(name=name)


@dataclass(frozen=True)
class FC(Layer):
    """``fc-4096``: fully connected (linear) layer with ``out`` outputs."""

    words = (("fc", "linear", "dense"),)
    word = "fc"
    param = Param("out", "outputs", "fc-4096")
    options = (Option("bias", "bool"),)
    reads_vector = True
    flattens = True
    role = "fc"

    out: int
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "out", check_int("out", self.out, 1, "width (outputs)"))
        settle(self, "bias", check_bool("bias", self.bias))

    def head(self) -> str:
        return f"fc-{self.out}"

    def infer(self, name, shape, hw):
        (n,) = shape
        return (self.out,), n * self.out + (self.out if self.bias else 0), n * self.out

    def module(self, shape):
        from torch import nn

        return nn.Linear(shape[0], self.out, bias=self.bias)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) is not nn.Linear:
            return None
        return cls(m.out_features, bias=m.bias is not None, name=name)


@dataclass(frozen=True)
class Softmax(Layer):
    """``softmax``: a marker that the network ends in class scores.  The built model returns
    logits (the cross-entropy loss applies softmax); the marker is kept so text round-trips."""

    words = (("softmax",),)
    word = "softmax"
    takes_name = False
    role = "marker"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name is not None:
            raise FieldError("name", "softmax is a marker, not a module: it takes no name")


# The kinds, in the order error messages list their words.
KINDS: tuple[type[Layer], ...] = (
    Conv, Pool, Subsample, GlobalAvgPool, AdaptiveAvgPool, ZeroPad, FC, Activation, BatchNorm,
    LRN, Dropout, Identity, Inception, Residual, Flatten, Softmax,
)  # fmt: skip
