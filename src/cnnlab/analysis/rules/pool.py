"""Pooling: max and average windows (1-D to 3-D), and adaptive pooling."""

from __future__ import annotations

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
    Kind,
    Layer,
    Rule,
    Spatial,
    as_tuple,
    new_tensor,
    numel,
    rule_adder,
    spatial_out,
    windows_of,
)
from cnnlab.errors import GeometryError, ShapeError
from cnnlab.geometry import Window

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)


def _pool_rule(nd: int, kind: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        if x.dim() not in (nd + 1, nd + 2):
            raise ShapeError(
                f"{call.where}: {kind}_pool{nd}d expects a {nd + 2}-D input, got {tuple(x.shape)}"
            )
        kernel = as_tuple(call["kernel_size"], nd, "kernel_size", call.where)
        stride_arg = call.args.get("stride")
        stride = (
            kernel
            if stride_arg in (None, (), [])
            else as_tuple(stride_arg, nd, "stride", call.where)
        )
        padding = as_tuple(call.get("padding", 0), nd, "padding", call.where)
        dilation = as_tuple(call.get("dilation", 1), nd, "dilation", call.where)
        ceil = bool(call.get("ceil_mode", False))
        for k, p in zip(kernel, padding, strict=False):
            if p > k // 2:
                raise GeometryError(
                    f"{call.where}: pooling padding {p} is more than half the {k}-cell window"
                )
        sizes = tuple(x.shape[-nd:])  # (a shape holds ints)
        windows = windows_of(kernel, stride, padding, dilation)
        out = spatial_out(call, sizes, windows, ceil)
        shape = (*x.shape[:-nd], *out)
        out_t = new_tensor(shape, x)
        outputs: Any = out_t
        out_elems = numel(shape)
        saved_extra = 0
        if kind == "max":
            # max pooling keeps the argmax indices (int64, one per output) for backward.
            saved_extra = out_elems * 8
            if call.get("return_indices", False):
                outputs = (out_t, new_tensor(shape, x, torch.int64))
        return Effect(
            outputs,
            other_ops=out_elems * numel(kernel),
            spatial=Spatial("window", windows=windows, ceil_mode=ceil, dims=nd),
            layer=Layer(Kind.MAX_POOL if kind == "max" else Kind.AVG_POOL, windows, ceil),
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
    _add(_funcs, f"max_pool{_nd}d", _MAXPOOL)(_pool_rule(_nd, "max"))
for _nd, _funcs in (
    (1, (F.avg_pool1d, torch.avg_pool1d)),
    (2, (F.avg_pool2d, torch._C._nn.avg_pool2d)),
    (3, (F.avg_pool3d, torch._C._nn.avg_pool3d)),
):
    _add(_funcs, f"avg_pool{_nd}d", _AVGPOOL)(_pool_rule(_nd, "avg"))


def _adaptive_rule(nd: int, kind: str) -> Rule:
    def rule(call: Call) -> Effect:
        x = call["input"]
        sizes = tuple(x.shape[-nd:])  # (a shape holds ints)
        target = call["output_size"]
        if isinstance(target, int) or target is None:
            target = (target,) * nd
        target = tuple(n if t is None else int(t) for t, n in zip(target, sizes, strict=False))
        if len(target) != nd or min(target) < 1:
            raise ShapeError(f"{call.where}: adaptive pooling to {call['output_size']!r}")
        shape = (*x.shape[:-nd], *target)
        out = new_tensor(shape, x)
        outputs: Any = out
        if kind == "max" and call.get("return_indices", False):
            outputs = (out, new_tensor(shape, x, torch.int64))
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
        extra = numel(shape) * 8 if kind == "max" else 0
        return Effect(
            outputs,
            other_ops=x.numel(),
            spatial=spatial,
            layer=Layer(
                Kind.ADAPTIVE_MAX_POOL if kind == "max" else Kind.ADAPTIVE_AVG_POOL,
                output_size=target,
            ),
            saved=saved,
            saved_extra_bytes=extra,
        )

    return rule


for _nd in (1, 2, 3):
    _add(
        (getattr(F, f"adaptive_avg_pool{_nd}d"),),
        f"adaptive_avg_pool{_nd}d",
        ("input", "output_size"),
    )(_adaptive_rule(_nd, "avg"))
    _add(
        (
            getattr(F, f"adaptive_max_pool{_nd}d"),
            getattr(F, f"adaptive_max_pool{_nd}d_with_indices"),
        ),
        f"adaptive_max_pool{_nd}d",
        ("input", "output_size", "return_indices"),
    )(_adaptive_rule(_nd, "max"))


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
