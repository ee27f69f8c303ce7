"""Private helpers of the zoo builders: argument checks and build-time shape tracing.

:func:`trace` follows an input's height and width through a list of named layers with
:mod:`cnnlab.geometry` (pure integer arithmetic, no forward pass), so a builder knows the size
its first fully connected layer needs, and a network built for an input too small for it
fails at build time with a :class:`~cnnlab.errors.GeometryError` naming the layer where the
volume vanishes and the smallest input that works.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

from cnnlab import geometry
from cnnlab.errors import CnnlabError, GeometryError
from cnnlab.layers import (
    BasicBlock,
    Bottleneck,
    ConnectionTableConv2d,
    Inception,
    LocalResponseNorm,
    ScaledTanh,
    Subsampling,
)

__all__ = ["check_choice", "check_count", "input_hw", "trace"]

Layers = Sequence[tuple[str, nn.Module]]

# Layers that keep the spatial size (elementwise or across channels only).
_SAME_SIZE = (
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    nn.Dropout,
    nn.BatchNorm2d,
    nn.LocalResponseNorm,
    LocalResponseNorm,
    ScaledTanh,
)


def check_count(model: str, name: str, value: object) -> int:
    """A positive integer option (``num_classes``, ``in_channels``...), or a CnnlabError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CnnlabError(f"{model}: {name} must be a positive integer, got {value!r}")
    return value


def check_choice(model: str, name: str, value: object, choices: Iterable[object]) -> None:
    choices = tuple(choices)
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise CnnlabError(f"{model}: {name} must be one of {shown}, got {value!r}")


def input_hw(model: str, input_size: object, native: tuple[int, int]) -> tuple[int, int]:
    """``input_size`` as ``(H, W)``: None gives the native size, an int a square input."""
    if input_size is None:
        return native
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if (
        not isinstance(input_size, tuple | list)
        or len(input_size) != 2
        or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in input_size)
    ):
        raise CnnlabError(
            f"{model}: input_size must be a positive int or a pair (H, W) of positive ints, "
            f"got {input_size!r}"
        )
    return (input_size[0], input_size[1])


def trace(model: str, layers: Layers, hw: tuple[int, int], native: tuple[int, int]) -> tuple:
    """``(H, W)`` after ``layers`` for an ``hw`` input, or a GeometryError naming the layer
    where the volume vanishes and the smallest square input that gets through."""
    out = []
    for axis in (0, 1):
        try:
            out.append(_trace_axis(layers, hw[axis], axis))
        except _Vanish as v:
            dim = ("height", "width")[axis]
            raise GeometryError(
                f"{model}: input {hw[0]}x{hw[1]} is too small: at layer {v.where} ({v.what}) "
                f"a {dim} of {v.size} gives {v.formula}, so the volume vanishes; {model} "
                f"needs an input {dim} of at least {_smallest(layers, axis)} (native input "
                f"{native[0]}x{native[1]})"
            ) from None
    return (out[0], out[1])


class _Vanish(Exception):
    def __init__(self, where: str, what: str, size: int, formula: str):
        super().__init__(where)
        self.where, self.what, self.size, self.formula = where, what, size, formula


def _smallest(layers: Layers, axis: int, limit: int = 4096) -> int | str:
    for n in range(1, limit + 1):
        try:
            _trace_axis(layers, n, axis)
            return n
        except _Vanish:
            continue
    return f"more than {limit}"


def _at(value: object, axis: int) -> int:
    return value[axis] if isinstance(value, tuple | list) else value  # type: ignore[index]


def _window(name, what, n, kernel, stride, padding=0, dilation=1, ceil_mode=False) -> int:
    out = geometry.output_size(n, kernel, stride, padding, dilation, ceil_mode)
    if out < 1:
        f = geometry.fit(n, kernel, stride, padding, dilation)
        raise _Vanish(name, what, n, f"{f.formula()} < 1")
    return out


def _trace_axis(layers: Layers, n: int, axis: int, prefix: str = "") -> int:
    for name, m in layers:
        where = prefix + name
        if isinstance(m, _SAME_SIZE):
            continue
        if isinstance(m, nn.Sequential):
            n = _trace_axis(list(m.named_children()), n, axis, where + ".")
        elif isinstance(m, nn.Conv2d | ConnectionTableConv2d):
            k, s, p = (_at(getattr(m, a), axis) for a in ("kernel_size", "stride", "padding"))
            d = _at(getattr(m, "dilation", 1), axis)
            n = _window(where, f"{k}x{k}/{s} convolution, pad {p}", n, k, s, p, d)
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            k = _at(m.kernel_size, axis)
            s = _at(m.stride or m.kernel_size, axis)
            p = _at(m.padding, axis)
            d = _at(getattr(m, "dilation", 1), axis)
            kind = "max" if isinstance(m, nn.MaxPool2d) else "average"
            what = f"{k}x{k}/{s} {kind} pool" + (", ceil mode" if m.ceil_mode else "")
            n = _window(where, what, n, k, s, p, d, m.ceil_mode)
        elif isinstance(m, Subsampling):
            what = f"{m.kernel_size}x{m.kernel_size}/{m.stride} subsampling"
            n = _window(where, what, n, m.kernel_size, m.stride)
        elif isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            size = _at(m.output_size, axis)
            n = n if size is None else size
        elif isinstance(m, nn.ZeroPad2d | nn.ConstantPad2d):
            left, right, top, bottom = m.padding
            n += (top + bottom) if axis == 0 else (left + right)
        elif isinstance(m, Inception):
            sizes = {
                _trace_axis(list(b.named_children()), n, axis, f"{where}.{bname}.")
                for bname, b in m.named_children()
            }
            n = sizes.pop()  # every branch keeps the size, so there is one
        elif isinstance(m, BasicBlock | Bottleneck):
            convs = [c for c in ("conv1", "conv2", "conv3") if hasattr(m, c)]
            n = _trace_axis([(c, getattr(m, c)) for c in convs], n, axis, where + ".")
        else:  # a zoo bug, not a user mistake
            raise TypeError(f"trace: no size rule for {where} ({type(m).__name__})")
    return n
