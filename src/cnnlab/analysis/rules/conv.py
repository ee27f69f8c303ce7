"""Convolutions (1-D to 3-D) and transposed convolutions."""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from cnnlab.analysis.rules.base import (
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

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)


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
        kernel = tuple(w.shape[2:])  # (a shape holds ints)
        stride = as_tuple(call.get("stride", 1), nd, "stride", call.where)
        dilation = as_tuple(call.get("dilation", 1), nd, "dilation", call.where)
        pad = call.get("padding", 0)
        sizes = tuple(x.shape[-nd:])
        if pad == "valid":
            pad = 0
        if pad == "same":
            # PyTorch pads d*(k-1) cells in all, the odd one at the end; the output keeps the size.
            total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=False)]
            left = tuple(t // 2 for t in total)
            out = list(sizes)
            windows = windows_of(kernel, stride, left, dilation)
            padding = left
        else:
            padding = as_tuple(pad, nd, "padding", call.where)
            windows = windows_of(kernel, stride, padding, dilation)
            out = spatial_out(call, sizes, windows)
        c_out = int(w.shape[0])
        shape = (*(x.shape[:1] if batched else ()), c_out, *out)
        out_t = new_tensor(shape, x)
        out_elems = numel(shape)
        macs = out_elems * (c_in // groups) * numel(kernel)
        return Effect(
            output=out_t,
            macs=macs,
            other_ops=out_elems if b is not None else 0,
            spatial=Spatial("window", windows=windows, dims=nd),
            layer=Layer(Kind.CONV, windows, groups=groups, out_channels=c_out),
            saved=(x, w),
        )

    return rule


for _nd, _funcs in (
    (1, (torch.conv1d, F.conv1d)),
    (2, (torch.conv2d, F.conv2d)),
    (3, (torch.conv3d, F.conv3d)),
):
    _add(
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
        stride = as_tuple(call.get("stride", 1), nd, "stride", call.where)
        padding = as_tuple(call.get("padding", 0), nd, "padding", call.where)
        out_pad = as_tuple(call.get("output_padding", 0), nd, "output_padding", call.where)
        dilation = as_tuple(call.get("dilation", 1), nd, "dilation", call.where)
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
        macs = x.numel() * (c_out // groups) * numel(kernel)
        return Effect(
            output=new_tensor(shape, x),
            macs=macs,
            other_ops=numel(shape) if b is not None else 0,
            spatial=UNKNOWN,
            layer=Layer(
                Kind.CONV_TRANSPOSE,
                windows_of(kernel, stride, padding, dilation),
                groups=groups,
                out_channels=c_out,
            ),
            saved=(x,),
        )

    return rule


for _nd, _funcs in (
    (1, (torch.conv_transpose1d, F.conv_transpose1d)),
    (2, (torch.conv_transpose2d, F.conv_transpose2d)),
    (3, (torch.conv_transpose3d, F.conv_transpose3d)),
):
    _add(
        _funcs,
        f"conv_transpose{_nd}d",
        ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    )(_conv_transpose_rule(_nd))


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
