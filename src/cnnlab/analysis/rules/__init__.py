"""The counting rules: the protocol (:mod:`~cnnlab.analysis.rules.base`) and one module per
family of ops, gathered into the read-only :data:`DEFAULT_RULES`.

Conventions (stated in every report, see :data:`CONVENTIONS`):

* ``macs``: multiply-accumulates of convolutions, linear layers, matrix products, einsum,
  attention and recurrent layers only, bias excluded: conv ``out_elements * C_in/groups * kH *
  kW``; linear ``rows * in * out``; attention ``L * S * (E + Ev)`` per head; recurrent layers
  ``steps * sum of their weight matrices' sizes`` (:mod:`.attention`, :mod:`.recurrent`).  This
  is torchvision's metadata convention and the papers' (ResNet "FLOPs" are multiply-adds).
  FLOPs = 2 x MACs.
* ``other_ops``: element operations that are not multiply-adds, one per output element for a
  bias, an activation, an addition or multiplication; two per element for a normalization
  (scale and shift); one per window cell read for pooling.  Never added to MACs.

A function with no rule is never silently zero: the tracer runs it on shape-only tensors and
lists it as *uncounted*, unless it is a pure view (``view``, ``transpose``, slicing), which moves
no data and costs nothing.  Adding an op means adding one rule to its family; overriding one
for a single analysis is ``analyze(model, size, rules={F.conv2d: my_rule})``.
"""

from __future__ import annotations

from types import MappingProxyType

from cnnlab.analysis.rules import (
    attention,
    conv,
    elementwise,
    layers,
    linalg,
    norm,
    pool,
    recurrent,
    shape,
)
from cnnlab.analysis.rules.base import (
    CONVENTIONS,
    Call,
    Effect,
    ModuleCount,
    ModuleRule,
    OpRule,
    Rule,
    RuleTable,
    Spatial,
    axis_name,
    op_rule,
)

__all__ = [
    "CONVENTIONS",
    "DEFAULT_RULES",
    "Call",
    "Effect",
    "ModuleCount",
    "ModuleRule",
    "OpRule",
    "Rule",
    "RuleTable",
    "Spatial",
    "axis_name",
    "op_rule",
]


def _gather() -> RuleTable:
    ops: dict = {}
    for family in (conv, linalg, attention, recurrent, norm, elementwise, pool, shape):
        clash = ops.keys() & family.OPS.keys()
        if clash:  # pragma: no cover - a function belongs to one family
            raise RuntimeError(f"{family.__name__} redefines rules for {sorted(map(str, clash))}")
        ops.update(family.OPS)
    return RuleTable(MappingProxyType(ops), layers.MODULES)


# The rules every analysis starts from (read-only; see RuleTable.with_overrides).
DEFAULT_RULES: RuleTable = _gather()
