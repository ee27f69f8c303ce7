"""Static analysis of any network: shapes, parameters, memory, multiply-adds, receptive fields.

``analyze(model, (3, 224, 224))`` traces one forward on shape-only tensors (nothing is
allocated, the model is not modified) and returns an :class:`Analysis`: one :class:`Row` per
module call or functional op, and :class:`Totals`.  Counting rules live in one table
(:mod:`cnnlab.analysis.rules`); renderers (:mod:`cnnlab.analysis.render`) turn the result into
a terminal table, Markdown, CSV, JSON or the lecture's lines.
"""

from __future__ import annotations

from cnnlab.analysis.core import analyze
from cnnlab.analysis.meta import build_on_meta
from cnnlab.analysis.result import Analysis, RField, Row, Totals, TrainingMemory
from cnnlab.analysis.rules import CONVENTIONS, module_rule, op_rule
from cnnlab.errors import AnalysisError, ShapeError

__all__ = [
    "CONVENTIONS",
    "Analysis",
    "AnalysisError",
    "RField",
    "Row",
    "ShapeError",
    "Totals",
    "TrainingMemory",
    "analyze",
    "build_on_meta",
    "module_rule",
    "op_rule",
]
