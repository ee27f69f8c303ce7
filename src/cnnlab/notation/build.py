"""Build a PyTorch network from the compact notation: Spec -> ``nn.Sequential``.

The layer sizes come from :meth:`Spec.infer` (pure integer arithmetic with
:mod:`cnnlab.geometry`), so a fully connected layer's input size is known before any tensor
exists, and an input too small for the network fails here, naming the layer, not at the
first forward pass.
"""

from __future__ import annotations

import contextvars
import gc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from cnnlab.errors import SpecError
from cnnlab.layers.init import apply_init
from cnnlab.notation.kinds import Softmax
from cnnlab.notation.parser import parse_with_counts
from cnnlab.notation.spec import Spec

__all__ = [
    "INITS", "BranchModule", "BuildPlan", "PlannedBuild", "SpecNet", "build_spec", "not_a_spec",
    "plan_build",
]  # fmt: skip

INITS = ("he", "torch")
_KEYWORDS = ("in_channels", "input_size", "num_classes", "init")


class SpecNet(nn.Sequential):
    """An ``nn.Sequential`` built from a spec; its modules are named by the spec's naming rule.

    ``forward`` returns what the last layer computes: for a spec that ends with ``softmax``
    these are the class scores (logits); apply ``torch.softmax(logits, dim=1)`` for
    probabilities (``nn.CrossEntropyLoss`` applies log-softmax itself).
    ``ends_with_softmax`` records the marker so that :func:`format_spec` can write it back.
    """

    def __init__(self, *args, ends_with_softmax: bool = False):
        super().__init__(*args)
        self.ends_with_softmax = bool(ends_with_softmax)

    def extra_repr(self) -> str:
        return "ends_with_softmax=True" if self.ends_with_softmax else ""


class BranchModule(nn.Module):
    """A branch of the notation (``{a | b}cat``, ``{a | b}add``): each path (a
    :class:`SpecNet`, child ``path1``, ``path2``, ...) runs on the input; the outputs are
    concatenated along the channels (``cat``) or summed (``add``)."""

    def __init__(self, paths: list[nn.Module], merge: str):
        super().__init__()
        for i, path in enumerate(paths, start=1):
            self.add_module(f"path{i}", path)
        self.merge = merge

    @property
    def paths(self) -> list[nn.Module]:
        return list(self.children())

    def forward(self, x):
        import torch

        outs = [path(x) for path in self.children()]
        if self.merge == "cat":
            return torch.cat(outs, dim=1)
        total = outs[0]
        for out in outs[1:]:
            total = total + out  # not in place: hooks may hold the first path's output
        return total

    def extra_repr(self) -> str:
        return f"merge={self.merge}"


def build_spec(
    spec: Spec | str,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    init: str = "he",
    **counts: int,
) -> SpecNet:
    """Build a CPU float32 network from a spec (text or :class:`Spec`).

    ``in_channels``: channels of the input image.  ``input_size``: ``(H, W)`` or an int; it
    sizes the first fc that reads a volume (without it such a spec raises
    :class:`SpecError`), and an input too small raises :class:`GeometryError` naming the layer
    where the volume vanishes.  ``num_classes`` replaces the width of the last fc.
    ``counts`` bind symbolic repetition counts (``*N``) as in :func:`parse_spec`.

    ``init="he"`` (default) initialises as torchvision does for VGG: conv weights from
    He et al. 2015's normal (fan_out, ReLU gain), fc weights N(0, 0.01), biases 0, BN scale 1
    and shift 0.  ``init="torch"`` keeps PyTorch's default initialisation.

    ReLUs are not in-place: in-place activations would overwrite the conv outputs that
    forward hooks (feature maps, activation statistics) hold on to.
    """
    if isinstance(spec, str):
        spec = parse_with_counts(spec, counts, _KEYWORDS)
    elif not isinstance(spec, Spec):
        raise SpecError(f"build_spec takes spec text or a Spec, got {type(spec).__name__}")
    elif counts:
        raise SpecError("repetition counts are bound when parsing; pass them to parse_spec")
    if init not in INITS:
        raise SpecError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if num_classes is not None:
        spec = spec.with_num_classes(num_classes)
    steps = spec.infer(in_channels, input_size)
    if _PLANNING.get():
        raise PlannedBuild(BuildPlan(spec, in_channels, steps[0].input[1:]))  # type: ignore[arg-type]
    net = SpecNet(ends_with_softmax=spec.ends_with_softmax)
    for step in steps:
        if isinstance(step.layer, Softmax):
            continue
        try:
            net.add_module(step.name, step.layer.module(step.input))
        except KeyError as exc:  # the name clashes with an attribute of nn.Sequential
            raise SpecError(
                f"the layer name {step.name!r} is taken by nn.Module itself; choose another",
                spec.text,
                step.layer.pos,
            ) from exc
    if init == "he":
        apply_init(net, "he")
    return net


# -------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class BuildPlan:
    """What a builder would build, without building it: the network's :class:`Spec` (with
    its ``num_classes`` applied), its input's channels and ``(H, W)`` (None: not given), and
    the class name of the model it would return (a zoo family's, e.g. ``LeNet5``)."""

    spec: Spec
    in_channels: int
    input_size: tuple[int, int] | tuple[None, None]
    type_name: str = "SpecNet"

    def named(self, cls: type) -> BuildPlan:
        """The same plan for a model of class ``cls`` (holding the built modules)."""
        return replace(self, type_name=cls.__name__)


class PlannedBuild(Exception):  # noqa: N818 - not an error
    """Raised by build_spec under plan_build, carrying the plan out of the builder; a
    builder that puts the modules into a class of its own catches it to name that class."""

    def __init__(self, plan: BuildPlan):
        super().__init__(plan)
        self.plan = plan


class _NotASpec(Exception):  # noqa: N818 - the builder makes more than its spec
    pass


# Set while plan_build runs a builder: build_spec then stops with the plan instead of building.
_PLANNING: contextvars.ContextVar[bool] = contextvars.ContextVar("cnnlab_planning", default=False)


def plan_build(builder: Callable[..., Any], *args: Any, **kwargs: Any) -> BuildPlan | None:
    """The :class:`BuildPlan` of ``builder(*args, **kwargs)``: the builder runs its checks of
    the arguments (raising what it raises) up to its :func:`build_spec` call, which returns
    the spec it would build instead of building it.  None when the builder does more than
    build one spec (it called :func:`not_a_spec`) or builds without the notation.  So
    whatever a builder does after ``build_spec`` must only set values (initialisation), never
    change the structure or parameter counts; a builder that would calls ``not_a_spec``."""
    token = _PLANNING.set(True)
    # No cyclic-GC passes while the text is parsed (many small objects), as in analyze().
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        builder(*args, **kwargs)
    except PlannedBuild as done:
        return done.plan
    except _NotASpec:
        return None
    finally:
        _PLANNING.reset(token)
        if gc_was_enabled:
            gc.enable()
    return None


def not_a_spec() -> None:
    """Called by a builder whose model is more than the spec it builds (GoogLeNet's auxiliary
    heads): under :func:`plan_build` it stops the builder, which then has no plan."""
    if _PLANNING.get():
        raise _NotASpec
