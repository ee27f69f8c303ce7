"""Rules for cnnlab's own layers whose cost is not the sum of the ops they run.

Imported lazily by :func:`cnnlab.analysis.rules.module_rule_for`, so that the engine itself
depends on nothing above torch.
"""

from __future__ import annotations

from typing import Any

from cnnlab.analysis.rules import module_rule
from cnnlab.layers import ConnectionTableConv2d


@module_rule(ConnectionTableConv2d)
def _connection_table_conv(module: ConnectionTableConv2d, inputs, output) -> dict[str, Any]:
    # The layer runs a dense convolution with zeros in the unconnected kernel slices, but the
    # network it stands for (LeNet-5's C3) only has the connected pairs: MACs = output
    # positions x connections x kH x kW (LeCun et al. 1998: C3 has 151,600 connections =
    # 150,000 multiply-adds + 1,600 bias additions).
    kh, kw = module.kernel_size
    n = output.shape[0] if output.dim() == 4 else 1
    positions = output.shape[-2] * output.shape[-1]
    macs = n * positions * module.connections * kh * kw
    biases = output.numel() if module.bias is not None else 0
    return {
        "macs": macs,
        "other_ops": biases,
        "hyper": {"connections": module.connections},
    }
