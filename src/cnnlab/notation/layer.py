"""What every layer kind of the compact notation is: the :class:`Layer` base class.

A kind is a frozen dataclass whose fields are *resolved* hyperparameters (a conv written
``conv3-64`` stores ``padding=(1, 1)``, not "same"; pairs are ``(height, width)``), so two
spellings of one layer compare equal.  The field defaults are the notation's defaults.  Besides
its fields, each kind's class says, in one place:

- ``words``: how the text names it (canonical spelling first, then aliases, per word);
- what the text may write after the word: a kernel and ``/stride`` (``windowed``) or an
  output size (``size_field``: ``adaptavg6``), a number after ``-`` (``param``), and the
  ``options`` in brackets (``name=`` is always allowed);
- :meth:`~Layer.head` and :meth:`~Layer.text`: its canonical text (options at their default
  left out);
- :meth:`~Layer.infer`: output shape, parameters and multiply-adds (pure integer math);
- :meth:`~Layer.module`: the ``nn.Module`` it builds, and :meth:`~Layer.read`: which module
  reads back to it;
- ``role`` and :meth:`~Layer.prefix`: its part in the naming rule of
  :mod:`cnnlab.notation._naming`.

The kinds themselves are in :mod:`cnnlab.notation.kinds` (windows and vectors),
:mod:`cnnlab.notation.sizes` (global and adaptive pooling, zero padding),
:mod:`cnnlab.notation.elementwise` and :mod:`cnnlab.notation.blocks` (Inception, residual
blocks); the structural nodes in :mod:`cnnlab.notation.branch` and
:mod:`cnnlab.notation.group`; adding one means one class there, listed in
:data:`~cnnlab.notation.kinds.KINDS`, plus its tests.  Torch is imported only inside
:meth:`~Layer.module` and :meth:`~Layer.read`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from cnnlab import geometry
from cnnlab.notation._values import FieldError, write_value

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Layer", "Option", "Param", "Shape", "cells_through", "layer_text"]

Shape = tuple[Any, ...]  # (C, H, W) with H, W None when unknown, or (features,)


@dataclass(frozen=True)
class Option:
    """An option written ``key=value`` in brackets; it sets the field ``field`` (default: the
    key).  ``value``: how it is read: ``pair`` (3 or 1x7), ``pad`` (a pair, ``same`` or
    ``valid``), ``int``, ``float``, ``bool``, ``table`` (a connection table:
    ``lenet5`` or rows of input maps, ``0+1+2/1+2+3``) or ``choice`` (one of ``choices``,
    case-insensitive: ``shortcut=A``, ``variant=v1``)."""

    key: str
    value: str
    field: str = ""
    choices: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        return self.field or self.key


@dataclass(frozen=True)
class Param:
    """The number written after ``-`` (``conv3-64``, ``dropout-0.4``), setting ``field``.

    ``example`` given: the number is required and whole (a width); else it is optional.
    """

    field: str
    what: str  # "filters", "outputs", "dropout probability"
    example: str = ""


@dataclass(frozen=True)
class Layer:
    """Base of the layer kinds.  ``name``: an explicit module name (None: the naming rule).
    ``pos``: character offset in the source text, for error carets (not part of equality)."""

    words: ClassVar[tuple[tuple[str, ...], ...]] = ()
    word: ClassVar[str] = ""  # the canonical word of the kind
    windowed: ClassVar[bool] = False  # a kernel and /stride after the word; a sliding window
    param: ClassVar[Param | None] = None
    options: ClassVar[tuple[Option, ...]] = ()
    takes_name: ClassVar[bool] = True
    needs_volume: ClassVar[bool] = False  # refused after flatten/fc
    reads_vector: ClassVar[bool] = False  # a flatten is inserted before it on a volume
    flattens: ClassVar[bool] = False  # the data is a flat vector after it
    role: ClassVar[str] = "follows"  # naming rule: conv, pool, fc, flatten, marker, follows
    kernel_help: ClassVar[str] = ""  # set: the text must write a kernel (how, for the message)
    size_field: ClassVar[str] = ""  # set: the number after the word sets this field, not a window
    keeps_name: ClassVar[bool] = False  # its name is part of what it is (a named group)
    takes_kernel: ClassVar[bool] = True  # False: windowed, but the text writes only a /stride
    # Set: the word is followed at once by these whole-number fields in brackets, in order
    # (``inception(64,96,128,16,32,32)``); ``widths_help`` says how, for the message.
    widths: ClassVar[tuple[str, ...]] = ()
    widths_help: ClassVar[str] = ""

    name: str | None = field(default=None, kw_only=True)
    pos: int | None = field(default=None, kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.name is not None and (
            not isinstance(self.name, str)
            or not self.name
            or not (self.name.isascii() and self.name.replace("_", "a").isalnum())
        ):
            raise FieldError(
                "name",
                f"a layer name must be letters, digits and '_' (it becomes a state_dict key), "
                f"got {self.name!r}",
            )

    @classmethod
    def fixed_by_word(cls, word: str) -> dict[str, Any]:
        """Fields the canonical ``word`` itself sets (``avgpool``: op="avg")."""
        return {}

    # -- text ----------------------------------------------------------------------------

    def head(self) -> str:
        """The text before the options: ``conv3/2-64``, ``maxpool3/2``, ``fc-10``."""
        return self.word

    def default(self, name: str) -> Any:
        """The value of field ``name`` that the text leaves out."""
        return next(f.default for f in dataclasses.fields(self) if f.name == name)

    def text(self, with_name: bool = True) -> str:
        """The canonical notation: the head, then the options not at their default."""
        in_head = {"stride"} if self.windowed else set()
        if self.param is not None:
            in_head.add(self.param.field)
        opts = [
            f"{o.key}={self.option_text(o.target, getattr(self, o.target))}"
            for o in self.options
            if o.target not in in_head and getattr(self, o.target) != self.default(o.target)
        ]
        if with_name and self.name is not None:
            opts.append(f"name={self.name}")
        return self.head() + (f"({','.join(opts)})" if opts else "")

    def option_text(self, field: str, value: Any) -> str:
        """How the text writes the value of option field ``field``."""
        return write_value(value)

    # -- shapes, modules, naming ----------------------------------------------------------

    def windows(self) -> tuple[geometry.Window, geometry.Window]:
        """The sliding window along height and width (windowed kinds only)."""
        raise TypeError(f"{type(self).__name__} has no window")

    def rounds_up(self) -> bool:
        """Whether the window's output size rounds up (PyTorch's ``ceil_mode``)."""
        return False

    def cells(self, axis: int, n: int) -> int:
        """Cells along spatial ``axis`` after this layer for ``n`` before (< 1: vanished)."""
        return self.windows()[axis].output(n, self.rounds_up()) if self.windowed else n

    def infer(self, name: str | None, shape: Shape, hw: tuple) -> tuple[Shape, int, int | None]:
        """``(output shape, parameters, MACs)`` for an input ``shape``.  ``hw``: the output
        (H, W) of a windowed kind, sized by the caller with :mod:`cnnlab.geometry`."""
        return shape, 0, 0

    def module(self, shape: Shape) -> nn.Module:
        """The ``nn.Module`` this layer builds for an input of ``shape``."""
        raise TypeError(f"{type(self).__name__} builds no module")

    @classmethod
    def read(cls, m: nn.Module, name: str) -> Layer | None:
        """The layer a module reads back to, None if the module is not of this kind, or
        :class:`NoNotation` if it is but has settings the notation cannot write."""
        return None

    def prefix(self) -> str:
        """The naming rule's prefix for a layer named after the one before it."""
        return self.word

    @property
    def depth(self) -> int:
        """How deep layers nest in this one (0: a plain layer; a branch or a group: one more
        than the deepest layer inside)."""
        return 0

    def where(self, name: str | None) -> str:
        """How messages name this layer: ``conv1_2 (conv3-64)``."""
        return f"{name} ({self.text(with_name=False)})"


def layer_text(layer: Layer, with_name: bool = True) -> str:
    """The canonical notation of one layer: defaults left out, options in a fixed order."""
    if not isinstance(layer, Layer) or type(layer) is Layer:
        raise TypeError(f"not a spec layer: {layer!r}")
    return layer.text(with_name)


def cells_through(layers: Sequence[Layer], axis: int, n: int) -> int:
    """Cells along spatial ``axis`` after ``layers`` in order, for ``n`` before; the first
    value below 1 (the volume vanished there) is returned as soon as it appears."""
    for layer in layers:
        n = layer.cells(axis, n)
        if n < 1:
            return n
    return n
