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
    broadcast,
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
        if name in ("argmax", "argmin"):
            return Effect(new_tensor(shape, x, torch.int64), other_ops=x.numel(), spatial=spatial)
        out = new_tensor(shape, x)
        if name in ("max", "min") and call.args.get("dim") is not None:
            # (values, indices); backward scatters through the indices it keeps.
            indices = new_tensor(shape, x, torch.int64)
            return Effect((out, indices), other_ops=x.numel(), spatial=spatial, saved=(indices,))
        # Measured with saved_tensors_hooks (torch 2.13): sums and means keep nothing, a
        # variance its input, the others their input and their result.
        saved: tuple = ()
        if name == "var":
            saved = (x,)
        elif name not in ("mean", "sum"):
            saved = (x, out)
        return Effect(out, other_ops=x.numel(), spatial=spatial, saved=saved)

    return rule


for _name, _funcs in {
    "mean": (torch.mean, _T.mean),
    "sum": (torch.sum, _T.sum),
    "amax": (torch.amax, _T.amax),
    "amin": (torch.amin, _T.amin),
    "max": (torch.max, _T.max),
    "min": (torch.min, _T.min),
    "argmax": (torch.argmax, _T.argmax),
    "argmin": (torch.argmin, _T.argmin),
    "prod": (torch.prod, _T.prod),
    "logsumexp": (torch.logsumexp, _T.logsumexp),
    "var": (torch.var, _T.var),
    "std": (torch.std, _T.std),
}.items():
    _add(_funcs, _name, ("input", "dim", "keepdim"))(_reduce(_name))


@_add((torch.norm, _T.norm), "norm", ("input", "p", "dim", "keepdim"), {"p": "fro"})
def _norm(call: Call) -> Effect:
    return _reduce("norm")(Call(call.name, {**call.args, "p": None}, call.where))


@_add((torch.cumsum, _T.cumsum, torch.cumprod, _T.cumprod), "cumsum", ("input", "dim"))
def _cumsum(call: Call) -> Effect:
    # A running sum (or product) along one dimension: one op per element; a sum keeps
    # nothing for backward (a product would keep more; not measured).
    x = call["input"]
    return Effect(new_tensor(x.shape, x), other_ops=x.numel(), spatial=UNKNOWN)


def _ordered(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        # topk/sort: the values and their int64 indices; backward keeps the indices.
        x = call["input"]
        dim = int(call.get("dim", -1)) % max(x.dim(), 1)
        shape = list(x.shape)
        if name == "topk":
            shape[dim] = int(call["k"])
        n = max(int(x.shape[dim]), 2)
        indices = new_tensor(shape, x, torch.int64)
        out = (new_tensor(shape, x), indices)
        return Effect(out, other_ops=x.numel() * max(1, n.bit_length()), spatial=UNKNOWN,
                      saved=(indices,))  # fmt: skip

    return rule


_add((torch.topk, _T.topk), "topk", ("input", "k", "dim"))(_ordered("topk"))
_add((torch.sort, _T.sort), "sort", ("input", "dim"))(_ordered("sort"))


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
        # Flattening keeps the data where it is when the strides allow a view (as PyTorch
        # decides it, on the shape-only tensor), and copies otherwise.
        try:
            out = x.view(shape)
        except RuntimeError:
            out = new_tensor(shape, x)
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


def _factory(func: Any) -> Rule:
    """A tensor made from sizes alone (``torch.ones(b, c, h, w)``), made on the meta device:
    no arithmetic, one forward allocation."""

    def rule(call: Call) -> Effect:
        kwargs = {k: v for k, v in call.args.items() if k not in ("*rest", "generator", "out")}
        kwargs.pop("pin_memory", None)
        kwargs["device"] = "meta"
        return Effect(func(*call.args.get("*rest", ()), **kwargs), spatial=UNKNOWN)

    return rule


for _func in (
    torch.empty,
    torch.empty_strided,
    torch.zeros,
    torch.ones,
    torch.full,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.randperm,
    torch.arange,
    torch.linspace,
    torch.logspace,
    torch.eye,
    torch.tril_indices,
    torch.triu_indices,
):
    _add((_func,), _func.__name__, ())(_factory(_func))


def _new_like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        kwargs = {k: v for k, v in call.args.items() if k not in ("input", "*rest", "device")}
        kwargs.pop("pin_memory", None)
        rest = call.args.get("*rest", ())
        size = _sizes(rest) if name in ("new_empty", "new_zeros", "new_ones") else None
        if size is not None and set(kwargs) <= {"dtype"}:
            # What PyTorch's meta kernel gives (contiguous, x's dtype unless given), without
            # its first use in a process (a third of a millisecond, for LeNet-5's C3).
            out = new_tensor(size, x, kwargs.get("dtype"))
        else:
            out = getattr(x, name)(*rest, **kwargs)  # x is shape-only
        return Effect(out, spatial=UNKNOWN)

    return rule


def _sizes(rest: tuple) -> tuple[int, ...] | None:
    """``new_zeros(2, 3)``'s or ``new_zeros((2, 3))``'s sizes; None for anything else (no
    size at all included: PyTorch's error)."""
    if len(rest) == 1 and isinstance(rest[0], tuple | list | torch.Size):
        rest = tuple(rest[0])
    ok = rest and all(type(s) is int and s >= 0 for s in rest)
    return rest if ok else None


for _name in ("new_empty", "new_zeros", "new_ones", "new_full", "new_empty_strided"):
    _add((getattr(_T, _name),), _name, ("input",))(_new_like(_name))


# Data movement with no arithmetic: copies in another order or with some values replaced.
# Zero MACs and zero other ops (like a copy); they are counted, never "uncounted".


def _moved_copy(name: str, out_shape: Any = None, spatial: Spatial = UNKNOWN) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        shape = tuple(x.shape) if out_shape is None else out_shape(call, x)
        return Effect(new_tensor(shape, x), spatial=spatial)

    return rule


def _repeat_shape(call: Call, x: torch.Tensor) -> tuple[int, ...]:
    reps = call.args.get("repeats", ())
    reps = (reps, *call.args.get("*rest", ())) if isinstance(reps, int) else tuple(reps)
    if call.name == "tile" and len(reps) < x.dim():
        reps = (1,) * (x.dim() - len(reps)) + reps
    if len(reps) < x.dim():
        raise ShapeError(f"{call.where}: repeat {reps} has fewer sizes than the {x.dim()}-D input")
    lead = len(reps) - x.dim()
    return tuple(reps[:lead]) + tuple(int(s) * r for s, r in zip(x.shape, reps[lead:], strict=True))


def _shuffle_shape(call: Call, x: torch.Tensor) -> tuple[int, ...]:
    n, c, h, w = x.shape[-4:] if x.dim() >= 4 else (1, *x.shape[-3:])
    lead = tuple(x.shape[:-3])
    if call.name == "pixel_shuffle":
        r = int(call["upscale_factor"])
        if c % (r * r):
            raise ShapeError(
                f"{call.where}: pixel_shuffle by {r} needs channels divisible by {r * r}, got {c}"
            )
        return (*lead, c // (r * r), h * r, w * r)
    r = int(call["downscale_factor"])
    if h % r or w % r:
        raise ShapeError(
            f"{call.where}: pixel_unshuffle by {r} needs height and width divisible by {r}, "
            f"got {h}x{w}"
        )
    return (*lead, c * r * r, h // r, w // r)


_add((torch.roll, _T.roll), "roll", ("input", "shifts", "dims"))(_moved_copy("roll"))
_add((torch.flip, _T.flip), "flip", ("input", "dims"))(_moved_copy("flip"))
_add((torch.tril, _T.tril), "tril", ("input", "diagonal"))(_moved_copy("tril", spatial=SAME))
_add((torch.triu, _T.triu), "triu", ("input", "diagonal"))(_moved_copy("triu", spatial=SAME))
_add((_T.repeat,), "repeat", ("input", "repeats"))(_moved_copy("repeat", _repeat_shape))
_add((torch.tile, _T.tile), "tile", ("input", "repeats"))(_moved_copy("tile", _repeat_shape))
_add((F.pixel_shuffle, torch.pixel_shuffle), "pixel_shuffle", ("input", "upscale_factor"))(
    _moved_copy("pixel_shuffle", _shuffle_shape)
)
_add((F.pixel_unshuffle, torch.pixel_unshuffle), "pixel_unshuffle", ("input", "downscale_factor"))(
    _moved_copy("pixel_unshuffle", _shuffle_shape)
)


def _masked_fill(inplace: bool) -> Rule:
    def rule(call: Call) -> Effect:
        x, mask = call["input"], call["mask"]
        shape = broadcast([tuple(x.shape), tuple(mask.shape)], call.where)
        out = x if inplace else new_tensor(shape, x)
        # Backward zeroes the filled positions of the gradient: autograd keeps the mask.
        return Effect(out, saved=(mask,), inplace=inplace)

    return rule


_add((torch.masked_fill, _T.masked_fill), "masked_fill", ("input", "mask", "value"))(
    _masked_fill(False)
)
_add((_T.masked_fill_,), "masked_fill_", ("input", "mask", "value"))(_masked_fill(True))


@_add((torch.where,), "where", ("condition", "input", "other"))
def _where(call: Call) -> Effect:
    cond, a, b = call["condition"], call.args.get("input"), call.args.get("other")
    if a is None or b is None:
        raise ShapeError(f"{call.where}: torch.where(condition) alone gives value-dependent sizes")
    tensors = [t for t in (cond, a, b) if is_tensor(t)]
    shape = broadcast([tuple(t.shape) for t in tensors], call.where)
    values = [t for t in (a, b) if is_tensor(t)]
    dtype = result_dtype(*values) if values else torch.get_default_dtype()
    # One selection per element; autograd keeps the condition.
    return Effect(new_tensor(shape, cond, dtype), other_ops=numel(shape), saved=(cond,))


def _to_dtype(call: Call) -> torch.dtype | None:
    """The dtype a ``Tensor.to``/``type_as``/``float()``-like call converts to (None: keeps)."""
    fixed = {
        "float": torch.float32, "double": torch.float64, "half": torch.float16,
        "bfloat16": torch.bfloat16, "long": torch.int64, "int": torch.int32,
        "bool": torch.bool,
    }  # fmt: skip
    if call.name in fixed:
        return fixed[call.name]
    if call.name == "type_as":
        return call["other"].dtype
    for value in (*call.args.get("*rest", ()), call.args.get("arg"), call.args.get("dtype")):
        if isinstance(value, torch.dtype):
            return value
        if is_tensor(value):
            return value.dtype
    return None


def _convert(call: Call) -> Effect:
    # Devices do not matter to shape-only tensors; a new dtype is a new tensor, the same dtype
    # is the input itself (what PyTorch returns).
    x = call["input"]
    dtype = _to_dtype(call)
    copy = bool(call.get("copy", False))
    if (dtype is None or dtype == x.dtype) and not copy:
        return Effect(x, inplace=True)
    return Effect(new_tensor(x.shape, x, dtype or x.dtype))


_add((_T.to,), "to", ("input", "arg"))(_convert)
_add((_T.type_as,), "type_as", ("input", "other"))(_convert)
for _name in ("float", "double", "half", "bfloat16", "long", "int", "bool", "cpu", "cuda"):
    _add((getattr(_T, _name),), _name, ("input",))(_convert)


@_add((F.embedding,), "embedding", ("input", "weight", "padding_idx", "max_norm"))
def _embedding(call: Call) -> Effect:
    # A lookup: each index selects a row of the table.  No multiply-adds by definition (a
    # one-hot matrix product would be rows x vocabulary x dim of them, none of them real).
    idx, w = call["input"], call["weight"]
    if idx.dtype.is_floating_point:
        raise ShapeError(
            f"{call.where}: embedding needs integer indices, got "
            f"{str(idx.dtype).replace('torch.', '')} (analyze with dtype=torch.long)"
        )
    out = new_tensor((*idx.shape, int(w.shape[-1])), idx, w.dtype)
    # Backward scatters the gradient back to the rows: autograd keeps the indices.
    return Effect(out, spatial=UNKNOWN, saved=(idx,))


@_add((torch.index_select, _T.index_select), "index_select", ("input", "dim", "index"))
def _index_select(call: Call) -> Effect:
    x, index = call["input"], call["index"]
    dim = int(call["dim"]) % max(x.dim(), 1)
    shape = list(x.shape)
    shape[dim] = int(index.numel())
    return Effect(new_tensor(shape, x), spatial=UNKNOWN, saved=(index,))


@_add((torch.gather, _T.gather), "gather", ("input", "dim", "index"))
def _gather(call: Call) -> Effect:
    x, index = call["input"], call["index"]
    # The output has the index's shape; backward keeps the index and the input.
    return Effect(new_tensor(index.shape, x), spatial=UNKNOWN, saved=(index, x))


@_add((torch.repeat_interleave, _T.repeat_interleave), "repeat_interleave",
      ("input", "repeats", "dim"))  # fmt: skip
def _repeat_interleave(call: Call) -> Effect:
    x, reps, dim = call["input"], call["repeats"], call.args.get("dim")
    if not isinstance(reps, int):
        raise ShapeError(f"{call.where}: repeat_interleave by a tensor has value-dependent sizes")
    if dim is None:
        return Effect(new_tensor((x.numel() * reps,), x), spatial=UNKNOWN)
    shape = list(x.shape)
    shape[int(dim) % x.dim()] *= reps
    return Effect(new_tensor(shape, x), spatial=UNKNOWN)


@_add((F.channel_shuffle, torch.channel_shuffle), "channel_shuffle", ("input", "groups"))
def _channel_shuffle(call: Call) -> Effect:
    x = call["input"]
    return Effect(new_tensor(x.shape, x), spatial=SAME)


def _stack_like(name: str) -> Rule:
    def rule(call: Call) -> Effect:
        ts = [t for t in call["tensors"] if is_tensor(t)]
        # hstack joins 1-D tensors along 0, others along 1; vstack makes each at least 2-D.
        shapes = [tuple(t.shape) if t.dim() > 1 or name == "hstack" else (1, t.numel()) for t in ts]
        dim = 0 if name == "vstack" or len(shapes[0]) == 1 else 1
        shape = list(shapes[0])
        shape[dim] = sum(int(s[dim]) for s in shapes)
        return Effect(new_tensor(shape, ts[0], result_dtype(*ts)), spatial=UNKNOWN)

    return rule


_add((torch.hstack,), "hstack", ("tensors",))(_stack_like("hstack"))
_add((torch.vstack,), "vstack", ("tensors",))(_stack_like("vstack"))


@_add((F.unfold,), "unfold", ("input", "kernel_size", "dilation", "padding", "stride"),
      {"dilation": 1, "padding": 0, "stride": 1})  # fmt: skip
def _unfold(call: Call) -> Effect:
    # im2col: every window's values as one column, (N, C x kH x kW, windows).
    x = call["input"]
    k = as_tuple(call["kernel_size"], 2, "kernel_size", call.where)
    d = as_tuple(call["dilation"], 2, "dilation", call.where)
    p = as_tuple(call["padding"], 2, "padding", call.where)
    st = as_tuple(call["stride"], 2, "stride", call.where)
    sizes = [(n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
             for n, kk, dd, pp, ss in zip(x.shape[-2:], k, d, p, st, strict=True)]  # fmt: skip
    if min(sizes) < 1:
        raise GeometryError(
            f"{call.where}: unfold's {k[0]}x{k[1]} window does not fit {tuple(x.shape[-2:])}"
        )
    c = int(x.shape[-3]) * k[0] * k[1]
    shape = (*x.shape[:-3], c, sizes[0] * sizes[1])
    return Effect(new_tensor(shape, x), spatial=UNKNOWN)


@_add((_T.detach, torch.detach), "detach", ("input",))
def _detach(call: Call) -> Effect:
    # A view that stops the gradient: nothing flows back through it.
    x = call["input"]
    return Effect(x.view(x.shape), inplace=True, detached=True)


_TYPE_NAMES = {
    "torch.FloatTensor": torch.float32,
    "torch.DoubleTensor": torch.float64,
    "torch.HalfTensor": torch.float16,
    "torch.LongTensor": torch.int64,
}


@_add((_T.type,), "type", ("input", "dtype"))
def _type(call: Call) -> Effect:
    x, dtype = call["input"], call.args.get("dtype")
    if isinstance(dtype, str):
        dtype = _TYPE_NAMES.get(dtype)
    if not isinstance(dtype, torch.dtype) or dtype == x.dtype:
        return Effect(x, inplace=True)
    return Effect(new_tensor(x.shape, x, dtype))


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
