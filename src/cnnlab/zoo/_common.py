"""Private helpers of the zoo builders: argument checks, and building a family's notation.

Every family is written in the compact notation (:mod:`cnnlab.notation`), whose inference
sizes each layer with :mod:`cnnlab.geometry` (pure integer arithmetic, no forward pass), so the
first fully connected layer gets its width from the input size, and a network built for an
input too small for it fails at build time (:func:`build`) with a
:class:`~cnnlab.errors.GeometryError` naming the layer where the volume vanishes and the
smallest input that works (:func:`too_small`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from torch import nn

from cnnlab import geometry
from cnnlab.errors import CnnlabError, check_int
from cnnlab.notation import build_spec
from cnnlab.notation.build import PlannedBuild

__all__ = ["build", "check_choice", "check_count", "checked_input", "input_hw", "too_small"]


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


def too_small(
    model: str,
    vanished: geometry.VanishingVolume,
    hw: tuple[int, int],
    native: tuple[int, int],
    need: int | None = None,
    where: str | None = None,
) -> geometry.VanishingVolume:
    """The zoo's "input too small" message for a volume that vanished while building
    ``model`` for an ``hw`` input: ``{model}: input HxW is too small: at layer {where}: ...;
    {model} needs an input of at least N row(s) (native input HxW)``.  ``need`` and ``where``
    default to what the notation found (the smallest input of the whole network, the layer)."""
    return vanished.needs(
        model,
        vanished.need if need is None else need,
        note=f" (native input {native[0]}x{native[1]})",
        where=f"{model}: input {hw[0]}x{hw[1]} is too small: at layer {where or vanished.where}",
    )


def build(
    model: str,
    text: str,
    *,
    in_channels: int,
    hw: tuple[int, int],
    native: tuple[int, int],
    num_classes: int | None = None,
    into: type[nn.Sequential] | None = None,
) -> nn.Sequential:
    """Build the zoo's notation ``text`` with PyTorch's default initialisation (the zoo's
    builders then initialise as their papers do) for an ``in_channels x H x W`` input.  The
    notation sizes every layer with :mod:`cnnlab.geometry`; an input too small fails here with
    :func:`too_small`'s message.  ``into``: a :class:`~cnnlab.notation.SpecNet` subclass that
    takes the built modules (``AlexNet``), so the model keeps its family's type name."""
    try:
        net = build_spec(text, in_channels=in_channels, input_size=hw, num_classes=num_classes,
                         init="torch")  # fmt: skip
    except geometry.VanishingVolume as v:
        raise too_small(model, v, hw, native) from None
    except PlannedBuild as planned:  # under plan_build: the plan is of the family's class
        if into is not None:
            planned.plan = planned.plan.named(into)
        raise
    # _modules, not named_children(): a module registered twice would be listed once.
    return net if into is None else into(OrderedDict(net._modules))
