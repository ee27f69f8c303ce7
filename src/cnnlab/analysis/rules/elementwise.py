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

_SAVES_RESULT = {"relu", "sigmoid", "tanh", "elu", "softmax", "log_softmax", "hardtanh_"}


def _activation(name: str, inplace_default: bool = False) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        inplace = bool(call.get("inplace", inplace_default))
        out = x if inplace else new_tensor(x.shape, x)
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
    _add(_funcs, _name, ("input",))(_activation(_name))

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
    keeps_inputs = name in ("mul", "div")

    def rule(call: Call) -> Effect:
        a, b = call["input"], call["other"]
        tensors = [t for t in (a, b) if is_tensor(t)]
        shape = broadcast([tuple(t.shape) for t in tensors], call.where)
        if inplace:
            if tuple(a.shape) != shape:
                raise ShapeError(
                    f"{call.where}: in-place {name} cannot grow {tuple(a.shape)} to {shape}"
                )
            out = a
        else:
            out = new_tensor(shape, tensors[0], result_dtype(*tensors))
        # A product keeps each tensor operand for the other's gradient: nothing when the other
        # operand is a Python number.  (Model parameters among them are not counted.)
        saved: tuple = ()
        if keeps_inputs and len(tensors) == 2:
            saved = (a, b) if name == "mul" else (b, a)
            saved = tuple(t for t in saved if t.numel() > 1)
        return Effect(out, other_ops=numel(shape), saved=saved, inplace=inplace)

    return rule


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
    _add(_funcs, _name, ("input", "other"))(_binary(_name.rstrip("_"), _inplace))


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
