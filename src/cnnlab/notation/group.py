"""Named groups: a sub-network that is one module, ``[(basic-64)*2](name=layer1)``.

A group in brackets is only a way to repeat layers (``(conv3-64-relu)*2`` is four layers of
the network); with a name it is one module, an ``nn.Sequential`` whose layers are numbered
``0``, ``1``, ... as PyTorch numbers them.  That is how torchvision and the zoo write
ResNet's stages (``layer1.0.conv1.weight``: stage ``layer1``, its first block).  Its layers
keep a ``C x H x W`` volume (no flatten or fc), and take no ``name=`` (they are numbered).

Pure Python except :meth:`Group.module` and :meth:`Group.read` (torch on first use).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from cnnlab.errors import SpecError
from cnnlab.notation._values import FieldError, NoNotation, settle
from cnnlab.notation.layer import Layer, cells_through
from cnnlab.notation.spec import Spec

__all__ = ["Group"]


@dataclass(frozen=True)
class Group(Layer):
    """``(layers)(name=NAME)``: see the module docstring.  ``spec``: the layers (a
    :class:`Spec`, or a tuple of layers, made one); ``name`` is required.  ``text_``: the
    source, for carets (not part of equality)."""

    needs_volume = True
    role = "conv"  # counted like a conv of its stage
    keeps_name = True  # the name is what makes it one module: the text always writes it

    spec: Spec | tuple = ()
    text_: str = field(default="", compare=False, repr=False)

    words: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name is None:
            raise FieldError("name", "a group is one module only with a name: (...)(name=...)")
        spec = self.spec if isinstance(self.spec, Spec) else Spec(tuple(self.spec), self.text_)
        for layer in spec.layers:
            if layer.keeps_name:
                raise SpecError(
                    "a named group cannot hold another named group (its layers are numbered "
                    "0, 1, ...); write the inner layers in it directly",
                    self.text_,
                    layer.pos,
                )
            if layer.flattens or layer.role == "marker":
                raise SpecError(
                    "a named group's layers must keep a C x H x W volume (no flatten, fc or "
                    "softmax inside it)",
                    self.text_,
                    layer.pos,
                )
            if layer.name is not None:
                raise SpecError(
                    "the layers of a named group are numbered 0, 1, ... (as nn.Sequential "
                    f"numbers them); they take no name=, got name={layer.name}",
                    self.text_,
                    layer.pos,
                )
        settle(self, "spec", spec)

    @property
    def depth(self) -> int:
        return 1 + max(layer.depth for layer in self.spec.layers)

    def head(self) -> str:
        inner = self.spec.canonical()
        return f"[{inner}]" if "(" in inner or "[" in inner else f"({inner})"

    def prefix(self) -> str:
        return "group"

    def cells(self, axis, n):
        return cells_through(self.spec.layers, axis, n)

    def infer(self, name, shape, hw):
        c, h, w = shape
        steps = self.spec.infer(c, None if h is None else (h, w))
        params = sum(s.params for s in steps)
        macs = None if any(s.macs is None for s in steps) else sum(s.macs for s in steps)
        return steps[-1].output, params, macs

    def module(self, shape):
        from torch import nn

        c, h, w = shape
        steps = self.spec.infer(c, None if h is None else (h, w))
        return nn.Sequential(*(s.layer.module(s.input) for s in steps))

    @classmethod
    def read(cls, m, name):
        from torch import nn

        from cnnlab.notation.formatter import _layer_of

        if type(m) is not nn.Sequential:
            return None
        keys = list(m._modules)
        if not keys:
            raise NoNotation("an empty nn.Sequential")
        if keys != [str(i) for i in range(len(keys))]:
            raise NoNotation("children not numbered 0, 1, ...; a named group numbers its layers")
        layers = [
            dataclasses.replace(_layer_of(k, child), name=None) for k, child in m._modules.items()
        ]
        return cls(tuple(layers), name=name)

    def where(self, name: str | None) -> str:
        return f"{name} (a group)"
