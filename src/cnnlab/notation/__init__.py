"""cnnlab's compact notation for networks: text <-> intermediate form <-> ``nn.Module``.

>>> from cnnlab.notation import parse_spec, format_spec
>>> format_spec(parse_spec("CONV3-64 RELU, conv3-64 relu, maxpool, fc-10, softmax"))
'(conv3-64-relu)*2-maxpool-fc-10,softmax'

- :func:`parse_spec` (text -> :class:`Spec`), :func:`format_spec` (Spec or model -> text),
  :func:`build_spec` (Spec or text -> ``nn.Sequential``), :func:`lecture_pattern` (the
  lecture's ``[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K,SOFTMAX`` as text).
- The layer kinds (each one's words, options, defaults, text, module and read-back):
  :mod:`cnnlab.notation.kinds` (global and adaptive pooling, zero padding:
  :mod:`cnnlab.notation.sizes`; GoogLeNet's ``inception(...)`` and ResNet's ``basic``/
  ``bottleneck`` blocks: :mod:`cnnlab.notation.blocks`); branches ``{a | b}cat``:
  :mod:`cnnlab.notation.branch`; named groups ``[...](name=layer1)``:
  :mod:`cnnlab.notation.group`; the grammar: :mod:`cnnlab.notation.parser`; the intermediate
  form and its shape inference: :mod:`cnnlab.notation.spec`.

Parsing and formatting need no torch; ``build_spec`` and ``SpecNet`` import it on first use.
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports
from cnnlab.notation.branch import Branch
from cnnlab.notation.formatter import format_spec, spec_from_module
from cnnlab.notation.group import Group
from cnnlab.notation.kinds import (
    FC,
    KINDS,
    LRN,
    Activation,
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Identity,
    Inception,
    Layer,
    Pool,
    Residual,
    Softmax,
    Subsample,
    ZeroPad,
    layer_text,
)
from cnnlab.notation.lecture import lecture_pattern
from cnnlab.notation.parser import MAX_LAYERS, parse_spec
from cnnlab.notation.spec import Spec, Step

__all__ = [
    "FC",
    "KINDS",
    "LRN",
    "MAX_LAYERS",
    "Activation",
    "AdaptiveAvgPool",
    "BatchNorm",
    "Branch",
    "BuildPlan",
    "Conv",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "Group",
    "Identity",
    "Inception",
    "Layer",
    "Pool",
    "Residual",
    "Softmax",
    "Spec",
    "SpecNet",
    "Step",
    "Subsample",
    "ZeroPad",
    "build_spec",
    "format_spec",
    "layer_text",
    "lecture_pattern",
    "not_a_spec",
    "parse_spec",
    "plan_build",
    "spec_from_module",
]

_LAZY = {
    name: "cnnlab.notation.build"
    for name in ("BuildPlan", "SpecNet", "build_spec", "not_a_spec", "plan_build")
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
