"""The layer kinds of the compact notation that set a map's size without sliding a window:
global average pooling (``gap``), adaptive average pooling to a size (``adaptavg6``) and zero
padding (``zeropad2``).  What a kind holds and says: :mod:`cnnlab.notation.layer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.notation._values import (
    FieldError,
    NoNotation,
    Pair,
    as_pair,
    check_int,
    check_pair,
    settle,
    write_value,
)
from cnnlab.notation.layer import Layer, Option

__all__ = ["AdaptiveAvgPool", "GlobalAvgPool", "ZeroPad"]


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """``gap``: average over the whole map, ``C x H x W -> C x 1 x 1`` (Lin et al. 2014)."""

    words = (("gap", "global_avgpool", "globalavgpool"),)
    word = "gap"
    needs_volume = True
    role = "pool"

    def cells(self, axis, n):
        return 1

    def infer(self, name, shape, hw):
        return (shape[0], 1, 1), 0, 0

    def module(self, shape):
        from torch import nn

        return nn.AdaptiveAvgPool2d(1)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) is not nn.AdaptiveAvgPool2d:
            return None
        if as_pair(m.output_size) != (1, 1):
            return None  # adaptavg's
        return cls(name=name)


@dataclass(frozen=True)
class AdaptiveAvgPool(Layer):
    """``adaptavg6``, ``adaptavg6x7``: average each map down to ``size`` (H, W) cells, whatever
    the input's size (PyTorch's adaptive bins); torchvision's AlexNet (6x6) and VGG (7x7) put
    it before the classifier so that any input size gives the fc the same width.  To 1x1 it
    is ``gap``."""

    words = (("adaptavg", "adaptive_avgpool", "adaptiveavgpool"),)
    word = "adaptavg"
    needs_volume = True
    size_field = "size"
    kernel_help = "adaptavg6 averages each map to 6x6 cells (adaptavg6x7: 6 rows, 7 columns)"

    size: Pair = (1, 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "size", check_pair("size", self.size, 1, "output size"))
        if self.size == (1, 1):
            raise FieldError("size", "averaging to 1x1 is global average pooling: write gap")

    def head(self) -> str:
        return f"adaptavg{write_value(self.size)}"

    def prefix(self) -> str:
        return "avgpool"

    def cells(self, axis, n):
        return self.size[axis]

    def infer(self, name, shape, hw):
        return (shape[0], *self.size), 0, 0

    def module(self, shape):
        from torch import nn

        return nn.AdaptiveAvgPool2d(self.size)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) is not nn.AdaptiveAvgPool2d:
            return None
        size = as_pair(m.output_size)
        if any(v is None for v in size):
            raise NoNotation(f"output_size={m.output_size!r} keeps a side of the input")
        return None if size == (1, 1) else cls(size, name=name)


_SIDES = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class ZeroPad(Layer):
    """``zeropad2`` (two zero rows above and below, two zero columns left and right),
    ``zeropad1x2`` (1 row, 2 columns on each side), ``zeropad(top=1,bottom=2,left=1,right=2)``:
    zeros around each map (``nn.ZeroPad2d``), as LeNet-5 centres a 28x28 digit in its 32x32
    input field (LeCun et al. 1998, section II-B).  ``sides``: the (rows, columns) added on
    each side, resolved into the four sides; the options set one side each."""

    words = (("zeropad", "zero_pad"),)
    word = "zeropad"
    size_field = "sides"
    options = tuple(Option(side, "int") for side in _SIDES)
    needs_volume = True

    sides: Pair | None = None
    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sides is not None:
            rows, cols = check_pair("sides", self.sides, 0, "padding")
            given = [side for side in _SIDES if getattr(self, side)]
            if given:
                raise FieldError(
                    "sides",
                    f"the padding is given twice: zeropad{write_value((rows, cols))} sets every "
                    f"side, {given[0]}= one of them again; write one or the other",
                )
            for side, value in zip(_SIDES, (rows, rows, cols, cols), strict=True):
                settle(self, side, value)
            settle(self, "sides", None)
        for side in _SIDES:
            settle(self, side, check_int(side, getattr(self, side), 0, f"{side} padding"))
        if not any(getattr(self, side) for side in _SIDES):
            raise FieldError("sides", "zeropad adds no cells: zeropad2 adds 2 on every side")

    def _symmetric(self) -> bool:
        return self.top == self.bottom and self.left == self.right

    def default(self, name: str) -> Any:
        if name in _SIDES and self._symmetric():
            return getattr(self, name)  # the head writes it
        return super().default(name)

    def head(self) -> str:
        if self._symmetric():
            return f"zeropad{write_value((self.top, self.left))}"
        return "zeropad"

    def cells(self, axis, n):
        return n + (self.top + self.bottom if axis == 0 else self.left + self.right)

    def infer(self, name, shape, hw):
        c, h, w = shape
        if h is None:
            return shape, 0, 0
        return (c, self.cells(0, h), self.cells(1, w)), 0, 0

    def module(self, shape):
        from torch import nn

        return nn.ZeroPad2d((self.left, self.right, self.top, self.bottom))

    @classmethod
    def read(cls, m, name):
        from torch import nn

        if type(m) is not nn.ZeroPad2d:
            return None
        left, right, top, bottom = m.padding
        return cls(top=top, bottom=bottom, left=left, right=right, name=name)
