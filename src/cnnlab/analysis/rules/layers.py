"""Module rules for cnnlab's own layers: a cost that is not the sum of the ops a layer runs,
or a kind the lecture names (a block listed as one row, LeNet-5's subsampling)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.rules.base import Kind, ModuleCount, ModuleRule
from cnnlab.layers import BasicBlock, Bottleneck, ConnectionTableConv2d, Inception, Subsampling

__all__ = ["MODULES"]


def _connection_table_conv(
    module: ConnectionTableConv2d, inputs: list[torch.Tensor], output: Any
) -> ModuleCount:
    # The layer runs a dense convolution with zeros in the unconnected kernel slices, but the
    # network it stands for (LeNet-5's C3) only has the connected pairs: MACs = output
    # positions x connections x kH x kW (LeCun et al. 1998: C3 has 151,600 connections =
    # 150,000 multiply-adds + 1,600 bias additions).
    kh, kw = module.kernel_size
    n = output.shape[0] if output.dim() == 4 else 1
    positions = output.shape[-2] * output.shape[-1]
    macs = n * positions * module.connections * kh * kw
    biases = output.numel() if module.bias is not None else 0
    return ModuleCount(macs=macs, other_ops=biases, connections=module.connections)


def _kind(kind: Kind) -> ModuleRule:
    def rule(module: nn.Module, inputs: list[torch.Tensor], output: Any) -> ModuleCount:
        return ModuleCount(kind=kind)

    return rule


# module type (exact) -> rule, read-only.
MODULES: MappingProxyType[type, ModuleRule] = MappingProxyType(
    {
        ConnectionTableConv2d: _connection_table_conv,
        Subsampling: _kind(Kind.SUBSAMPLE),  # a window sum, scaled: LeNet-5's S2 and S4
        Inception: _kind(Kind.BLOCK),
        BasicBlock: _kind(Kind.BLOCK),
        Bottleneck: _kind(Kind.BLOCK),
    }
)
