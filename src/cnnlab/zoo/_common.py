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
from cnnlab.errors import CnnlabError, check_int
from cnnlab.layers import (
    ConnectionTableConv2d,
    Inception,
    LocalResponseNorm,
    ScaledTanh,
    Subsampling,
)

__all__ = ["check_choice", "check_count", "checked_input", "input_hw", "trace"]

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
    return check_int(f"{model}: {name}", value)


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


def checked_input(
    model: str, num_classes: object, in_channels: object, input_size: object, native: tuple
) -> tuple[int, int]:
    """The checks every builder makes of its common arguments: ``num_classes`` and
    ``in_channels`` positive integers, and ``input_size`` as ``(H, W)`` (see :func:`input_hw`)."""
    check_count(model, "num_classes", num_classes)
    check_count(model, "in_channels", in_channels)
    return input_hw(model, input_size, native)


def trace(model: str, layers: Layers, hw: tuple[int, int], native: tuple[int, int]) -> tuple:
    """``(H, W)`` after ``layers`` for an ``hw`` input, or a GeometryError naming the layer
    where the volume vanishes and the smallest input that gets through."""
    out = []
    for axis in (0, 1):
        try:
            out.append(_trace_axis(layers, hw[axis], axis))
        except geometry.VanishingVolume as v:
            need = geometry.smallest_input(lambda n, axis=axis: _gets_through(layers, n, axis))
            shown = f"an input of at least {need} {v.unit}" if need else "a larger input"
            raise v.explained(
                f"{model} needs {shown} (native input {native[0]}x{native[1]})",
                where=f"{model}: input {hw[0]}x{hw[1]} is too small: at layer {v.where}",
            ) from None
    return (out[0], out[1])


def _gets_through(layers: Layers, n: int, axis: int) -> bool:
    try:
        _trace_axis(layers, n, axis)
    except geometry.VanishingVolume:
        return False
    return True


def _at(value: object, axis: int) -> int:
    return value[axis] if isinstance(value, tuple | list) else value  # type: ignore[index]


def _window(m: nn.Module, axis: int) -> tuple[geometry.Window, bool, str] | None:
    """The sliding window of a convolution, pooling or subsampling along ``axis``, whether it
    rounds up (``ceil_mode``), and how the message names it (``3x3/2 max pool``); None for any
    other module."""
    if isinstance(m, nn.Conv2d | ConnectionTableConv2d):
        k, s, p, d = (_at(getattr(m, a, 1), axis) for a in ("kernel_size", "stride", "padding",
                                                             "dilation"))  # fmt: skip
        return geometry.Window(k, s, p, d), False, f"{k}x{k}/{s} convolution, pad {p}"
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
        k, s, p = (
            _at(m.kernel_size, axis),
            _at(m.stride or m.kernel_size, axis),
            _at(m.padding, axis),
        )
        d = _at(getattr(m, "dilation", 1), axis)
        kind = "max" if isinstance(m, nn.MaxPool2d) else "average"
        what = f"{k}x{k}/{s} {kind} pool" + (", ceil mode" if m.ceil_mode else "")
        return geometry.Window(k, s, p, d), bool(m.ceil_mode), what
    if isinstance(m, Subsampling):
        what = f"{m.kernel_size}x{m.kernel_size}/{m.stride} subsampling"
        return geometry.Window(m.kernel_size, m.stride), False, what
    return None


def _trace_axis(layers: Layers, n: int, axis: int, prefix: str = "") -> int:
    unit = geometry.axis_units(2)[axis]
    for name, m in layers:
        where = prefix + name
        found = _window(m, axis)
        if found is not None:
            window, ceil_mode, what = found
            size = window.output(n, ceil_mode)
            if size < 1:
                raise geometry.VanishingVolume(f"{where} ({what})", n, window, unit)
            n = size
        elif isinstance(m, _SAME_SIZE):
            continue
        elif isinstance(m, nn.Sequential):
            n = _trace_axis(list(m.named_children()), n, axis, where + ".")
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
        else:  # a zoo bug, not a user mistake
            raise TypeError(f"trace: no size rule for {where} ({type(m).__name__})")
    return n
