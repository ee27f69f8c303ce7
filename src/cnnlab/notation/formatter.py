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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnnlab.errors import SpecError
from cnnlab.notation.ir import (
    FC,
    LRN,
    Activation,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    Pool,
    Softmax,
    Spec,
    layer_text,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["format_spec", "spec_from_module"]

_MAX_PERIOD = 32  # longest repeated unit looked for, in layers (VGG's is 2 or 4)


def format_spec(obj: Spec | str | nn.Module, compact: bool = True) -> str:
    """Canonical text of a :class:`Spec`, of spec text, or of a model built from a spec.

    ``compact=False`` writes every layer out instead of folding repetitions.  A model must be
    an ``nn.Sequential`` of layers the notation knows (Conv2d, MaxPool2d, AvgPool2d,
    AdaptiveAvgPool2d(1), ReLU, Tanh, Sigmoid, cnnlab's ScaledTanh and LocalResponseNorm,
    BatchNorm1d/2d, Dropout, Flatten, Linear); anything else raises :class:`SpecError`
    naming the module.
    """
    if isinstance(obj, Spec):
        spec = obj
    elif isinstance(obj, str):
        from cnnlab.notation.parser import parse_spec

        spec = parse_spec(obj)
    else:
        spec = spec_from_module(obj)
    tokens: list[Any] = []
    layers = spec.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, Softmax):
            continue
        implicit = (
            isinstance(layer, Flatten)
            and layer.name is None
            and i + 1 < len(layers)
            and isinstance(layers[i + 1], FC)
        )
        if not implicit:  # the parser puts this flatten back by itself
            tokens.append(layer_text(layer))
    items = _compress(tokens) if compact else tokens
    text = "-".join(_render(item) for item in items)
    return text + (",softmax" if spec.ends_with_softmax else "")


# --------------------------------------------------------------------------- folding repetition


@dataclass(frozen=True)
class _Group:
    items: tuple[Any, ...]
    count: int
    depth: int


def _compress(items: list[Any]) -> list[Any]:
    """Fold repeated runs, shortest units first, so that inner repetitions nest inside outer
    ones as the lecture writes them: ``[(conv3-32-relu)*2-maxpool]*3``, not a flat group of
    five layers repeated three times."""
    p = 1
    while p <= min(_MAX_PERIOD, len(items) // 2):
        items, changed = _fold(items, p)
        p = 1 if changed else p + 1
    return items


def _fold(items: list[Any], p: int) -> tuple[list[Any], bool]:
    """Replace every run of two or more copies of a ``p``-item unit, left to right."""
    out: list[Any] = []
    i, n, changed = 0, len(items), False
    while i < n:
        unit = items[i : i + p]
        c = _run(items, i, p)
        if c > 1 and _better_later(items, i, p, c):
            c = 1  # [maxpool-(conv..)*3]*2-maxpool reads worse than maxpool-[(conv..)*3-maxpool]*2
        if c > 1:
            depth = 1 + max((x.depth for x in unit if isinstance(x, _Group)), default=0)
            out.append(_Group(tuple(unit), c, depth))
            i += p * c
            changed = True
        else:
            out.append(items[i])
            i += 1
    return out, changed


def _run(items: list[Any], i: int, p: int) -> int:
    """How many copies of ``items[i:i+p]`` follow each other from ``i``."""
    unit, c = items[i : i + p], 1
    if len(unit) < p:
        return 0
    while i + (c + 1) * p <= len(items) and items[i + c * p : i + (c + 1) * p] == unit:
        c += 1
    return c


def _better_later(items: list[Any], i: int, p: int, c: int) -> bool:
    """Whether a run a few items later, of a unit that ends with a pool (a stage), repeats as
    often as the run at ``i`` whose unit has a pool inside but not at its end."""
    unit = items[i : i + p]
    if _is_pool(unit[-1]) or not any(_is_pool(x) for x in unit):
        return False
    for shift in range(1, p):
        end = i + shift + p - 1
        if end < len(items) and _is_pool(items[end]) and _run(items, i + shift, p) >= c:
            return True
    return False


def _is_pool(item: Any) -> bool:
    # A pooling layer ends a stage, so a repeated unit should end with it, not start with it.
    return isinstance(item, str) and item.startswith(("maxpool", "avgpool", "gap"))


def _render(item: Any) -> str:
    if isinstance(item, str):
        return item
    inner = "-".join(_render(x) for x in item.items)
    open_, close = ("(", ")") if item.depth % 2 else ("[", "]")
    return f"{open_}{inner}{close}*{item.count}"


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


def _ints(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, tuple | list) else (value, value)  # type: ignore


def _layer_of(name: str, m: Any) -> Layer:
    from torch import nn

    from cnnlab.layers import LocalResponseNorm, ScaledTanh

    def unsupported(why: str = "") -> SpecError:
        return SpecError(
            f"module {name!r} ({type(m).__name__}{': ' + why if why else ''}) has no "
            f"compact notation"
        )

    try:
        if type(m) is nn.Conv2d:
            if m.padding_mode != "zeros":
                raise unsupported(f"padding_mode={m.padding_mode!r}")
            padding: Any = m.padding
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same":
                padding = None  # odd kernels pad (F-1)/2 symmetrically; even ones raise below
            return Conv(
                _ints(m.kernel_size),
                m.out_channels,
                stride=_ints(m.stride),
                padding=None if padding is None else _ints(padding),
                dilation=_ints(m.dilation),
                groups=m.groups,
                bias=m.bias is not None,
                name=name,
            )
        if type(m) in (nn.MaxPool2d, nn.AvgPool2d):
            op = "max" if type(m) is nn.MaxPool2d else "avg"
            if op == "max" and (_ints(m.dilation) != (1, 1) or m.return_indices):
                raise unsupported("dilation or return_indices")
            if op == "avg" and (not m.count_include_pad or m.divisor_override is not None):
                raise unsupported("count_include_pad=False or divisor_override")
            return Pool(
                op,
                kernel=_ints(m.kernel_size),
                stride=_ints(m.stride if m.stride is not None else m.kernel_size),
                padding=_ints(m.padding),
                ceil=bool(m.ceil_mode),
                name=name,
            )
        if type(m) is nn.AdaptiveAvgPool2d:
            if _ints(m.output_size) != (1, 1):
                raise unsupported(f"output_size={m.output_size!r}; only 1 (gap)")
            return GlobalAvgPool(name=name)
        activation = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}.get(type(m))
        if activation:
            return Activation(activation, name=name)
        if type(m) is ScaledTanh:
            if (m.amplitude, m.slope) != (ScaledTanh().amplitude, ScaledTanh().slope):
                raise unsupported("amplitude/slope other than LeCun's")
            return Activation("stanh", name=name)
        if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
            if not m.track_running_stats or m.momentum is None:
                raise unsupported("track_running_stats=False or momentum=None")
            return BatchNorm(eps=m.eps, momentum=m.momentum, affine=m.affine, name=name)
        if type(m) is LocalResponseNorm:
            return LRN(size=m.size, alpha=m.alpha, beta=m.beta, k=m.k, name=name)
        if type(m) is nn.Dropout:
            return Dropout(m.p, name=name)
        if type(m) is nn.Flatten:
            if (m.start_dim, m.end_dim) != (1, -1):
                raise unsupported("start_dim/end_dim other than 1/-1")
            return Flatten(name=name)
        if type(m) is nn.Linear:
            return FC(m.out_features, bias=m.bias is not None, name=name)
    except SpecError as exc:
        if exc.reason.startswith("module "):
            raise
        raise SpecError(f"module {name!r} ({type(m).__name__}): {exc.reason}") from None
    raise unsupported()
