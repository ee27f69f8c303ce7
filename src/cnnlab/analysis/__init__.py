"""Static analysis of any network: shapes, parameters, memory, multiply-adds, receptive fields.

``analyze(model, (3, 224, 224))`` traces one forward on shape-only tensors (nothing is
allocated, the model is not modified) and returns an :class:`Analysis`: one :class:`Row` per
module call or functional op (its typed :class:`Layer`, and the rows it reads from: the
graph), and :class:`Totals`.  Counting rules live in one read-only table per family of ops
(:mod:`cnnlab.analysis.rules`), overridable per analysis (``rules=``); renderers
(:mod:`cnnlab.analysis.render`) turn the result into a terminal table, Markdown, CSV, JSON or
the lecture's lines.

The analysis works on any ``nn.Module`` and imports nothing of the zoo.  A network written in
the compact notation has a faster way to the same result: :func:`analyze_spec` analyses its
spec without building a module (:mod:`cnnlab.analysis.specpath`).
"""

from __future__ import annotations

from cnnlab.analysis.core import analyze
from cnnlab.analysis.meta import build_on_meta
from cnnlab.analysis.result import (
    INPUT,
    Analysis,
    Kind,
    Layer,
    RField,
    Row,
    RowKey,
    Totals,
    TrainingMemory,
)
from cnnlab.analysis.rules import (
    CONVENTIONS,
    DEFAULT_RULES,
    Call,
    Effect,
    ModuleCount,
    OpRule,
    RuleTable,
    Spatial,
    op_rule,
)
from cnnlab.analysis.specpath import analyze_spec
from cnnlab.errors import AnalysisError, ShapeError

__all__ = [
    "CONVENTIONS",
    "DEFAULT_RULES",
    "INPUT",
    "Analysis",
    "AnalysisError",
    "Call",
    "Effect",
    "Kind",
    "Layer",
    "ModuleCount",
    "OpRule",
    "RField",
    "Row",
    "RowKey",
    "RuleTable",
    "ShapeError",
    "Spatial",
    "Totals",
    "TrainingMemory",
    "analyze",
    "analyze_spec",
    "build_on_meta",
    "op_rule",
]
