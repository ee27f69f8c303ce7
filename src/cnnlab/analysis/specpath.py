"""The spec path: the analysis of a network written in the compact notation from its
:class:`~cnnlab.notation.Spec`, without building a module.

``analyze(build_on_meta(...), size)`` builds every ``nn.Module`` (about 50 us each in
PyTorch's constructors) and traces the forward through module hooks.  For a network of the
notation the modules are known from the spec, so :func:`analyze_spec` makes up what the trace
would record instead: for each layer it opens the module call's :class:`Frame` itself and runs
that module's forward code (:mod:`~cnnlab.analysis.specforward`: the same torch calls with the
same arguments, on shape-only parameters), handing each call to the same tracer as its mode
would (:meth:`SpecRun.op`, without PyTorch's dispatch), then hands the tree to the
same :func:`~cnnlab.analysis.core.assemble`.  So the rules, rows, totals, fields and memory
have one implementation, and the result equals the module path's, field by field (the test
suite compares them over the whole zoo).

A layer kind with no description (none today) falls back to the module path: correct, slower.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.analysis import rules as R
from cnnlab.analysis.core import analyze, assemble
from cnnlab.analysis.hooks import close_frame, open_frame
from cnnlab.analysis.meta import build_on_meta
from cnnlab.analysis.records import Frame
from cnnlab.analysis.result import Analysis
from cnnlab.analysis.rules.base import META
from cnnlab.analysis.specforward import describes, sequence
from cnnlab.analysis.tracer import finish, start
from cnnlab.errors import CnnlabError, check_int
from cnnlab.notation import BuildPlan, Spec, parse_spec

__all__ = ["SpecRun", "analyze_spec"]


def analyze_spec(
    spec: Spec | str | BuildPlan,
    in_channels: int = 3,
    input_size: int | tuple[int, int] | None = None,
    *,
    model: str = "SpecNet",
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    strict: bool = False,
    build: Callable[[], nn.Module] | None = None,
) -> Analysis:
    """``analyze(build_spec(spec, in_channels, input_size), (in_channels, H, W))``, equal field
    by field, without building the network (see the module docstring): the fast analysis of
    a network written in the compact notation.

    ``spec``: notation text, a :class:`~cnnlab.notation.Spec`, or a
    :class:`~cnnlab.notation.BuildPlan` (what :func:`cnnlab.zoo.model_spec` gives for a zoo
    model: its spec, input and class name, which then replace ``in_channels``,
    ``input_size`` and ``model``).  ``input_size``: ``(H, W)`` or an int (required: the
    analysis needs sizes).  ``model``: the class name the analysis reports.  ``batch``,
    ``dtype`` and ``strict`` as for :func:`~cnnlab.analysis.analyze`.  ``build``: what builds
    the model where the spec path cannot describe a layer (default: ``build_spec`` on the
    meta device), analysed then by the module path.
    """
    # No cyclic-GC passes (as in analyze()), from the start: the first allocations after a
    # plan of a deep network (its objects all young) would set off a full pass.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze_spec(spec, in_channels, input_size, model, batch, dtype, strict, build)
    finally:
        if gc_was_enabled:
            gc.enable()


def _analyze_spec(spec, in_channels, input_size, model, batch, dtype, strict, build) -> Analysis:
    if isinstance(spec, BuildPlan):
        spec, in_channels, input_size, model = (
            spec.spec, spec.in_channels, spec.input_size, spec.type_name
        )  # fmt: skip
    elif isinstance(spec, str):
        spec = parse_spec(spec)
    elif not isinstance(spec, Spec):
        raise CnnlabError(f"analyze_spec takes notation text or a Spec, got {type(spec).__name__}")
    hw = _checked_hw(input_size)
    check_int("batch", batch)
    if not isinstance(dtype, torch.dtype):
        raise CnnlabError(f"dtype must be a torch.dtype, got {dtype!r}")
    steps = spec.infer(in_channels, hw)  # the build's checks and errors, before any tensor
    if not describes(spec):
        return _module_path(spec, in_channels, hw, model, batch, dtype, strict, build)
    return _run(steps, in_channels, hw, model, batch, dtype, strict)


def _checked_hw(input_size: Any) -> tuple[int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if (
        not isinstance(input_size, tuple | list)
        or len(input_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_size)
    ):
        raise CnnlabError(
            f"input_size must be a positive int or a pair (H, W) of positive ints, got "
            f"{input_size!r} (the analysis needs the input's size)"
        )
    return (input_size[0], input_size[1])


def _module_path(spec, in_channels, hw, model, batch, dtype, strict, build) -> Analysis:
    """The fallback: build the network (on the meta device) and trace it."""
    from dataclasses import replace

    from cnnlab.notation import build_spec

    if build is not None:
        net = build()
    else:
        net = build_on_meta(build_spec, spec, in_channels=in_channels, input_size=hw)
    result = analyze(net, (in_channels, *hw), batch=batch, dtype=dtype, strict=strict)
    return result if build is not None else replace(result, model=model)


def _run(steps, in_channels, hw, model, batch, dtype, strict) -> Analysis:
    x = torch.empty((batch, in_channels, *hw), dtype=dtype, device="meta")
    root = Frame(path="", module=None, parent=None, depth=0, call=1, type_name=model)
    root.input_shapes = (tuple(x.shape),)
    run = SpecRun(start(root, (x,), strict, R.DEFAULT_RULES, [], []))
    # The tracer's mode is not entered: each torch call of the forwards is handed to it
    # directly (SpecRun.op), as the mode would hand it, without PyTorch's dispatch to Python
    # (3-15 us a call) and with plain reads of the tensors' shapes in between.
    with torch.no_grad():
        y = sequence(run, steps, "", x)
    result = finish(run.tracer, y, (x,), run.parameters, run.buffers)
    return assemble(result, model, (x,), batch, strict, [], run.own)


class SpecRun:
    """One spec-path trace: the tracer, and the shape-only parameters and buffers of the
    modules the spec stands for (each made once, at the module's path)."""

    def __init__(self, tracer: Any):
        self.tracer = tracer
        self.handle = tracer.__torch_function__
        self.modules = tracer.rules.modules
        self.parameters: list[torch.Tensor] = []
        self.buffers: list[torch.Tensor] = []
        self.own: dict[str, list[tuple[str, torch.Tensor]]] = {}

    def params(self, path: str, **shapes: Sequence[int] | None) -> list[torch.Tensor | None]:
        """The parameters of the module at ``path``, by attribute in registration order
        (a None shape: the module registers None there, e.g. a conv without bias)."""
        out: list[torch.Tensor | None] = []
        tracer = self.tracer
        # (made outside the trace, which sees only calls given to op(): not allocations)
        for attr, shape in shapes.items():
            if shape is None:
                out.append(None)
                continue
            # A leaf that requires a gradient: all the analysis reads of an nn.Parameter (its
            # shape, dtype, requires_grad), without a process's first Parameter (~0.1 ms).
            p = torch.empty(tuple(shape), device=META, requires_grad=True)
            self.parameters.append(p)
            self.own.setdefault(path, []).append((attr, p))
            tracer.params.add(id(p))
            tracer.state.add(id(p))
            out.append(p)
        return out

    def buffer(self, shape: Sequence[int], dtype: torch.dtype | None = None) -> torch.Tensor:
        """A buffer of the module being made (``dtype`` None: the default, as modules make)."""
        b = torch.empty(tuple(shape), dtype=dtype, device=META)
        self.buffers.append(b)
        self.tracer.state.add(id(b))
        return b

    def enter(self, path: str, cls: type, x: torch.Tensor) -> Frame:
        """Open the call of the module of class ``cls`` at ``path`` on ``x``."""
        shapes = (tuple(x.shape),)  # (no mode to step around: see _run)
        return open_frame(self.tracer, path, 1, None, [x], shapes, type_name=cls.__name__)

    def leave(
        self, frame: Frame, cls: type, x: torch.Tensor, y: torch.Tensor, module: Any = None
    ) -> torch.Tensor:
        """Close ``frame`` on its output ``y``, with ``cls``'s module rule if it has one
        (``module``: what the rule reads of the module, where it reads anything)."""
        close_frame(self.tracer, frame, [y], (tuple(y.shape),))
        rule = self.modules.get(cls)
        if rule is not None:
            frame.override = rule(module, [x], y)
        return y

    def op(self, fn: Callable, *args, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` traced: what the tracer's mode does with the call when the
        module's forward makes it (``fn`` the function object PyTorch hands the mode: a
        method of ``torch.Tensor`` for ``x + y``, ``x.view(...)``, ``x[...]``)."""
        return self.handle(fn, (), args, kwargs)

    def leaf(self, path: str, cls: type, x: torch.Tensor, fn: Callable, *args, **kwargs):
        """A module whose forward is the one call ``fn(*args, **kwargs)``."""
        frame = self.enter(path, cls, x)
        return self.leave(frame, cls, x, self.handle(fn, (), args, kwargs))
