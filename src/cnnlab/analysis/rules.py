"""The counting rules: one table keyed by torch function (or cnnlab layer type).

Each rule is a small pure function from one call (its arguments, already bound to names) to an
:class:`Effect`: the output volume(s), the multiply-adds, the other element operations, the
sliding windows it applies (for geometry fits and receptive fields) and which tensors PyTorch's
autograd keeps for the backward pass.  Rules never run the operation: the tracer hands them
shape-only ("meta") tensors and they build the outputs from the arithmetic, which is why the
analysis needs no activation memory and does not pay PyTorch's one-off cost of loading its
meta kernels (about a second per process, measured on this machine).

Conventions (stated in every report, see :data:`CONVENTIONS`):

* ``macs``: multiply-accumulates of convolutions, linear layers and matrix products only, bias
  excluded: conv ``out_elements * C_in/groups * kH * kW``; linear ``rows * in * out``.  This is
  torchvision's metadata convention and the papers' (ResNet "FLOPs" are multiply-adds).
  FLOPs = 2 x MACs.
* ``other_ops``: element operations that are not multiply-adds, one per output element for a
  bias, an activation, an addition or multiplication; two per element for a normalization
  (scale and shift); one per window cell read for pooling.  Never added to MACs.

A function with no rule is never silently zero: the tracer runs it on shape-only tensors and
lists it as *uncounted*, unless it is a pure view (``view``, ``transpose``, slicing), which moves
no data and costs nothing.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import GeometryError, ShapeError
from cnnlab.geometry import Window, effective_kernel, output_size

__all__ = [
    "CONVENTIONS",
    "Call",
    "Effect",
    "ShapeError",
    "Spatial",
    "module_rule",
    "op_rule",
    "rule_for",
    "module_rule_for",
]


CONVENTIONS: dict[str, str] = {
    "macs": (
        "MACs = multiply-accumulates of convolutions, linear layers and matrix products "
        "(conv: output elements x C_in/groups x kH x kW; linear: rows x in x out); biases, "
        "BatchNorm, activations, pooling and additions are NOT in MACs (torchvision's "
        "convention, also the papers')"
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


@dataclass
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


@dataclass
class Effect:
    """What a call does, as far as the analysis is concerned."""

    output: Any  # the (meta) tensor(s) returned to the model's code
    macs: int = 0
    other_ops: int = 0
    spatial: Spatial = SAME
    hyper: dict[str, Any] = field(default_factory=dict)
    # Tensors autograd keeps for backward (inputs or outputs of this call), and extra bytes it
    # keeps that are not any of them (max-pool indices, dropout masks), per batch.
    saved: tuple[torch.Tensor, ...] = ()
    saved_extra_bytes: int = 0
    inplace: bool = False  # output is (a view of) an input: allocates nothing


Rule = Callable[[Call], Effect]

_OP_RULES: dict[Any, tuple[str, tuple[str, ...], dict[str, Any], Rule]] = {}
_MODULE_RULES: dict[type, Callable[..., dict[str, Any]]] = {}


def op_rule(
    funcs: Sequence[Any], name: str, params: Sequence[str], defaults: dict[str, Any] | None = None
) -> Callable[[Rule], Rule]:
    """Register ``rule`` for every function object in ``funcs`` (torch.xxx, F.xxx, Tensor.xxx).

    ``params`` are the positional parameter names, used to bind the call's arguments.
    """

    def wrap(rule: Rule) -> Rule:
        for func in funcs:
            if func is None:
                continue
            _OP_RULES[func] = (name, tuple(params), dict(defaults or {}), rule)
        return rule

    return wrap


def module_rule(cls: type) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Any]]:
    """Register a rule for a layer type whose cost is not the sum of the ops it runs.

    The rule is ``rule(module, inputs, output) -> dict`` with any of ``macs``, ``other_ops``,
    ``hyper``; it replaces the counts of the ops inside that module (exact type match, never a
    name or subclass match).
    """

    def wrap(rule: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        _MODULE_RULES[cls] = rule
        return rule

    return wrap


def rule_for(func: Any) -> tuple[str, tuple[str, ...], dict[str, Any], Rule] | None:
    return _OP_RULES.get(func)


def module_rule_for(module: nn.Module) -> Callable[..., dict[str, Any]] | None:
    _load_layer_rules()
    return _MODULE_RULES.get(type(module))


def bind(params: Sequence[str], defaults: dict[str, Any], args: tuple, kwargs: dict) -> dict:
    """Arguments by name; unknown keyword arguments are kept as they are."""
    bound = dict(defaults)
    for name, value in zip(params, args, strict=False):
        bound[name] = value
    if len(args) > len(params):
        bound["*rest"] = args[len(params) :]
    bound.update(kwargs)
    return bound


# --------------------------------------------------------------------------------------------
# Helpers


def _numel(shape: Sequence[int]) -> int:
    return reduce(operator.mul, shape, 1)


def _new(shape: Sequence[int], like: torch.Tensor, dtype: torch.dtype | None = None):
    """A fresh shape-only tensor: what PyTorch would allocate for this output."""
    return torch.empty(tuple(int(s) for s in shape), dtype=dtype or like.dtype, device="meta")


def _tuple(value: Any, n: int, what: str, where: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, torch.Size | tuple | list) and all(isinstance(v, int) for v in value):
        if len(value) == 1:
            return (int(value[0]),) * n
        if len(value) == n:
            return tuple(int(v) for v in value)
    raise ShapeError(f"{where}: {what} must be an int or {n} ints, got {value!r}")


def _is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _spatial_out(
    call: Call,
    sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool = False,
) -> list[int]:
    """Output size along each spatial axis, raising a layer-named error if a volume vanishes."""
    out = []
    for axis, (n, k, s, p, d) in enumerate(
        zip(sizes, kernel, stride, padding, dilation, strict=False)
    ):
        o = output_size(n, k, s, p, d, ceil_mode)
        if o < 1:
            span = effective_kernel(k, d)
            axis_name = _axis_name(axis, len(sizes))
            raise GeometryError(
                f"{call.where}: ({n} - {span} + 2*{p})/{s} + 1 = {(n - span + 2 * p) / s + 1:.2f}:"
                f" a {'x'.join(map(str, kernel))} window does not fit the {axis_name} of a "
                f"{'x'.join(map(str, sizes))} input"
                + (f" padded by {p}" if p else "")
                + ": the volume vanishes (the input is too small for this network)"
            )
        out.append(o)
    return out


def _axis_name(axis: int, n: int) -> str:
    names = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}
    return names.get(n, tuple(f"axis {i}" for i in range(n)))[axis]


def _broadcast(shapes: Sequence[Sequence[int]], where: str) -> tuple[int, ...]:
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


def _dtype_of(*values: Any) -> torch.dtype:
    """Result dtype of activations: promotion among the traced (meta) tensors only, so that a
    float32 parameter does not turn a float16 analysis into float32."""
    traced = [v for v in values if _is_tensor(v) and v.is_meta]
    dtype = None
    for v in traced or values:
        if _is_tensor(v):
            dtype = v.dtype if dtype is None else torch.promote_types(dtype, v.dtype)
    return dtype or torch.get_default_dtype()


# --------------------------------------------------------------------------------------------
# Convolutions


def _conv_rule(nd: int) -> Rule:
    def rule(call: Call) -> Effect:
        x, w, b = call["input"], call["weight"], call.args.get("bias")
        groups = int(call.get("groups", 1))
        batched = x.dim() == nd + 2
        if x.dim() not in (nd + 1, nd + 2):
            raise ShapeError(
                f"{call.where}: conv{nd}d expects a {nd + 2}-D input (N x C x spatial), got "
                f"{tuple(x.shape)}"
            )
        c_in = x.shape[-nd - 1]
        if c_in != w.shape[1] * groups:
            raise ShapeError(
                f"{call.where}: input has {c_in} channels but the filters expect "
                f"{w.shape[1] * groups} ({w.shape[1]} per group x {groups} groups); "
                f"check the input size or the previous layer's channels"
            )
        kernel = tuple(int(k) for k in w.shape[2:])
        stride = _tuple(call.get("stride", 1), nd, "stride", call.where)
        dilation = _tuple(call.get("dilation", 1), nd, "dilation", call.where)
        pad = call.get("padding", 0)
        sizes = tuple(int(s) for s in x.shape[-nd:])
        if pad == "valid":
            pad = 0
        if pad == "same":
            # PyTorch pads d*(k-1) cells in all, the odd one at the end; the output keeps the size.
            total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=False)]
            left = tuple(t // 2 for t in total)
            out = list(sizes)
            windows = tuple(
                Window(k, s, p, d)
                for k, s, p, d in zip(kernel, stride, left, dilation, strict=False)
            )
            padding = left
        else:
            padding = _tuple(pad, nd, "padding", call.where)
            out = _spatial_out(call, sizes, kernel, stride, padding, dilation)
            windows = tuple(
                Window(k, s, p, d)
                for k, s, p, d in zip(kernel, stride, padding, dilation, strict=False)
            )
        c_out = int(w.shape[0])
        shape = (*(x.shape[:1] if batched else ()), c_out, *out)
        out_t = _new(shape, x)
        out_elems = _numel(shape)
        macs = out_elems * (c_in // groups) * _numel(kernel)
        return Effect(
            output=out_t,
            macs=macs,
            other_ops=out_elems if b is not None else 0,
            spatial=Spatial("window", windows=windows, dims=nd),
            hyper={
                "kernel": kernel,
                "stride": stride,
                "padding": padding,
                "dilation": dilation,
                "groups": groups,
                "out_channels": c_out,
            },
            saved=(x, w),
        )

    return rule


for _nd, _funcs in (
    (1, (torch.conv1d, F.conv1d)),
    (2, (torch.conv2d, F.conv2d)),
    (3, (torch.conv3d, F.conv3d)),
):
    op_rule(
        _funcs,
        f"conv{_nd}d",
        ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    )(_conv_rule(_nd))


def _conv_transpose_rule(nd: int) -> Rule:
    def rule(call: Call) -> Effect:
        x, w, b = call["input"], call["weight"], call.args.get("bias")
        groups = int(call.get("groups", 1))
        if x.shape[-nd - 1] != w.shape[0]:
            raise ShapeError(
                f"{call.where}: input has {x.shape[-nd - 1]} channels, the transposed "
                f"filters expect {w.shape[0]}"
            )
        kernel = tuple(int(k) for k in w.shape[2:])
        stride = _tuple(call.get("stride", 1), nd, "stride", call.where)
        padding = _tuple(call.get("padding", 0), nd, "padding", call.where)
        out_pad = _tuple(call.get("output_padding", 0), nd, "output_padding", call.where)
        dilation = _tuple(call.get("dilation", 1), nd, "dilation", call.where)
        sizes = x.shape[-nd:]
        out = [
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, k, s, p, d, op in zip(
                sizes, kernel, stride, padding, dilation, out_pad, strict=False
            )
        ]
        if min(out) < 1:
            raise GeometryError(f"{call.where}: transposed convolution gives size {out}")
        c_out = int(w.shape[1]) * groups
        shape = (*x.shape[: -nd - 1], c_out, *out)
        # Every input element is multiplied by C_out/groups filters of kH x kW taps.
        macs = x.numel() * (c_out // groups) * _numel(kernel)
        return Effect(
            output=_new(shape, x),
            macs=macs,
            other_ops=_numel(shape) if b is not None else 0,
            spatial=UNKNOWN,
            hyper={"kernel": kernel, "stride": stride, "padding": padding, "groups": groups},
            saved=(x,),
        )

    return rule


for _nd, _funcs in (
    (1, (torch.conv_transpose1d, F.conv_transpose1d)),
    (2, (torch.conv_transpose2d, F.conv_transpose2d)),
    (3, (torch.conv_transpose3d, F.conv_transpose3d)),
):
    op_rule(
        _funcs,
        f"conv_transpose{_nd}d",
        ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    )(_conv_transpose_rule(_nd))


# --------------------------------------------------------------------------------------------
# Linear algebra


@op_rule((F.linear,), "linear", ("input", "weight", "bias"))
def _linear(call: Call) -> Effect:
    x, w, b = call["input"], call["weight"], call.args.get("bias")
    if x.dim() == 0 or x.shape[-1] != w.shape[-1]:
        raise ShapeError(
            f"{call.where}: linear layer expects {w.shape[-1]} input features, got "
            f"{tuple(x.shape)[-1:] or '()'} (input {tuple(x.shape)}); check the flattened size"
        )
    out_f = w.shape[0] if w.dim() == 2 else 1
    shape = (*x.shape[:-1], out_f) if w.dim() == 2 else tuple(x.shape[:-1])
    rows = _numel(x.shape[:-1])
    return Effect(
        output=_new(shape, x),
        macs=rows * int(w.shape[-1]) * out_f,
        other_ops=_numel(shape) if b is not None else 0,
        spatial=GLOBAL,
        hyper={"in_features": int(w.shape[-1]), "out_features": out_f},
        saved=(x, w),
    )


def _matmul_shape(a: torch.Tensor, b: torch.Tensor, where: str) -> tuple[tuple[int, ...], int]:
    """Output shape of torch.matmul and its multiply-adds."""
    sa, sb = list(a.shape), list(b.shape)
    if not sa or not sb:
        raise ShapeError(f"{where}: matmul of a 0-d tensor")
    va, vb = len(sa) == 1, len(sb) == 1
    if va:
        sa = [1, *sa]
    if vb:
        sb = [*sb, 1]
    if sa[-1] != sb[-2]:
        raise ShapeError(f"{where}: matmul of {tuple(a.shape)} and {tuple(b.shape)}: inner sizes")
    batch = _broadcast([sa[:-2], sb[:-2]], where)
    shape = [*batch, sa[-2], sb[-1]]
    macs = _numel(batch) * sa[-2] * sa[-1] * sb[-1]
    if va:
        shape.pop(-2)
    if vb:
        shape.pop(-1)
    return tuple(shape), macs


@op_rule(
    (
        torch.matmul,
        torch.Tensor.matmul,
        torch.Tensor.__matmul__,
        torch.mm,
        torch.Tensor.mm,
        torch.bmm,
        torch.Tensor.bmm,
    ),
    "matmul",
    ("input", "other"),
)
def _matmul(call: Call) -> Effect:
    a, b = call["input"], call.args.get("other", call.args.get("mat2"))
    shape, macs = _matmul_shape(a, b, call.where)
    return Effect(_new(shape, a, _dtype_of(a, b)), macs=macs, spatial=UNKNOWN, saved=(a, b))


@op_rule((torch.addmm, torch.Tensor.addmm), "addmm", ("input", "mat1", "mat2"))
def _addmm(call: Call) -> Effect:
    a, b = call["mat1"], call["mat2"]
    shape, macs = _matmul_shape(a, b, call.where)
    return Effect(
        _new(shape, a, _dtype_of(a, b)),
        macs=macs,
        other_ops=_numel(shape),
        spatial=UNKNOWN,
        saved=(a, b),
    )


# --------------------------------------------------------------------------------------------
# Normalization


@op_rule(
    (F.batch_norm, torch.batch_norm),
    "batch_norm",
    ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
)
def _batch_norm(call: Call) -> Effect:
    x = call["input"]
    channels = x.shape[1] if x.dim() > 1 else x.shape[0]
    for name in ("running_mean", "running_var", "weight", "bias"):
        t = call.args.get(name)
        if _is_tensor(t) and t.numel() != channels:
            raise ShapeError(
                f"{call.where}: batch norm over {t.numel()} channels got an input with "
                f"{channels} ({tuple(x.shape)})"
            )
    # Autograd keeps the input and, when batch statistics are used, the per-channel mean and
    # inverse standard deviation (float32).  Running statistics are model buffers, not counted.
    batch_stats = bool(call.get("training", False)) or call.args.get("running_mean") is None
    extra = 2 * channels * 4 if batch_stats else 0
    return Effect(_new(x.shape, x), other_ops=2 * x.numel(), saved=(x,), saved_extra_bytes=extra)


def _same_shape_norm(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        return Effect(_new(x.shape, x), other_ops=2 * x.numel(), saved=(x,))

    return rule


op_rule((F.layer_norm,), "layer_norm", ("input", "normalized_shape", "weight", "bias", "eps"))(
    _same_shape_norm("layer_norm")
)
op_rule((F.group_norm,), "group_norm", ("input", "num_groups", "weight", "bias", "eps"))(
    _same_shape_norm("group_norm")
)
op_rule(
    (F.instance_norm,),
    "instance_norm",
    ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats"),
)(_same_shape_norm("instance_norm"))


@op_rule((F.local_response_norm,), "local_response_norm", ("input", "size", "alpha", "beta", "k"))
def _lrn(call: Call) -> Effect:
    # b = a / (k + alpha/n * sum of a^2 over n neighbouring channels)^beta.  Per element: a
    # square, n additions (a running window), a scale, an add, a power and a division.
    x = call["input"]
    n = int(call["size"])
    # PyTorch builds LRN from element-wise, padding and pooling ops (torch 2.13,
    # F.local_response_norm).  Autograd keeps, besides the input: the squared input padded by
    # size-1 channels, and two more input-sized tensors (the pooled sum and the power base);
    # checked against torch.autograd.graph.saved_tensors_hooks in the tests.
    padded = x.numel() // max(x.shape[1], 1) * (x.shape[1] + n - 1) if x.dim() > 2 else x.numel()
    extra = (2 * x.numel() + padded) * x.element_size()
    return Effect(
        _new(x.shape, x),
        other_ops=(n + 5) * x.numel(),
        hyper={
            "size": n,
            "alpha": call.get("alpha", 1e-4),
            "beta": call.get("beta", 0.75),
            "k": call.get("k", 1.0),
        },
        saved=(x,),
        saved_extra_bytes=extra,
    )


# --------------------------------------------------------------------------------------------
# Activations and element-wise ops

_SAVES_RESULT = {"relu", "sigmoid", "tanh", "elu", "softmax", "log_softmax", "hardtanh_"}


def _activation(name: str, inplace_default: bool = False) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        inplace = bool(call.get("inplace", inplace_default))
        out = x if inplace else _new(x.shape, x)
        kept = out if name in _SAVES_RESULT else x
        return Effect(out, other_ops=x.numel(), saved=(kept,), inplace=inplace)

    return rule


for _name, _funcs in {
    "relu": (F.relu, torch.relu, torch.Tensor.relu),
    "relu6": (F.relu6,),
    "leaky_relu": (F.leaky_relu,),
    "elu": (F.elu,),
    "selu": (F.selu, torch.selu),
    "celu": (F.celu,),
    "gelu": (F.gelu,),
    "silu": (F.silu,),
    "mish": (F.mish,),
    "hardswish": (F.hardswish,),
    "hardsigmoid": (F.hardsigmoid,),
    "hardtanh": (F.hardtanh,),
    "softplus": (F.softplus,),
    "softsign": (F.softsign,),
    "tanhshrink": (F.tanhshrink,),
    "logsigmoid": (F.logsigmoid,),
    "sigmoid": (torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid),
    "tanh": (torch.tanh, torch.Tensor.tanh, F.tanh),
    "exp": (torch.exp, torch.Tensor.exp),
    "log": (torch.log, torch.Tensor.log),
    "sqrt": (torch.sqrt, torch.Tensor.sqrt),
    "abs": (torch.abs, torch.Tensor.abs),
    "neg": (torch.neg, torch.Tensor.neg, torch.Tensor.__neg__),
}.items():
    op_rule(_funcs, _name, ("input",))(_activation(_name))

for _name, _funcs in {
    "relu": (torch.relu_, torch.Tensor.relu_, F.relu_),
    "sigmoid": (torch.sigmoid_, torch.Tensor.sigmoid_),
    "tanh": (torch.tanh_, torch.Tensor.tanh_),
}.items():
    op_rule(_funcs, _name + "_", ("input",))(_activation(_name, inplace_default=True))


@op_rule((F.prelu, torch.prelu), "prelu", ("input", "weight"))
def _prelu(call: Call) -> Effect:
    x = call["input"]
    return Effect(_new(x.shape, x), other_ops=x.numel(), saved=(x,))


def _softmax(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        # exp, sum, divide (and a log): about 3 element ops.
        out = _new(x.shape, x, call.args.get("dtype") or x.dtype)
        return Effect(out, other_ops=3 * x.numel(), spatial=UNKNOWN, saved=(out,))

    return rule


op_rule((F.softmax, torch.softmax, torch.Tensor.softmax), "softmax", ("input", "dim"))(
    _softmax("softmax")
)
op_rule(
    (F.log_softmax, torch.log_softmax, torch.Tensor.log_softmax), "log_softmax", ("input", "dim")
)(_softmax("log_softmax"))


def _binary(name: str, inplace: bool = False) -> Rule:
    keeps_inputs = name in ("mul", "div")

    def rule(call: Call) -> Effect:
        a, b = call["input"], call["other"]
        tensors = [t for t in (a, b) if _is_tensor(t)]
        shape = _broadcast([tuple(t.shape) for t in tensors], call.where)
        if inplace:
            if tuple(a.shape) != shape:
                raise ShapeError(
                    f"{call.where}: in-place {name} cannot grow {tuple(a.shape)} to {shape}"
                )
            out = a
        else:
            out = _new(shape, tensors[0], _dtype_of(*tensors))
        # A product keeps each tensor operand for the other's gradient: nothing when the other
        # operand is a Python number.  (Model parameters among them are not counted.)
        saved: tuple = ()
        if keeps_inputs and len(tensors) == 2:
            saved = (a, b) if name == "mul" else (b, a)
            saved = tuple(t for t in saved if t.numel() > 1)
        return Effect(out, other_ops=_numel(shape), saved=saved, inplace=inplace)

    return rule


_T = torch.Tensor
for _name, _funcs, _inplace in (
    ("add", (torch.add, _T.add, _T.__add__, _T.__radd__), False),
    ("add_", (_T.add_, _T.__iadd__), True),
    ("sub", (torch.sub, _T.sub, _T.__sub__, _T.__rsub__), False),
    ("sub_", (_T.sub_, _T.__isub__), True),
    ("mul", (torch.mul, _T.mul, _T.__mul__, _T.__rmul__), False),
    ("mul_", (_T.mul_, _T.__imul__), True),
    ("div", (torch.div, _T.div, _T.__truediv__, _T.__rtruediv__), False),
    ("div_", (_T.div_, _T.__itruediv__), True),
    ("maximum", (torch.maximum, _T.maximum), False),
    ("minimum", (torch.minimum, _T.minimum), False),
    ("pow", (torch.pow, _T.pow, _T.__pow__), False),
):
    op_rule(_funcs, _name, ("input", "other"))(_binary(_name.rstrip("_"), _inplace))


@op_rule(
    (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout),
    "dropout",
    ("input", "p", "training", "inplace"),
    {"p": 0.5, "training": True, "inplace": False},
)
def _dropout(call: Call) -> Effect:
    x = call["input"]
    if not call["training"] or call["p"] == 0:
        return Effect(x, inplace=True)  # identity: PyTorch returns the input itself
    out = x if call["inplace"] else _new(x.shape, x)
    # The random mask is kept for backward.  On the CPU PyTorch draws it in the input's dtype
    # (input * mask / (1-p)); CUDA's fused kernel keeps one byte per element instead.  The CPU
    # figure is used (checked on an H200 with torch 2.11: dropout masks are the only place
    # where the CUDA measurement differs, 3 bytes per element lower at float32).
    return Effect(
        out,
        other_ops=x.numel(),
        saved_extra_bytes=x.numel() * x.element_size(),
        inplace=bool(call["inplace"]),
    )


# --------------------------------------------------------------------------------------------
# Pooling


def _pool_rule(nd: int, kind: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        if x.dim() not in (nd + 1, nd + 2):
            raise ShapeError(
                f"{call.where}: {kind}_pool{nd}d expects a {nd + 2}-D input, got {tuple(x.shape)}"
            )
        kernel = _tuple(call["kernel_size"], nd, "kernel_size", call.where)
        stride_arg = call.args.get("stride")
        stride = (
            kernel if stride_arg in (None, (), []) else _tuple(stride_arg, nd, "stride", call.where)
        )
        padding = _tuple(call.get("padding", 0), nd, "padding", call.where)
        dilation = _tuple(call.get("dilation", 1), nd, "dilation", call.where)
        ceil = bool(call.get("ceil_mode", False))
        for k, p in zip(kernel, padding, strict=False):
            if p > k // 2:
                raise GeometryError(
                    f"{call.where}: pooling padding {p} is more than half the {k}-cell window"
                )
        sizes = tuple(int(s) for s in x.shape[-nd:])
        out = _spatial_out(call, sizes, kernel, stride, padding, dilation, ceil)
        shape = (*x.shape[:-nd], *out)
        out_t = _new(shape, x)
        outputs: Any = out_t
        out_elems = _numel(shape)
        saved_extra = 0
        if kind == "max":
            # max pooling keeps the argmax indices (int64, one per output) for backward.
            saved_extra = out_elems * 8
            if call.get("return_indices", False):
                outputs = (out_t, _new(shape, x, torch.int64))
        return Effect(
            outputs,
            other_ops=out_elems * _numel(kernel),
            spatial=Spatial(
                "window",
                windows=tuple(
                    Window(k, s, p, d)
                    for k, s, p, d in zip(kernel, stride, padding, dilation, strict=False)
                ),
                ceil_mode=ceil,
                dims=nd,
            ),
            hyper={
                "kernel": kernel,
                "stride": stride,
                "padding": padding,
                **({"dilation": dilation} if kind == "max" else {}),
                **({"ceil_mode": True} if ceil else {}),
            },
            saved=(x,),
            saved_extra_bytes=saved_extra,
        )

    return rule


_MAXPOOL = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVGPOOL = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
for _nd, _funcs in (
    (1, (F.max_pool1d, F.max_pool1d_with_indices, torch.max_pool1d)),
    (2, (F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d)),
    (3, (F.max_pool3d, F.max_pool3d_with_indices, torch.max_pool3d)),
):
    op_rule(_funcs, f"max_pool{_nd}d", _MAXPOOL)(_pool_rule(_nd, "max"))
for _nd, _funcs in (
    (1, (F.avg_pool1d, torch.avg_pool1d)),
    (2, (F.avg_pool2d, torch._C._nn.avg_pool2d)),
    (3, (F.avg_pool3d, torch._C._nn.avg_pool3d)),
):
    op_rule(_funcs, f"avg_pool{_nd}d", _AVGPOOL)(_pool_rule(_nd, "avg"))


def _adaptive_rule(nd: int, kind: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        sizes = tuple(int(s) for s in x.shape[-nd:])
        target = call["output_size"]
        if isinstance(target, int) or target is None:
            target = (target,) * nd
        target = tuple(n if t is None else int(t) for t, n in zip(target, sizes, strict=False))
        if len(target) != nd or min(target) < 1:
            raise ShapeError(f"{call.where}: adaptive pooling to {call['output_size']!r}")
        shape = (*x.shape[:-nd], *target)
        out = _new(shape, x)
        outputs: Any = out
        if kind == "max" and call.get("return_indices", False):
            outputs = (out, _new(shape, x, torch.int64))
        if target == sizes:
            spatial = SAME
        elif all(t == 1 for t in target):
            spatial = GLOBAL
        elif all(n % t == 0 for n, t in zip(sizes, target, strict=False)):
            # Equal bins: an ordinary window of n/t cells at stride n/t.
            spatial = Spatial(
                "window",
                windows=tuple(Window(n // t, n // t) for n, t in zip(sizes, target, strict=False)),
                dims=nd,
            )
        else:
            spatial = UNKNOWN  # bins of unequal size: the field differs from unit to unit
        # PyTorch computes a 1x1 adaptive average as a mean, which keeps nothing for backward.
        saved: tuple = () if (kind == "avg" and all(t == 1 for t in target)) else (x,)
        extra = _numel(shape) * 8 if kind == "max" else 0
        return Effect(
            outputs,
            other_ops=x.numel(),
            spatial=spatial,
            hyper={"output_size": target},
            saved=saved,
            saved_extra_bytes=extra,
        )

    return rule


for _nd in (1, 2, 3):
    op_rule(
        (getattr(F, f"adaptive_avg_pool{_nd}d"),),
        f"adaptive_avg_pool{_nd}d",
        ("input", "output_size"),
    )(_adaptive_rule(_nd, "avg"))
    op_rule(
        (
            getattr(F, f"adaptive_max_pool{_nd}d"),
            getattr(F, f"adaptive_max_pool{_nd}d_with_indices"),
        ),
        f"adaptive_max_pool{_nd}d",
        ("input", "output_size", "return_indices"),
    )(_adaptive_rule(_nd, "max"))


# --------------------------------------------------------------------------------------------
# Reductions, joins, shape changes


def _reduce(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        dim = call.args.get("dim")
        keep = bool(call.get("keepdim", False))
        if dim is None or dim == ():
            dims = set(range(x.dim()))
        else:
            dims = {d % max(x.dim(), 1) for d in ((dim,) if isinstance(dim, int) else dim)}
        shape = (
            [1 if i in dims else s for i, s in enumerate(x.shape)]
            if keep
            else [s for i, s in enumerate(x.shape) if i not in dims]
        )
        spatial_dims = set(range(2, x.dim()))
        spatial = GLOBAL if dims & spatial_dims else SAME
        saved = (x,) if name in ("amax", "amin", "max", "min", "norm") else ()
        return Effect(_new(shape, x), other_ops=x.numel(), spatial=spatial, saved=saved)

    return rule


for _name, _funcs in {
    "mean": (torch.mean, _T.mean),
    "sum": (torch.sum, _T.sum),
    "amax": (torch.amax, _T.amax),
    "amin": (torch.amin, _T.amin),
}.items():
    op_rule(_funcs, _name, ("input", "dim", "keepdim"))(_reduce(_name))


@op_rule((torch.cat, torch.concat, torch.concatenate), "cat", ("tensors", "dim"), {"dim": 0})
def _cat(call: Call) -> Effect:
    tensors = [t for t in call["tensors"] if _is_tensor(t)]
    if not tensors:
        raise ShapeError(f"{call.where}: cat of no tensors")
    ref = tensors[0]
    dim = int(call["dim"]) % ref.dim()
    for t in tensors[1:]:
        if t.dim() != ref.dim() or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape, strict=False)) if i != dim
        ):
            shown = ", ".join("x".join(map(str, x.shape)) for x in tensors)
            raise ShapeError(
                f"{call.where}: cannot concatenate {shown} along dim {dim}: the other sizes "
                f"must agree"
            )
    shape = list(ref.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    spatial = SAME if dim < 2 else UNKNOWN
    return Effect(_new(shape, ref, _dtype_of(*tensors)), spatial=spatial, hyper={"dim": dim})


@op_rule((torch.stack,), "stack", ("tensors", "dim"), {"dim": 0})
def _stack(call: Call) -> Effect:
    tensors = list(call["tensors"])
    ref = tensors[0]
    if any(tuple(t.shape) != tuple(ref.shape) for t in tensors):
        raise ShapeError(f"{call.where}: stack needs equal shapes")
    dim = int(call["dim"]) % (ref.dim() + 1)
    shape = list(ref.shape)
    shape.insert(dim, len(tensors))
    return Effect(_new(shape, ref), spatial=UNKNOWN)


def _flatten_like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        if name == "flatten":
            start = int(call.get("start_dim", 0)) % max(x.dim(), 1)
            end = int(call.get("end_dim", -1)) % max(x.dim(), 1)
            shape = [*x.shape[:start], _numel(x.shape[start : end + 1]), *x.shape[end + 1 :]]
        else:
            shape = call.args.get("shape")
            if isinstance(shape, int):  # x.view(2, -1): the sizes come as separate arguments
                shape = (shape, *call.args.get("*rest", ()))
            shape = _view_shape(x, shape, call.where)
        # Flattening keeps the data where it is (a view of a contiguous input).
        out = x.view(shape) if x.is_contiguous() else _new(shape, x)
        keeps_space = len(shape) == x.dim() and tuple(shape[2:]) == tuple(x.shape[2:])
        return Effect(out, spatial=SAME if keeps_space else GLOBAL, inplace=out._base is not None)

    return rule


def _view_shape(x: torch.Tensor, shape: Any, where: str) -> list[int]:
    if isinstance(shape, tuple) and len(shape) == 1 and isinstance(shape[0], Sequence):
        shape = shape[0]
    if isinstance(shape, int):
        shape = (shape,)
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        raise ShapeError(f"{where}: more than one -1 in reshape {shape}")
    known = _numel([s for s in shape if s != -1])
    if -1 in shape:
        if known == 0 or x.numel() % known:
            raise ShapeError(f"{where}: cannot reshape {tuple(x.shape)} into {shape}")
        shape[shape.index(-1)] = x.numel() // known
    if _numel(shape) != x.numel():
        raise ShapeError(f"{where}: cannot reshape {tuple(x.shape)} ({x.numel()}) into {shape}")
    return shape


op_rule((torch.flatten, _T.flatten), "flatten", ("input", "start_dim", "end_dim"))(
    _flatten_like("flatten")
)
op_rule((torch.reshape, _T.reshape, _T.view), "reshape", ("input", "shape"))(
    _flatten_like("reshape")
)


@op_rule((F.pad,), "pad", ("input", "pad", "mode", "value"), {"mode": "constant"})
def _pad(call: Call) -> Effect:
    x = call["input"]
    pads = list(call["pad"])
    if len(pads) % 2 or len(pads) // 2 > x.dim():
        raise ShapeError(f"{call.where}: pad {pads} for a {x.dim()}-D input")
    shape = list(x.shape)
    first = {}
    for i in range(len(pads) // 2):
        dim = x.dim() - 1 - i
        shape[dim] += pads[2 * i] + pads[2 * i + 1]
        first[dim] = -pads[2 * i]
        if shape[dim] < 1:
            raise GeometryError(f"{call.where}: padding {pads} leaves nothing of {tuple(x.shape)}")
    offsets = tuple((first.get(d, 0), 1) for d in range(2, x.dim()))
    return Effect(
        _new(shape, x),
        spatial=Spatial("offset", offsets=offsets, dims=max(x.dim() - 2, 0)),
        hyper={"pad": tuple(pads)},
    )


@op_rule((_T.__getitem__,), "getitem", ("input", "index"))
def _getitem(call: Call) -> Effect:
    x, index = call["input"], call["index"]
    out = x[index]  # basic indexing on a shape-only tensor: a view, no kernel runs
    idx = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None or _is_tensor(i) or isinstance(i, list) for i in idx):
        return Effect(out, spatial=UNKNOWN, inplace=out._base is not None)
    spatial: Spatial = UNKNOWN
    if x.dim() > 2 and all(isinstance(i, slice) for i in idx) and out.dim() == x.dim():
        offsets = []
        for d in range(2, x.dim()):
            s = idx[d] if d < len(idx) else slice(None)
            start, _, step = s.indices(x.shape[d])
            offsets.append((start, step))
        spatial = Spatial("offset", offsets=tuple(offsets), dims=x.dim() - 2)
    elif all(isinstance(i, slice) and i == slice(None) for i in idx[2:]):
        spatial = SAME
    return Effect(out, spatial=spatial, inplace=True)


def _copy_like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        if name == "contiguous" and x.is_contiguous():
            return Effect(x, inplace=True)
        return Effect(_new(x.shape, x))

    return rule


op_rule((torch.clone, _T.clone), "clone", ("input",))(_copy_like("clone"))
op_rule((_T.contiguous,), "contiguous", ("input",))(_copy_like("contiguous"))


def _like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        return Effect(_new(x.shape, x, call.args.get("dtype")), spatial=UNKNOWN)

    return rule


for _name, _funcs in {
    "zeros_like": (torch.zeros_like,),
    "ones_like": (torch.ones_like,),
    "empty_like": (torch.empty_like,),
    "rand_like": (torch.rand_like,),
    "randn_like": (torch.randn_like,),
    "full_like": (torch.full_like,),
}.items():
    op_rule(_funcs, _name, ("input",))(_like(_name))


@op_rule((F.interpolate,), "interpolate", ("input", "size", "scale_factor", "mode"))
def _interpolate(call: Call) -> Effect:
    x = call["input"]
    nd = x.dim() - 2
    size = call.args.get("size")
    if size is not None:
        out = _tuple(size, nd, "size", call.where)
    else:
        scale = call["scale_factor"]
        scales = (scale,) * nd if isinstance(scale, int | float) else tuple(scale)
        out = tuple(int(math.floor(n * s)) for n, s in zip(x.shape[2:], scales, strict=False))
    shape = (*x.shape[:2], *out)
    mode = call.get("mode", "nearest")
    per = {"nearest": 0, "linear": 2, "bilinear": 4, "bicubic": 16, "trilinear": 8}.get(mode, 1)
    return Effect(_new(shape, x), other_ops=per * _numel(shape), spatial=UNKNOWN)


# --------------------------------------------------------------------------------------------
# cnnlab's own layers (rules whose cost is not the sum of the ops inside)

_LAYER_RULES_LOADED = False


def _load_layer_rules() -> None:
    """Register the rules of cnnlab.layers, if that module is importable (it may be absent)."""
    global _LAYER_RULES_LOADED
    if _LAYER_RULES_LOADED:
        return
    _LAYER_RULES_LOADED = True
    with contextlib.suppress(ImportError):  # cnnlab.layers may be absent in a trimmed install
        from cnnlab.analysis import _layer_rules  # noqa: F401
