"""Normalizations: batch, layer, group and instance norm, and local response norm."""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from cnnlab.analysis.rules.base import (
    Call,
    Effect,
    Kind,
    Layer,
    is_tensor,
    new_tensor,
    numel,
    rule_adder,
)
from cnnlab.errors import ShapeError

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)


@_add(
    (F.batch_norm, torch.batch_norm),
    "batch_norm",
    ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
)
def _batch_norm(call: Call) -> Effect:
    x = call["input"]
    channels = x.shape[1] if x.dim() > 1 else x.shape[0]
    for name in ("running_mean", "running_var", "weight", "bias"):
        t = call.args.get(name)
        if is_tensor(t) and t.numel() != channels:
            raise ShapeError(
                f"{call.where}: batch norm over {t.numel()} channels got an input with "
                f"{channels} ({tuple(x.shape)})"
            )
    # Autograd keeps the input and, when batch statistics are used, the per-channel mean and
    # inverse standard deviation (float32).  Running statistics are model buffers, not counted.
    batch_stats = bool(call.get("training", False)) or call.args.get("running_mean") is None
    extra = 2 * channels * 4 if batch_stats else 0
    return Effect(
        new_tensor(x.shape, x), other_ops=2 * x.numel(), saved=(x,), saved_extra_bytes=extra
    )


def _stat_size(x: torch.Tensor) -> int:
    """Bytes of one saved mean or inverse standard deviation: float64 for float64 inputs,
    float32 otherwise (half precision accumulates in float32)."""
    return 8 if x.dtype == torch.float64 else 4


@_add((F.layer_norm,), "layer_norm", ("input", "normalized_shape", "weight", "bias", "eps"))
def _layer_norm(call: Call) -> Effect:
    x = call["input"]
    shape = call["normalized_shape"]
    k = 1 if isinstance(shape, int) else len(shape)
    if tuple(x.shape[x.dim() - k :]) != ((shape,) if isinstance(shape, int) else tuple(shape)):
        raise ShapeError(
            f"{call.where}: layer norm over {tuple(shape) if k > 1 else shape} got an input "
            f"of shape {tuple(x.shape)}"
        )
    # Autograd keeps the input and the mean and inverse standard deviation of each normalized
    # row (measured with saved_tensors_hooks, torch 2.13).
    rows = x.numel() // max(1, numel(x.shape[x.dim() - k :]))
    return Effect(
        new_tensor(x.shape, x),
        other_ops=2 * x.numel(),
        saved=(x,),
        saved_extra_bytes=2 * rows * _stat_size(x),
    )


@_add((F.group_norm,), "group_norm", ("input", "num_groups", "weight", "bias", "eps"))
def _group_norm(call: Call) -> Effect:
    x = call["input"]
    groups = int(call["num_groups"])
    n = int(x.shape[0]) if x.dim() > 1 else 1
    # The input, and a mean and inverse standard deviation per example and group.
    return Effect(
        new_tensor(x.shape, x),
        other_ops=2 * x.numel(),
        saved=(x,),
        saved_extra_bytes=2 * n * groups * _stat_size(x),
    )


@_add(
    (F.instance_norm,),
    "instance_norm",
    ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats"),
)
def _instance_norm(call: Call) -> Effect:
    x = call["input"]
    maps = int(x.shape[0]) * int(x.shape[1]) if x.dim() > 2 else int(x.shape[0])
    # PyTorch runs a batch norm over all N*C maps: it keeps the input, a mean and inverse
    # standard deviation per map, and the affine weight repeated N times.
    extra = 2 * maps * _stat_size(x)
    w = call.args.get("weight")
    if is_tensor(w):
        extra += maps * w.element_size()
    return Effect(
        new_tensor(x.shape, x), other_ops=2 * x.numel(), saved=(x,), saved_extra_bytes=extra
    )


@_add((F.local_response_norm,), "local_response_norm", ("input", "size", "alpha", "beta", "k"))
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
        new_tensor(x.shape, x),
        other_ops=(n + 5) * x.numel(),
        layer=Layer(Kind.LRN),
        saved=(x,),
        saved_extra_bytes=extra,
    )


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
