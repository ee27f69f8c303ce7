"""Reductions, joins, views and reshapes, padding, indexing, copies and resampling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.analysis.rules.base import (
    GLOBAL,
    SAME,
    UNKNOWN,
    Call,
    Effect,
    Rule,
    Spatial,
    as_tuple,
    is_tensor,
    new_tensor,
    numel,
    result_dtype,
    rule_adder,
)
from cnnlab.errors import GeometryError, ShapeError

_T = torch.Tensor

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)


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
        return Effect(new_tensor(shape, x), other_ops=x.numel(), spatial=spatial, saved=saved)

    return rule


for _name, _funcs in {
    "mean": (torch.mean, _T.mean),
    "sum": (torch.sum, _T.sum),
    "amax": (torch.amax, _T.amax),
    "amin": (torch.amin, _T.amin),
}.items():
    _add(_funcs, _name, ("input", "dim", "keepdim"))(_reduce(_name))


@_add((torch.cat, torch.concat, torch.concatenate), "cat", ("tensors", "dim"), {"dim": 0})
def _cat(call: Call) -> Effect:
    tensors = [t for t in call["tensors"] if is_tensor(t)]
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
    return Effect(new_tensor(shape, ref, result_dtype(*tensors)), spatial=spatial)


@_add((torch.stack,), "stack", ("tensors", "dim"), {"dim": 0})
def _stack(call: Call) -> Effect:
    tensors = list(call["tensors"])
    ref = tensors[0]
    if any(tuple(t.shape) != tuple(ref.shape) for t in tensors):
        raise ShapeError(f"{call.where}: stack needs equal shapes")
    dim = int(call["dim"]) % (ref.dim() + 1)
    shape = list(ref.shape)
    shape.insert(dim, len(tensors))
    return Effect(new_tensor(shape, ref), spatial=UNKNOWN)


def _flatten_like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        if name == "flatten":
            start = int(call.get("start_dim", 0)) % max(x.dim(), 1)
            end = int(call.get("end_dim", -1)) % max(x.dim(), 1)
            shape = [*x.shape[:start], numel(x.shape[start : end + 1]), *x.shape[end + 1 :]]
        else:
            shape = call.args.get("shape")
            if isinstance(shape, int):  # x.view(2, -1): the sizes come as separate arguments
                shape = (shape, *call.args.get("*rest", ()))
            shape = _view_shape(x, shape, call.where)
        # Flattening keeps the data where it is (a view of a contiguous input).
        out = x.view(shape) if x.is_contiguous() else new_tensor(shape, x)
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
    known = numel([s for s in shape if s != -1])
    if -1 in shape:
        if known == 0 or x.numel() % known:
            raise ShapeError(f"{where}: cannot reshape {tuple(x.shape)} into {shape}")
        shape[shape.index(-1)] = x.numel() // known
    if numel(shape) != x.numel():
        raise ShapeError(f"{where}: cannot reshape {tuple(x.shape)} ({x.numel()}) into {shape}")
    return shape


_add((torch.flatten, _T.flatten), "flatten", ("input", "start_dim", "end_dim"))(
    _flatten_like("flatten")
)
_add((torch.reshape, _T.reshape, _T.view), "reshape", ("input", "shape"))(_flatten_like("reshape"))


@_add((F.pad,), "pad", ("input", "pad", "mode", "value"), {"mode": "constant"})
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
        new_tensor(shape, x),
        spatial=Spatial("offset", offsets=offsets, dims=max(x.dim() - 2, 0)),
    )


@_add((_T.__getitem__,), "getitem", ("input", "index"))
def _getitem(call: Call) -> Effect:
    x, index = call["input"], call["index"]
    out = x[index]  # basic indexing on a shape-only tensor: a view, no kernel runs
    idx = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None or is_tensor(i) or isinstance(i, list) for i in idx):
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
        return Effect(new_tensor(x.shape, x))

    return rule


_add((torch.clone, _T.clone), "clone", ("input",))(_copy_like("clone"))
_add((_T.contiguous,), "contiguous", ("input",))(_copy_like("contiguous"))


def _like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        return Effect(new_tensor(x.shape, x, call.args.get("dtype")), spatial=UNKNOWN)

    return rule


for _name, _funcs in {
    "zeros_like": (torch.zeros_like,),
    "ones_like": (torch.ones_like,),
    "empty_like": (torch.empty_like,),
    "rand_like": (torch.rand_like,),
    "randn_like": (torch.randn_like,),
    "full_like": (torch.full_like,),
}.items():
    _add(_funcs, _name, ("input",))(_like(_name))


@_add((F.interpolate,), "interpolate", ("input", "size", "scale_factor", "mode"))
def _interpolate(call: Call) -> Effect:
    x = call["input"]
    nd = x.dim() - 2
    size = call.args.get("size")
    if size is not None:
        out = as_tuple(size, nd, "size", call.where)
    else:
        scale = call["scale_factor"]
        scales = (scale,) * nd if isinstance(scale, int | float) else tuple(scale)
        out = tuple(int(math.floor(n * s)) for n, s in zip(x.shape[2:], scales, strict=False))
    shape = (*x.shape[:2], *out)
    mode = call.get("mode", "nearest")
    per = {"nearest": 0, "linear": 2, "bilinear": 4, "bicubic": 16, "trilinear": 8}.get(mode, 1)
    return Effect(new_tensor(shape, x), other_ops=per * numel(shape), spatial=UNKNOWN)


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
