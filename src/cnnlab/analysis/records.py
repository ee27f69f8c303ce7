"""What a trace records: a :class:`Frame` per module call (its ops and sub-calls, shapes,
fields and producers), an :class:`OpRecord` per counted torch call, and the
:class:`TraceResult` that :func:`cnnlab.analysis.tracer.trace` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.analysis import rules as R
from cnnlab.analysis.fields import Fields
from cnnlab.analysis.rules.base import ModuleCount

__all__ = ["Frame", "OpRecord", "TraceResult"]


@dataclass(slots=True)
class OpRecord:
    name: str
    parent: Frame
    effect: R.Effect | None  # None: no rule (uncounted)
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    out_info: Fields | None
    fits: tuple[Any, ...] = ()  # geometry.Fit per spatial axis (window ops)
    alloc_values: int = 0
    alloc_bytes: int = 0
    view: bool = False  # a pure view with no rule: zero cost, counted
    n: int = 1  # the n-th call of an op of this name directly in its frame
    # Producers of the traced inputs, in argument order: an op, or None for the model input.
    sources: tuple[OpRecord | None, ...] = ()
    itemsize: int = 0  # bytes per value of the (first) output; 0: no tensor output

    @property
    def counted(self) -> bool:
        return self.effect is not None or self.view


@dataclass(slots=True)
class Frame:
    """One call of one module."""

    path: str
    module: nn.Module | None  # None for a call the spec path made up (type_name says what)
    parent: Frame | None
    depth: int
    call: int
    items: list[Frame | OpRecord] = field(default_factory=list)
    input_shapes: tuple[tuple[int, ...], ...] = ()
    output_shapes: tuple[tuple[int, ...], ...] = ()
    out_info: Fields | None = None
    override: ModuleCount | None = None  # a module rule's counts and kind
    sources: tuple[OpRecord | None, ...] = ()  # producers of the call's tensor inputs
    itemsize: int = 0  # bytes per value of the (first) output
    op_counts: dict[str, int] = field(default_factory=dict)
    where: str = ""  # "path (Type)", for messages
    type_name: str = ""  # the module's class name (from the module unless given)

    def __post_init__(self) -> None:
        if not self.type_name:
            self.type_name = type(self.module).__name__
        self.where = f"{self.path or '(model)'} ({self.type_name})"

    def add_op(self, rec: OpRecord) -> None:
        rec.n = self.op_counts[rec.name] = self.op_counts.get(rec.name, 0) + 1
        self.items.append(rec)

    @property
    def type(self) -> str:
        return self.type_name

    @property
    def has_children(self) -> bool:
        for i in self.items:  # noqa: SIM110 - a loop, not a generator: read for every row key
            if type(i) is Frame:
                return True
        return False

    @property
    def children(self) -> list[Frame]:
        return [i for i in self.items if isinstance(i, Frame)]

    @property
    def ops(self) -> list[OpRecord]:
        return [i for i in self.items if isinstance(i, OpRecord)]


@dataclass
class TraceResult:
    root: Frame
    output: Any
    saved_bytes: int
    input_values: int
    input_bytes: int
    used: dict[int, Frame] = field(default_factory=dict)  # id(parameter) -> first user
    parameters: list[nn.Parameter] = field(default_factory=list)  # model.parameters()
    buffers: list[torch.Tensor] = field(default_factory=list)  # model.buffers()
    replayed: int = 0  # block calls rebuilt from an earlier call's record (analysis.replay)
