"""Linear layers and matrix products: the multiply-adds outside convolutions."""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from cnnlab.analysis.rules.base import (
    GLOBAL,
    UNKNOWN,
    Call,
    Effect,
    Kind,
    Layer,
    broadcast,
    merges_without_copy,
    new_tensor,
    numel,
    result_dtype,
    rule_adder,
)
from cnnlab.errors import ShapeError

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)


@_add((F.linear,), "linear", ("input", "weight", "bias"))
def _linear(call: Call) -> Effect:
    x, w, b = call["input"], call["weight"], call.args.get("bias")
    if x.dim() == 0 or x.shape[-1] != w.shape[-1]:
        raise ShapeError(
            f"{call.where}: linear layer expects {w.shape[-1]} input features, got "
            f"{tuple(x.shape)[-1:] or '()'} (input {tuple(x.shape)}); check the flattened size"
        )
    out_f = w.shape[0] if w.dim() == 2 else 1
    shape = (*x.shape[:-1], out_f) if w.dim() == 2 else tuple(x.shape[:-1])
    rows = numel(x.shape[:-1])
    return Effect(
        output=new_tensor(shape, x),
        macs=rows * int(w.shape[-1]) * out_f,
        other_ops=numel(shape) if b is not None else 0,
        spatial=GLOBAL,
        layer=Layer(Kind.LINEAR, in_features=int(w.shape[-1]), out_features=out_f),
        saved_for=((x, w), (w, x)),
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
    batch = broadcast([sa[:-2], sb[:-2]], where)
    shape = [*batch, sa[-2], sb[-1]]
    macs = numel(batch) * sa[-2] * sa[-1] * sb[-1]
    if va:
        shape.pop(-2)
    if vb:
        shape.pop(-1)
    return tuple(shape), macs


@_add(
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
    return Effect(
        new_tensor(shape, a, result_dtype(a, b)),
        macs=macs,
        spatial=UNKNOWN,
        saved_for=_matmul_saved(a, b, call.where),
    )


def _matmul_saved(a: torch.Tensor, b: torch.Tensor, where: str) -> tuple:
    """What torch.matmul's backward keeps, as (kept, operand) pairs: each operand for the
    other's gradient, as the matrix product PyTorch runs sees it.  A batched product
    broadcasts both operands to the common batch and merges the batch dimensions; where that
    is not a view of the operand (a broadcast batch, or batch dimensions that do not merge,
    as in attention on transposed heads) the product keeps a copy of that size."""
    if a.dim() <= 2 or b.dim() <= 2:
        return ((b, a), (a, b))  # mm/mv, or the larger operand folded into a matrix
    batch = broadcast([tuple(a.shape[:-2]), tuple(b.shape[:-2])], where)
    kept = []
    for t in (a, b):
        if tuple(t.shape[:-2]) == batch and merges_without_copy(t, t.dim() - 2):
            kept.append(t)
        else:
            kept.append(new_tensor((*batch, *t.shape[-2:]), t))
    return ((kept[1], a), (kept[0], b))


@_add((torch.addmm, torch.Tensor.addmm), "addmm", ("input", "mat1", "mat2"))
def _addmm(call: Call) -> Effect:
    a, b = call["mat1"], call["mat2"]
    shape, macs = _matmul_shape(a, b, call.where)
    return Effect(
        new_tensor(shape, a, result_dtype(a, b)),
        macs=macs,
        other_ops=numel(shape),
        spatial=UNKNOWN,
        saved_for=((b, a), (a, b)),
    )


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
