"""The rule protocol: what a counting rule receives (:class:`Call`), what it returns
(:class:`Effect`), how rules are keyed (:class:`RuleTable`), and the helpers the families share.

An op rule is a small pure function from one call (its arguments, already bound to names) to
an :class:`Effect`: the output volume(s), the multiply-adds, the other element operations, the
sliding windows it applies (for geometry fits and receptive fields), the typed layer it is
(:class:`~cnnlab.analysis.result.Layer`) and which tensors PyTorch's autograd keeps for the
backward pass.  Rules never run the operation: the tracer hands them shape-only ("meta")
tensors and they build the outputs from the arithmetic.

A module rule, ``rule(module, inputs, output) -> ModuleCount``, is for a layer type whose cost
is not the sum of the ops it runs, or that the lecture lists as one row; it is keyed by exact
type, never by a name or a subclass.

Tables are immutable.  An analysis takes the default table with its own overrides
(:meth:`RuleTable.with_overrides`, fvcore's ``set_op_handle`` idea), so a rule written in a
notebook changes that analysis only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, reduce
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.result import Kind, Layer
from cnnlab.errors import CnnlabError, GeometryError, ShapeError
from cnnlab.geometry import Window, window_output

__all__ = [
    "CONVENTIONS",
    "META",
    "GLOBAL",
    "SAME",
    "TooLargeError",
    "UNKNOWN",
    "Call",
    "Effect",
    "ModuleCount",
    "ModuleRule",
    "OpRule",
    "Rule",
    "RuleTable",
    "as_tuple",
    "axis_name",
    "bind",
    "broadcast",
    "is_tensor",
    "merges_without_copy",
    "new_tensor",
    "numel",
    "op_rule",
    "result_dtype",
    "rule_adder",
    "spatial_out",
    "windows_of",
    "Spatial",
    "Kind",
    "Layer",
]


CONVENTIONS: dict[str, str] = {
    "macs": (
        "MACs = multiply-accumulates of convolutions, linear layers, matrix products, einsum, "
        "attention and recurrent layers (conv: output elements x C_in/groups x kH x kW; "
        "linear: rows x in x out; matmul: rows x inner x columns; attention: L x S x (E + Ev) "
        "per head; RNN/LSTM/GRU: time steps x the sizes of their weight matrices); biases, "
        "BatchNorm, activations, pooling, additions and embedding lookups are NOT in MACs "
        "(torchvision's convention, also the papers'); '+?' marks a total that misses ops "
        "with no counting rule"
    ),
    "flops": "FLOPs = 2 x MACs (one multiply and one add each)",
    "other_ops": (
        "other ops = element operations outside MACs: 1 per output element for a bias add, "
        "activation, addition or product, 2 for a normalization, 1 per window cell for pooling"
    ),
    "params": (
        "parameters = sum of numel over model.parameters(), each shared tensor counted once "
        "(at its first owner); 'bias' parameters are biases, all others weights; buffers "
        "(BatchNorm running statistics) are not parameters"
    ),
    "activations": (
        "activations = elements of each layer's output; forward memory = the input plus every "
        "newly allocated output (views and in-place results allocate nothing)"
    ),
    "training": (
        "training memory = tensors autograd keeps for backward (per-op rules checked against "
        "torch.autograd.graph.saved_tensors_hooks) + parameters + gradients + optimizer state "
        "(SGD with momentum: 1 buffer per parameter; Adam: 2); allocator overhead, workspaces "
        "and the framework itself are not included; dropout masks as on the CPU (input dtype; "
        "CUDA keeps 1 byte per element)"
    ),
}


# --------------------------------------------------------------------------------------------
# What a rule receives and returns


@dataclass(slots=True)
class Call:
    """One intercepted call: the function's canonical ``name`` and its arguments by name.

    ``where`` names the layer (module path) for error messages.
    """

    name: str
    args: dict[str, Any]
    where: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.args.get(key, default)
        return default if value is None else value


@dataclass(frozen=True)
class Spatial:
    """How an op maps its input cells to output cells, for receptive fields and fits.

    kind:
      ``same``   each output cell sees the same cell of every (broadcast) tensor input;
      ``window`` sliding ``windows`` (one per spatial axis) over the first input;
      ``offset`` cropping/padding/striding: ``offsets[i] = (first_cell, step)`` per axis
                 (negative first cell = padding);
      ``global`` every output cell sees the whole input (global pooling, flatten, linear);
      ``unknown`` no exact rule (transposed convolutions, resampling).
    """

    kind: str = "same"
    windows: tuple[Window, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()
    ceil_mode: bool = False
    dims: int = 0  # spatial dims the windows act on (trailing dims of the input)


SAME = Spatial("same")
GLOBAL = Spatial("global")
UNKNOWN = Spatial("unknown")


@dataclass(slots=True)
class Effect:
    """What a call does, as far as the analysis is concerned."""

    output: Any  # the (meta) tensor(s) returned to the model's code
    macs: int = 0
    other_ops: int = 0
    spatial: Spatial = SAME
    layer: Layer | None = None  # the typed layer, for ops that are one (conv, pool, linear...)
    # Tensors autograd keeps for backward (inputs or outputs of this call), and extra bytes it
    # keeps that are not any of them (max-pool indices, dropout masks), per batch.
    saved: tuple[torch.Tensor, ...] = ()
    saved_extra_bytes: int = 0
    # Tensors kept only for another operand's gradient, as (kept, operand) pairs: kept when
    # that operand needs a gradient (``x * noise`` keeps noise for x's gradient, and not x,
    # since noise needs none).  Nothing at all is kept when no input needs a gradient.
    saved_for: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    inplace: bool = False  # output is (a view of) an input: allocates nothing
    detached: bool = False  # the outputs need no gradient whatever the inputs (detach)


Rule = Callable[[Call], Effect]


@dataclass(frozen=True)
class OpRule:
    """A rule for one torch function: its canonical ``name``, the positional parameter names
    used to bind a call's arguments (with ``defaults``), and the rule itself."""

    name: str
    params: tuple[str, ...]
    fn: Rule
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, call: Call) -> Effect:
        return self.fn(call)

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        return bind(self.params, self.defaults, args, kwargs)


@dataclass(frozen=True)
class ModuleCount:
    """What a module rule says about one call of its module.

    ``macs``/``other_ops``, when given, replace the counts of the ops the module ran (and
    clear their uncounted ops); ``kind`` names the layer (e.g. :attr:`Kind.BLOCK`, or
    :attr:`Kind.SUBSAMPLE` for a layer built from a pooling); ``connections`` is a
    connection-table convolution's number of connected map pairs.
    """

    macs: int | None = None
    other_ops: int | None = None
    kind: Kind | None = None
    connections: int | None = None


ModuleRule = Callable[[nn.Module, list[torch.Tensor], Any], ModuleCount]


def op_rule(
    name: str, params: Sequence[str], defaults: Mapping[str, Any] | None = None
) -> Callable[[Rule], OpRule]:
    """Decorator: ``rule`` as an :class:`OpRule` named ``name`` binding ``params``; pass it
    to :func:`~cnnlab.analysis.analyze` as ``rules={torch_function: rule}``."""

    def wrap(fn: Rule) -> OpRule:
        return OpRule(name, tuple(params), fn, MappingProxyType(dict(defaults or {})))

    return wrap


def rule_adder(
    table: dict[Any, OpRule],
) -> Callable[..., Callable[[Rule], Rule]]:
    """A decorator factory that files a family's rules into ``table`` while the family's
    module is imported: ``add(funcs, name, params, defaults)(rule)``."""

    def add(
        funcs: Sequence[Any],
        name: str,
        params: Sequence[str],
        defaults: Mapping[str, Any] | None = None,
    ) -> Callable[[Rule], Rule]:
        def wrap(fn: Rule) -> Rule:
            rule = op_rule(name, params, defaults)(fn)
            for func in funcs:
                if func is not None:
                    table[func] = rule
            return fn

        return wrap

    return add


@dataclass(frozen=True)
class RuleTable:
    """Op rules keyed by torch function object, module rules keyed by exact module type.

    Immutable: :meth:`with_overrides` returns a new table.
    """

    ops: Mapping[Any, OpRule]
    modules: Mapping[type, ModuleRule]

    def op(self, func: Any) -> OpRule | None:
        return self.ops.get(func)

    def module(self, module: nn.Module) -> ModuleRule | None:
        return self.modules.get(type(module))

    def with_overrides(self, rules: Mapping[Any, Any] | None) -> RuleTable:
        """This table with ``rules`` put over it, for one analysis.

        Keys are torch function objects (``F.conv2d``, ``torch.Tensor.add``...) or module
        types.  A function's value is an :class:`OpRule`, or a plain rule ``Call -> Effect``
        that keeps the default rule's name and argument binding; a module type's value is a
        module rule.  ``None`` removes a rule (the op is then listed as uncounted).
        """
        if not rules:
            return self
        ops, modules = dict(self.ops), dict(self.modules)
        for key, value in rules.items():
            if isinstance(key, type) and issubclass(key, nn.Module):
                _put(modules, key, value, key.__name__)
            elif callable(key):
                if value is not None and not isinstance(value, OpRule):
                    base = self.ops.get(key)
                    if base is None or not callable(value):
                        raise CnnlabError(
                            f"rules: {_name_of(key)} has no default rule to take its argument "
                            "names from; give OpRule(name, params, rule) (or use op_rule) for it"
                        )
                    value = OpRule(base.name, base.params, value, base.defaults)
                _put(ops, key, value, _name_of(key))
            else:
                raise CnnlabError(
                    f"rules: key {key!r} is neither a torch function nor an nn.Module type"
                )
        return RuleTable(MappingProxyType(ops), MappingProxyType(modules))


def _put(table: dict, key: Any, value: Any, name: str) -> None:
    if value is None:
        table.pop(key, None)
    elif callable(value):
        table[key] = value
    else:
        raise CnnlabError(f"rules: the rule for {name} must be callable, got {value!r}")


def _name_of(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def bind(params: Sequence[str], defaults: Mapping[str, Any], args: tuple, kwargs: dict) -> dict:
    """Arguments by name; unknown keyword arguments are kept as they are."""
    bound = dict(defaults) if defaults else {}
    bound.update(zip(params, args, strict=False))  # (one C loop: a bind per traced call)
    if len(args) > len(params):
        bound["*rest"] = args[len(params) :]
    bound.update(kwargs)
    return bound


# --------------------------------------------------------------------------------------------
# Helpers shared by the families


def numel(shape: Sequence[int]) -> int:
    return reduce(operator.mul, shape, 1)


class TooLargeError(ShapeError):
    """A shape no tensor can have; the tracer adds the layer's name."""


META = torch.device("meta")


def new_tensor(shape: Sequence[int], like: torch.Tensor, dtype: torch.dtype | None = None):
    """A fresh shape-only tensor: what PyTorch would allocate for this output.  Raises
    :class:`~cnnlab.errors.ShapeError` for a shape no PyTorch tensor can have."""
    if type(shape) is not torch.Size:  # (a torch.Size holds ints, and torch reads it fastest)
        shape = tuple([int(s) for s in shape])
    dtype = dtype or like.dtype
    if numel(shape) * dtype.itemsize >= 2**63:
        raise TooLargeError(
            f"an output of shape {'x'.join(map(str, shape))} would be {numel(shape):.3g} values, "
            "more than a PyTorch tensor can hold (2^63 bytes)"
        )
    return torch.empty(shape, dtype=dtype, device=META)


def as_tuple(value: Any, n: int, what: str, where: str) -> tuple[int, ...]:
    """An int or ``n`` ints (a 1-tuple repeats) as ``n`` ints; ShapeError otherwise."""
    if type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        return value  # what modules pass (nn.Conv2d's stride, padding, dilation)
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, _SIZES) and all(isinstance(v, int) for v in value):
        if len(value) == 1:
            return (int(value[0]),) * n
        if len(value) == n:
            return tuple(int(v) for v in value)
    raise ShapeError(f"{where}: {what} must be an int or {n} ints, got {value!r}")


_SIZES = (torch.Size, tuple, list)  # (``torch.Size | tuple | list`` makes a union per call)


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def windows_of(
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[Window, ...]:
    """One :class:`~cnnlab.geometry.Window` per spatial axis."""
    return _windows(tuple(kernel), tuple(stride), tuple(padding), tuple(dilation))


@lru_cache(maxsize=1024)
def _windows(kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> tuple[Window, ...]:
    # Windows are frozen: one tuple per distinct layer shape serves every call (ResNet-1202
    # has 1,201 convolutions of four shapes).
    return tuple(
        Window(k, s, p, d) for k, s, p, d in zip(kernel, stride, padding, dilation, strict=True)
    )


def spatial_out(
    call: Call, sizes: Sequence[int], windows: Sequence[Window], ceil_mode: bool = False
) -> list[int]:
    """Output size along each spatial axis (:func:`cnnlab.geometry.window_output`, the one
    shape engine), raising its "volume vanishes" error named after the layer."""
    sizes = tuple(sizes)
    windows = tuple(windows)
    try:
        return list(_window_output(sizes, windows, ceil_mode))
    except GeometryError:
        return list(window_output(sizes, windows, call.where, ceil_mode))  # raises, named


@lru_cache(maxsize=4096)
def _window_output(sizes: tuple, windows: tuple, ceil_mode: bool) -> tuple[int, ...]:
    # Pure arithmetic, cached by value (only results are cached, never an error).
    return window_output(sizes, windows, "", ceil_mode)


def axis_name(axis: int, n: int) -> str:
    """``height``/``width`` (``depth`` in 3-D) for messages; ``axis i`` beyond three."""
    names = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}
    return names.get(n, tuple(f"axis {i}" for i in range(n)))[axis]


def broadcast(shapes: Sequence[Sequence[int]], where: str) -> tuple[int, ...]:
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        size = 1
        for s in shapes:
            j = len(s) - ndim + i
            if j < 0 or s[j] == 1:
                continue
            if size not in (1, s[j]):
                shown = " and ".join("x".join(map(str, s)) for s in shapes)
                raise ShapeError(f"{where}: shapes {shown} do not broadcast together")
            size = s[j]
        out.append(size)
    return tuple(out)


def merges_without_copy(t: torch.Tensor, dims: int) -> bool:
    """Whether ``t``'s first ``dims`` dimensions merge into one as a view (no copy), as a
    batched matrix product's reshape needs them to."""
    return all(
        t.shape[i] == 1 or t.shape[i + 1] == 1 or t.stride(i) == t.stride(i + 1) * t.shape[i + 1]
        for i in range(dims - 1)
    )


def result_dtype(*values: Any) -> torch.dtype:
    """Result dtype of activations: promotion among the traced (meta) tensors only, so that a
    float32 parameter does not turn a float16 analysis into float32."""
    if len(values) == 1 and isinstance(values[0], torch.Tensor):
        return values[0].dtype  # (what the promotion below gives one tensor)
    traced = [v for v in values if is_tensor(v) and v.is_meta]
    dtype = None
    for v in traced or values:
        if is_tensor(v):
            d = v.dtype
            # (equal dtypes need no promotion: a first torch call less in a process)
            dtype = d if dtype is None or dtype is d else torch.promote_types(dtype, d)
    return dtype or torch.get_default_dtype()
