"""The layer kinds of the compact notation that are whole modules of the recent architectures:
GoogLeNet's Inception module and ResNet's residual blocks.

- ``inception(64,96,128,16,32,32)``: the six widths of a row of GoogLeNet's Table 1
  (Szegedy et al. 2015), built as :class:`cnnlab.layers.Inception`;
- ``basic-64``, ``basic-128/2``, ``bottleneck-64``, ``bottleneck-128/2(variant=v1)``: ResNet's
  blocks (He et al. 2016, Fig. 2, Fig. 5 and Table 1), built as
  :class:`cnnlab.layers.BasicBlock` and :class:`cnnlab.layers.Bottleneck`, with the paper's
  shortcut options (section 3.3).

Each builds the layers package's module, so a network written with them has the state_dict
names of the zoo (and of torchvision): ``branch3x3.reduce.weight``, ``conv1.weight``,
``downsample.0.weight``.  The general branch-and-merge form for other ideas is
:class:`~cnnlab.notation.branch.Branch`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab import geometry
from cnnlab.errors import SpecError
from cnnlab.notation._values import (
    FieldError,
    NoNotation,
    Pair,
    check_bool,
    check_int,
    check_pair,
    settle,
    write_value,
)
from cnnlab.notation.layer import Layer, Option, Param

__all__ = ["Inception", "Residual"]

_WIDTHS = ("n1x1", "n3x3_reduce", "n3x3", "n5x5_reduce", "n5x5", "pool_proj")


@dataclass(frozen=True)
class Inception(Layer):
    """``inception(64,96,128,16,32,32)``: GoogLeNet's Inception module (Szegedy et al. 2015,
    Fig. 2(b)) with the six widths of its Table 1 row, in the table's order: #1x1, #3x3
    reduce, #3x3, #5x5 reduce, #5x5, pool proj.

    Four paths over the same input, each conv followed by ReLU, concatenated along the
    channels: 1x1; 1x1 reduce then 3x3; 1x1 reduce then a real 5x5; 3x3/1 max pool then a 1x1
    projection.  H and W are kept; the output has ``n1x1 + n3x3 + n5x5 + pool_proj`` maps.
    Convolutions have biases, as in the paper.  The same module written as a branch is
    ``{conv1-64-relu | conv1-96-relu-conv3-128-relu | conv1-16-relu-conv5-32-relu |
    maxpool3/1(pad=1)-conv1-32-relu}cat`` (other module names).
    """

    words = (("inception",),)
    word = "inception"
    widths = _WIDTHS
    widths_help = (
        "inception(64,96,128,16,32,32) is #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, "
        "pool proj (GoogLeNet's Table 1, inception 3a)"
    )
    needs_volume = True
    role = "conv"

    n1x1: int
    n3x3_reduce: int
    n3x3: int
    n5x5_reduce: int
    n5x5: int
    pool_proj: int

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in _WIDTHS:
            settle(self, key, check_int(key, getattr(self, key), 1, f"width {key}"))

    def head(self) -> str:
        return f"inception({','.join(str(getattr(self, k)) for k in _WIDTHS)})"

    def prefix(self) -> str:
        return "inception"

    def _convs(self, c: int) -> list[tuple[int, int, int]]:
        """(in, out, kernel side) of each convolution."""
        return [
            (c, self.n1x1, 1),
            (c, self.n3x3_reduce, 1),
            (self.n3x3_reduce, self.n3x3, 3),
            (c, self.n5x5_reduce, 1),
            (self.n5x5_reduce, self.n5x5, 5),
            (c, self.pool_proj, 1),
        ]

    def infer(self, name, shape, hw):
        c, h, w = shape
        convs = self._convs(c)
        params = sum(i * o * k * k + o for i, o, k in convs)
        weights = sum(i * o * k * k for i, o, k in convs)  # per output cell, all keep H x W
        macs = None if h is None else h * w * weights
        out = self.n1x1 + self.n3x3 + self.n5x5 + self.pool_proj
        return (out, h, w), params, macs

    def module(self, shape):
        from cnnlab import layers

        return layers.Inception(shape[0], *(getattr(self, k) for k in _WIDTHS))

    @classmethod
    def read(cls, m, name):
        from cnnlab import layers

        if type(m) is not layers.Inception:
            return None
        b3, b5, bp = m.branch3x3, m.branch5x5, m.branch_pool
        if not (hasattr(b3, "reduce") and hasattr(b5, "reduce") and hasattr(bp, "proj")):
            raise NoNotation("a naive module (no 1x1 reduction or projection)")
        return cls(m.branch1x1.conv.out_channels, b3.reduce.out_channels, b3.conv.out_channels,
                   b5.reduce.out_channels, b5.conv.out_channels, bp.proj.out_channels,
                   name=name)  # fmt: skip


# The same choices as cnnlab.layers.SHORTCUTS and VARIANTS (a test holds them equal), written
# here because parsing imports no torch and the layers package does.
SHORTCUTS = ("A", "B", "C")
VARIANTS = ("v1.5", "v1")


@dataclass(frozen=True)
class Residual(Layer):
    """``basic-64``, ``basic-128/2``, ``bottleneck-64``, ``bottleneck-128/2``: ResNet's residual
    blocks (He et al. 2016).  The number is the block's planes; a bottleneck outputs 4x as
    many maps (``bottleneck-64``: 1x1-64, 3x3-64, 1x1-256, Table 1's conv2_x).  ``/2``: the
    block's stride (the first block of a stage that halves the map).

    - basic: 3x3 conv (stride) - bn - relu - 3x3 conv - bn, plus the shortcut, then relu;
    - bottleneck: 1x1 - bn - relu - 3x3 - bn - relu - 1x1 (4x) - bn, plus the shortcut, then
      relu.  ``variant``: where a strided bottleneck strides, ``v1.5`` (default) on the 3x3 as
      torchvision, ``v1`` on the first 1x1 as the paper's Caffe models (the same parameters,
      fewer multiply-adds).  A block of stride 1 has no variant (both are the same).
    - ``shortcut`` (section 3.3): ``A`` the identity, zero-padded with new maps and subsampled
      where the shape changes (no parameters); ``B`` (default) a 1x1 conv + bn projection
      where the shape changes, else the identity; ``C`` a projection always.

    Convolutions have no bias (bn follows each).  Output ``(out, ceil(H/s), ceil(W/s))``.
    """

    words = (("basic", "basicblock"), ("bottleneck",))
    word = "basic"
    windowed = True
    takes_kernel = False
    param = Param("planes", "planes", "basic-64")
    options = (
        Option("stride", "pair"),
        Option("shortcut", "choice", choices=SHORTCUTS),
        Option("variant", "choice", choices=VARIANTS),
    )
    needs_volume = True
    role = "conv"

    planes: int
    stride: Pair = (1, 1)
    shortcut: str = "B"
    variant: str = "v1.5"
    bottleneck: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        settle(self, "planes", check_int("planes", self.planes, 1, "width (planes)"))
        settle(self, "stride", check_pair("stride", self.stride, 1))
        settle(self, "bottleneck", check_bool("bottleneck", self.bottleneck))
        if self.stride[0] != self.stride[1]:
            raise FieldError("stride", f"a residual block takes a square stride, got "
                             f"{write_value(self.stride)}")  # fmt: skip
        if self.shortcut not in SHORTCUTS:
            raise FieldError(
                "shortcut",
                f"shortcut must be A (zero-padded identity), B (projection where the shape "
                f"changes) or C (projection always), got {self.shortcut!r}",
            )
        if self.variant not in VARIANTS:
            raise FieldError("variant", f"variant must be v1.5 or v1, got {self.variant!r}")
        if self.variant != "v1.5" and not self.bottleneck:
            raise FieldError(
                "variant",
                "a basic block strides on its first 3x3 either way: variant is a bottleneck's",
            )
        if self.stride == (1, 1):
            settle(self, "variant", "v1.5")  # nothing strides: v1 and v1.5 are one block

    @classmethod
    def fixed_by_word(cls, word):
        return {"bottleneck": word == "bottleneck"}

    @property
    def out(self) -> int:
        """The maps the block outputs."""
        return self.planes * (4 if self.bottleneck else 1)

    def head(self) -> str:
        stride = f"/{write_value(self.stride)}" if self.stride != (1, 1) else ""
        return f"{'bottleneck' if self.bottleneck else 'basic'}-{self.planes}{stride}"

    def prefix(self) -> str:
        return "block"

    def windows(self):
        # The strided conv decides the output size: a 3x3 pad 1, or v1's 1x1 pad 0; both
        # give ceil(n / s), as the shortcut does.
        s = self.stride[0]
        k, p = (1, 0) if self.variant == "v1" else (3, 1)
        return (geometry.Window(k, s, p), geometry.Window(k, s, p))

    def _projects(self, c: int) -> bool:
        changes = self.stride != (1, 1) or c != self.out
        return self.shortcut == "C" or (self.shortcut == "B" and changes)

    def infer(self, name, shape, hw):
        c, h, w = shape
        p, out = self.planes, self.out
        if self.shortcut == "A" and c > out:
            raise SpecError(
                f"{self.where(name)}: a zero-padding shortcut (A) cannot reduce {c} maps to "
                f"{out}; use shortcut=B (a projection)"
            )
        if self.bottleneck:
            # (MACs per cell of the input map, per cell of the output map)
            at_in, at_out = (0, c * p) if self.variant == "v1" else (c * p, 0)
            at_out += 9 * p * p + p * out
            weights = c * p + 9 * p * p + p * out
            bn = 2 * (p + p + out)
        else:
            at_in, at_out = 0, 9 * c * p + 9 * p * p
            weights, bn = at_out, 4 * p
        if self._projects(c):
            at_out += c * out
            weights += c * out
            bn += 2 * out
        macs = None if h is None else h * w * at_in + hw[0] * hw[1] * at_out
        return (out, *hw), weights + bn, macs

    def module(self, shape):
        from cnnlab import layers

        if self.bottleneck:
            return layers.Bottleneck(shape[0], self.planes, self.stride[0], self.shortcut,
                                     self.variant)  # fmt: skip
        return layers.BasicBlock(shape[0], self.planes, self.stride[0], self.shortcut)

    @classmethod
    def read(cls, m, name):
        from torch import nn

        from cnnlab import layers

        if type(m) not in (layers.BasicBlock, layers.Bottleneck):
            return None
        bottleneck = type(m) is layers.Bottleneck
        out = m.out_channels
        changes = m.stride != 1 or m.in_channels != out
        down = m.downsample
        if down is None:
            if changes:
                raise NoNotation("no shortcut where the shape changes")
            shortcut = "B"  # or A: an identity either way
        elif type(down) is layers.ZeroPadShortcut:
            shortcut = "A"
        elif type(down) is nn.Sequential:
            shortcut = "B" if changes else "C"
        else:
            raise NoNotation(f"a {type(down).__name__} shortcut")
        planes = m.conv1.out_channels
        variant = m.variant if bottleneck else "v1.5"
        return cls(planes, m.stride, shortcut, variant, bottleneck, name=name)
