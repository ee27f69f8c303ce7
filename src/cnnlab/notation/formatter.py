"""Formatter of the compact notation: a Spec, or a model built from one, -> canonical text.

A model is read module by module (its ``nn.Sequential`` children, in order): each module's
hyperparameters become one layer of the notation, and module names that differ from the
naming rule become ``name=`` options, so the text builds the same network with the same
``state_dict`` keys.  Runs of identical layers are folded into repetitions
(``(conv3-512-relu)*3``), nested where the text repeats at two levels, with ``(...)`` for the
innermost groups and ``[...]`` around them, as in the lecture's pattern.

The text is canonical: ``format_spec(parse_spec(s))`` is a fixed point of
``format_spec(parse_spec(.))``, because the intermediate form is canonical and formatting is a
deterministic function of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.errors import SpecError
from cnnlab.notation._values import NoNotation
from cnnlab.notation.branch import Branch
from cnnlab.notation.group import Group
from cnnlab.notation.kinds import KINDS, Layer, Softmax
from cnnlab.notation.parser import parse_spec
from cnnlab.notation.spec import Spec

if TYPE_CHECKING:
    from torch import nn

__all__ = ["format_spec", "spec_from_module"]


def format_spec(obj: Spec | str | nn.Module, compact: bool = True) -> str:
    """Canonical text of a :class:`Spec`, of spec text, or of a model built from a spec.

    ``compact=False`` writes every layer out instead of folding repetitions.  A model must be
    an ``nn.Sequential`` of layers the notation knows (Conv2d, MaxPool2d, AvgPool2d,
    AdaptiveAvgPool2d, ZeroPad2d, ReLU, Tanh, Sigmoid, BatchNorm1d/2d, Dropout, Flatten, Linear,
    Identity, cnnlab's ScaledTanh, LocalResponseNorm, Subsampling, ConnectionTableConv2d, Inception,
    BasicBlock and Bottleneck, the notation's branches, and plain ``nn.Sequential`` children
    numbered 0, 1, ... as named groups); anything else raises :class:`SpecError` naming the
    module.
    """
    if isinstance(obj, Spec):
        spec = obj
    elif isinstance(obj, str):
        spec = parse_spec(obj)
    else:
        spec = spec_from_module(obj)
    return spec.canonical(compact)


# --------------------------------------------------------------------------- reading a model


def spec_from_module(model: nn.Module) -> Spec:
    """The :class:`Spec` of an ``nn.Sequential`` whose children the notation knows.

    Module names become explicit names (dropped again where they equal the naming rule's).
    The softmax marker comes from the ``ends_with_softmax`` flag that
    :func:`~cnnlab.notation.build.build_spec` sets on its models.
    """
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise SpecError(
            f"format_spec reads an nn.Sequential (what build_spec makes), whose order of "
            f"modules is the order they run in; got {type(model).__name__}"
        )
    # _modules, not named_children(): a module object registered twice (shared weights)
    # would be listed once by named_children() and silently lost.
    layers = [_layer_of(name, module) for name, module in model._modules.items()]
    if getattr(model, "ends_with_softmax", False):
        layers.append(Softmax())
    if not layers:
        raise SpecError("format_spec: the model has no layers")
    return Spec(tuple(layers))


def _layer_of(name: str, m: nn.Module) -> Layer:
    """The layer of the first kind that reads ``m`` back (see ``Layer.read``)."""
    try:
        for kind in (*KINDS, Branch, Group):
            layer = kind.read(m, name)
            if layer is not None:
                return layer
    except NoNotation as exc:
        why = f": {exc.why}"
    except SpecError as exc:  # the module holds values the notation refuses
        raise SpecError(f"module {name!r} ({type(m).__name__}): {exc.reason}") from None
    else:
        why = ""
    raise SpecError(f"module {name!r} ({type(m).__name__}{why}) has no compact notation")
