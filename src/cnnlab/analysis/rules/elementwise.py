"""Activations, softmax, element-wise arithmetic and dropout."""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from cnnlab.analysis.rules.base import (
    UNKNOWN,
    Call,
    Effect,
    Rule,
    broadcast,
    is_tensor,
    new_tensor,
    numel,
    result_dtype,
    rule_adder,
)
from cnnlab.errors import ShapeError

_T = torch.Tensor

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)

# What autograd keeps of an element-wise function, measured with saved_tensors_hooks (torch
# 2.13): its result, nothing, or (the others) its input; a few composites keep one more
# tensor of the input's size besides.
_SAVES_RESULT = {"relu", "sigmoid", "tanh", "exp", "sqrt", "rsqrt", "reciprocal"}
_SAVES_NOTHING = {"neg", "floor_divide", "remainder", "sign", "round", "floor", "ceil", "trunc"}
_SAVES_EXTRA = {"logsigmoid": (True, 1), "softsign": (True, 1), "tanhshrink": (False, 1)}
# In place, these keep their result (the same storage); the others need their input, which
# the in-place call overwrites, so autograd keeps a copy of it made before the call (measured
# with saved_tensors_hooks, torch 2.13: relu6/hardtanh, silu, hardswish, hardsigmoid, mish
# and threshold copy; relu, elu, leaky_relu, selu, celu, sigmoid and tanh do not).
_INPLACE_SAVES_RESULT = {"relu", "elu", "leaky_relu", "selu", "celu", "sigmoid", "tanh"}


def _activation(name: str, inplace_default: bool = False) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        inplace = bool(call.get("inplace", inplace_default))
        if inplace:
            kept = x if name in _INPLACE_SAVES_RESULT else new_tensor(x.shape, x)
            return Effect(x, other_ops=x.numel(), saved=(kept,), inplace=True)
        out = new_tensor(x.shape, x)
        if name in _SAVES_NOTHING:
            return Effect(out, other_ops=x.numel())
        if name in _SAVES_EXTRA:
            keeps_input, n = _SAVES_EXTRA[name]
            kept = ((x,) if keeps_input else ()) + tuple(new_tensor(x.shape, x) for _ in range(n))
            return Effect(out, other_ops=x.numel(), saved=kept)
        kept = out if name in _SAVES_RESULT else x
        return Effect(out, other_ops=x.numel(), saved=(kept,))

    return rule


# Each function's parameters in order, so that ``inplace`` given by position (nn.ReLU6 calls
# F.hardtanh(input, 0.0, 6.0, self.inplace)) is found.
for _name, _funcs, _params in (
    ("relu", (F.relu, torch.relu, torch.Tensor.relu), ("input", "inplace")),
    ("relu6", (F.relu6,), ("input", "inplace")),
    ("leaky_relu", (F.leaky_relu,), ("input", "negative_slope", "inplace")),
    ("elu", (F.elu,), ("input", "alpha", "inplace")),
    ("selu", (F.selu, torch.selu), ("input", "inplace")),
    ("celu", (F.celu,), ("input", "alpha", "inplace")),
    ("gelu", (F.gelu,), ("input",)),
    ("silu", (F.silu,), ("input", "inplace")),
    ("mish", (F.mish,), ("input", "inplace")),
    ("hardswish", (F.hardswish,), ("input", "inplace")),
    ("hardsigmoid", (F.hardsigmoid,), ("input", "inplace")),
    ("hardtanh", (F.hardtanh,), ("input", "min_val", "max_val", "inplace")),
    ("threshold", (F.threshold,), ("input", "threshold", "value", "inplace")),
    ("softplus", (F.softplus,), ("input",)),
    ("softsign", (F.softsign,), ("input",)),
    ("tanhshrink", (F.tanhshrink,), ("input",)),
    ("logsigmoid", (F.logsigmoid,), ("input",)),
    ("sigmoid", (torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid), ("input",)),
    ("tanh", (torch.tanh, torch.Tensor.tanh, F.tanh), ("input",)),
    ("exp", (torch.exp, torch.Tensor.exp), ("input",)),
    ("log", (torch.log, torch.Tensor.log), ("input",)),
    ("sqrt", (torch.sqrt, torch.Tensor.sqrt), ("input",)),
    ("abs", (torch.abs, torch.Tensor.abs), ("input",)),
    ("neg", (torch.neg, torch.Tensor.neg, torch.Tensor.__neg__), ("input",)),
    ("rsqrt", (torch.rsqrt, torch.Tensor.rsqrt), ("input",)),
    ("reciprocal", (torch.reciprocal, torch.Tensor.reciprocal), ("input",)),
    ("square", (torch.square, torch.Tensor.square), ("input",)),
    ("erf", (torch.erf, torch.Tensor.erf), ("input",)),
    ("sin", (torch.sin, torch.Tensor.sin), ("input",)),
    ("cos", (torch.cos, torch.Tensor.cos), ("input",)),
    ("sign", (torch.sign, torch.Tensor.sign), ("input",)),
    ("round", (torch.round, torch.Tensor.round), ("input",)),
    ("floor", (torch.floor, torch.Tensor.floor), ("input",)),
    ("ceil", (torch.ceil, torch.Tensor.ceil), ("input",)),
    ("trunc", (torch.trunc, torch.Tensor.trunc), ("input",)),
    ("clamp", (torch.clamp, torch.clip, torch.Tensor.clamp, torch.Tensor.clip), ("input",)),
    ("clamp_min", (torch.clamp_min, torch.Tensor.clamp_min), ("input",)),
    ("clamp_max", (torch.clamp_max, torch.Tensor.clamp_max), ("input",)),
):
    _add(_funcs, _name, _params)(_activation(_name))

for _name, _funcs in {
    "relu": (torch.relu_, torch.Tensor.relu_, F.relu_),
    "sigmoid": (torch.sigmoid_, torch.Tensor.sigmoid_),
    "tanh": (torch.tanh_, torch.Tensor.tanh_),
}.items():
    _add(_funcs, _name + "_", ("input",))(_activation(_name, inplace_default=True))


@_add((F.prelu, torch.prelu), "prelu", ("input", "weight"))
def _prelu(call: Call) -> Effect:
    x = call["input"]
    return Effect(new_tensor(x.shape, x), other_ops=x.numel(), saved=(x,))


def _softmax(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        # exp, sum, divide (and a log): about 3 element ops.
        out = new_tensor(x.shape, x, call.args.get("dtype") or x.dtype)
        return Effect(out, other_ops=3 * x.numel(), spatial=UNKNOWN, saved=(out,))

    return rule


_add((F.softmax, torch.softmax, torch.Tensor.softmax), "softmax", ("input", "dim"))(
    _softmax("softmax")
)
_add((F.log_softmax, torch.log_softmax, torch.Tensor.log_softmax), "log_softmax", ("input", "dim"))(
    _softmax("log_softmax")
)


def _binary(name: str, inplace: bool = False) -> Rule:
    keeps_inputs = name in ("mul", "div")  # pow: see below

    def rule(call: Call) -> Effect:
        a, b = call["input"], call["other"]
        tensors = [a, b] if isinstance(b, torch.Tensor) else [a]
        if not isinstance(a, torch.Tensor):
            tensors.pop(0)
        if len(tensors) == 1:  # a tensor and a number: its own shape (what broadcast gives)
            shape = tensors[0].shape
        else:
            shape = broadcast([tuple(t.shape) for t in tensors], call.where)
        if inplace:
            if tuple(a.shape) != shape:
                raise ShapeError(
                    f"{call.where}: in-place {name} cannot grow {tuple(a.shape)} to {shape}"
                )
            out = a
        else:
            out = new_tensor(shape, tensors[0], result_dtype(*tensors))
        # A product keeps each tensor operand for the other's gradient (nothing when the other
        # operand is a Python number, nor when it needs no gradient); a quotient a / b also
        # keeps b for its own.  (Model parameters among them are not counted.)
        pairs: tuple = ()
        if keeps_inputs and len(tensors) == 2:
            pairs = ((b, a), (a, b)) if name == "mul" else ((b, a), (a, b), (b, b))
        elif keeps_inputs and is_tensor(b):  # 2 / x
            pairs = ((b, b),)
        elif name == "pow" and is_tensor(a):
            pairs = ((a, a),) + (((out, b), (a, b)) if is_tensor(b) else ())
        saved = tuple(tensors) if name in ("maximum", "minimum") and len(tensors) == 2 else ()
        return Effect(out, other_ops=numel(shape), saved=saved, saved_for=pairs, inplace=inplace)

    return rule


for _name, _funcs, _inplace in (
    ("add", (torch.add, _T.add, _T.__add__, _T.__radd__), False),
    ("add_", (_T.add_, _T.__iadd__), True),
    ("sub", (torch.sub, _T.sub, _T.__sub__, _T.__rsub__), False),
    ("sub_", (_T.sub_, _T.__isub__), True),
    ("mul", (torch.mul, _T.mul, _T.__mul__, _T.__rmul__), False),
    ("mul_", (_T.mul_, _T.__imul__), True),
    ("div", (torch.div, _T.div, _T.__truediv__), False),
    ("div_", (_T.div_, _T.__itruediv__), True),
    ("maximum", (torch.maximum, _T.maximum), False),
    ("minimum", (torch.minimum, _T.minimum), False),
    ("pow", (torch.pow, _T.pow, _T.__pow__), False),
    ("floor_divide", (torch.floor_divide, _T.floor_divide, _T.__floordiv__), False),
    ("remainder", (torch.remainder, _T.remainder, _T.__mod__), False),
):
    _add(_funcs, _name, ("input", "other"))(_binary(_name.rstrip("_"), _inplace))


def _compare(boolean: bool) -> Rule:
    # A comparison, logical or bitwise op: one per element, nothing kept (no gradient).  A
    # comparison or logical op gives booleans; & | ~ keep their operands' dtype.
    def rule(call: Call) -> Effect:
        tensors = [t for t in (call["input"], call.args.get("other")) if is_tensor(t)]
        shape = broadcast([tuple(t.shape) for t in tensors], call.where)
        dtype = torch.bool if boolean else result_dtype(*tensors)
        return Effect(new_tensor(shape, tensors[0], dtype), other_ops=numel(shape))

    return rule


for _name, _funcs, _boolean in (
    ("gt", (torch.gt, _T.gt, _T.__gt__), True),
    ("lt", (torch.lt, _T.lt, _T.__lt__), True),
    ("ge", (torch.ge, _T.ge, _T.__ge__), True),
    ("le", (torch.le, _T.le, _T.__le__), True),
    ("eq", (torch.eq, _T.eq, _T.__eq__), True),
    ("ne", (torch.ne, _T.ne, _T.__ne__), True),
    ("logical_and", (torch.logical_and, _T.logical_and), True),
    ("logical_or", (torch.logical_or, _T.logical_or), True),
    ("logical_not", (torch.logical_not, _T.logical_not), True),
    ("bitwise_and", (_T.__and__,), False),
    ("bitwise_or", (_T.__or__,), False),
    ("bitwise_not", (_T.__invert__,), False),
):
    _add(_funcs, _name, ("input", "other"))(_compare(_boolean))


def _reflected(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        # number / x and number ** x (Python's reflected operators: ``input`` is the tensor
        # on the right).  Measured: the quotient keeps one tensor of the result's size, the
        # power its exponent and its result.
        x = call["input"]
        out = new_tensor(x.shape, x, result_dtype(x))
        saved = (new_tensor(x.shape, x),) if name == "rdiv" else (x, out)
        return Effect(out, other_ops=x.numel(), saved=saved)

    return rule


_add((_T.__rtruediv__,), "rdiv", ("input", "other"))(_reflected("rdiv"))
_add((_T.__rpow__,), "rpow", ("input", "other"))(_reflected("rpow"))


@_add((torch.addcmul, _T.addcmul), "addcmul", ("input", "tensor1", "tensor2", "value"))
def _addcmul(call: Call) -> Effect:
    # input + value * tensor1 * tensor2: a product (each factor kept for the other's
    # gradient) and an addition per element.
    a, t1, t2 = call["input"], call["tensor1"], call["tensor2"]
    tensors = [t for t in (a, t1, t2) if is_tensor(t)]
    shape = broadcast([tuple(t.shape) for t in tensors], call.where)
    out = new_tensor(shape, tensors[0], result_dtype(*tensors))
    return Effect(out, other_ops=2 * numel(shape), saved_for=((t2, t1), (t1, t2)))


@_add((torch.lerp, _T.lerp), "lerp", ("input", "end", "weight"))
def _lerp(call: Call) -> Effect:
    a, b, w = call["input"], call["end"], call["weight"]
    tensors = [t for t in (a, b, w) if is_tensor(t)]
    shape = broadcast([tuple(t.shape) for t in tensors], call.where)
    out = new_tensor(shape, tensors[0], result_dtype(*tensors))
    # A number as the weight keeps nothing; a tensor weight is kept with both ends.
    saved = tuple(tensors) if is_tensor(w) else ()
    return Effect(out, other_ops=2 * numel(shape), saved=saved)


@_add((F.normalize,), "normalize", ("input", "p", "dim", "eps"), {"p": 2.0, "dim": 1})
def _normalize(call: Call) -> Effect:
    # x / max(||x||_p, eps) along dim: a norm, a clamp and a division per element.  Autograd
    # keeps the input, the norms and the clamped norms.
    x = call["input"]
    dim = int(call["dim"]) % max(x.dim(), 1)
    reduced = x.numel() // max(int(x.shape[dim]), 1)
    return Effect(
        new_tensor(x.shape, x),
        other_ops=3 * x.numel(),
        saved=(x,),
        saved_extra_bytes=2 * reduced * x.element_size(),
    )


@_add(
    (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout),
    "dropout",
    ("input", "p", "training", "inplace"),
    {"p": 0.5, "training": True, "inplace": False},
)
def _dropout(call: Call) -> Effect:
    x = call["input"]
    if not call["training"] or call["p"] == 0:
        return Effect(x, inplace=True)  # identity: PyTorch returns the input itself
    out = x if call["inplace"] else new_tensor(x.shape, x)
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


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
