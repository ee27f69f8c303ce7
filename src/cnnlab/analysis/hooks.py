"""The module hooks of a trace: a forward pre-hook opens a :class:`Frame` per module call and
a post-hook closes it (its output shapes, itemsize, receptive field and the module's own
counting rule), and both tell the replayer (:mod:`~cnnlab.analysis.replay`) when a call it
records begins and ends.

They are two global module hooks that skip modules outside the model (two registrations
instead of two per module: 8,424 for ResNet-1202), or a pair per module where a module has
forward hooks of its own, so that ours still run after them (they may change a call's inputs
or output) as they would if registered last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from cnnlab.analysis.records import Frame
from cnnlab.analysis.walk import tensors_in

if TYPE_CHECKING:
    from cnnlab.analysis.tracer import _Tracer

__all__ = ["ModuleHooks", "close_frame", "open_frame"]

# Turns off every torch-function handler, the tracer's mode included, for metadata reads.
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


class ModuleHooks:
    """Forward pre/post hooks that open and close a :class:`Frame` per module call."""

    def __init__(self, model: nn.Module, tracer: _Tracer, named: list[tuple[str, nn.Module]]):
        self.model = model
        self.tracer = tracer
        self.calls: dict[str, int] = {}
        self.paths: dict[int, str] = {}
        for name, m in named:
            self.paths.setdefault(id(m), name)

    def pre(self, module: nn.Module, args: Any) -> None:
        tracer = self.tracer
        # Reading shapes here, outside the tracer's own handler, would be one intercepted
        # call per tensor attribute: they are metadata, read with interception off.
        tensors = tensors_in(args)
        with _NO_TORCH_FUNCTION():
            shapes = tuple(tuple(t.shape) for t in tensors)
        if module is self.model:
            tracer.stack[0].input_shapes = shapes
            return
        path = self.paths.get(id(module), "?")
        call = self.calls[path] = self.calls.get(path, 0) + 1
        open_frame(tracer, path, call, module, tensors, shapes)

    def post(self, module: nn.Module, args: Any, output: Any) -> None:
        tracer = self.tracer
        if module is self.model:
            return
        frame = tracer.stack[-1]
        if frame.module is not module:  # a forward that raised: the stack is unwound later
            return
        outs = tensors_in(output)
        close_frame(tracer, frame, outs)
        rule = tracer.rules.module(module)
        if rule is not None:
            frame.override = rule(module, tensors_in(args), output)
        if tracer.recording is not None:
            tracer.recording.close(frame, outs)

    def register(self, named: list[tuple[str, nn.Module]], own_hooks: bool) -> list:
        """Install the hooks (see the module docstring); returns the handles to remove."""
        if own_hooks:
            handles = []
            for _, m in named:
                handles.append(m.register_forward_pre_hook(self.pre))
                handles.append(m.register_forward_hook(self.post, always_call=True))
            return handles
        paths = self.paths

        def pre(module: nn.Module, args: Any) -> None:
            if id(module) in paths:
                self.pre(module, args)

        def post(module: nn.Module, args: Any, output: Any) -> None:
            if id(module) in paths:
                self.post(module, args, output)

        return [
            register_module_forward_pre_hook(pre),
            register_module_forward_hook(post, always_call=True),
        ]


def open_frame(
    tracer: _Tracer,
    path: str,
    call: int,
    module: nn.Module | None,
    tensors: list[torch.Tensor],
    shapes: tuple[tuple[int, ...], ...] | None = None,
    type_name: str = "",
) -> Frame:
    """Open the :class:`Frame` of one module call (``module`` None: a call the spec path
    describes, :mod:`~cnnlab.analysis.specpath`, named ``type_name``) under the current one."""
    if shapes is None:
        with _NO_TORCH_FUNCTION():
            shapes = tuple(tuple(t.shape) for t in tensors)
    parent = tracer.stack[-1]
    frame = Frame(
        path=path,
        module=module,
        parent=parent,
        depth=path.count(".") + 1,
        call=call,
        input_shapes=shapes,
        sources=tracer.sources_of(tensors),
        type_name=type_name,
    )
    parent.items.append(frame)
    tracer.stack.append(frame)
    if tracer.recording is not None:
        tracer.recording.open(frame, tensors)
    return frame


def close_frame(
    tracer: _Tracer,
    frame: Frame,
    outs: list[torch.Tensor],
    shapes: tuple[tuple[int, ...], ...] | None = None,
) -> None:
    """Close ``frame`` (the current call) on its outputs: their shapes (``shapes`` where the
    caller has them, read outside any torch-function mode), itemsize and field."""
    tracer.stack.pop()
    if shapes is None:
        with _NO_TORCH_FUNCTION():
            shapes = tuple(tuple(t.shape) for t in outs)
    frame.output_shapes = shapes
    # The producing op knows its output's itemsize; asking the tensor here would be one
    # more intercepted call per module.
    rec = tracer.producer.get(id(outs[0])) if outs else None
    frame.itemsize = rec.itemsize if rec is not None else 0
    frame.out_info = tracer.info_of(outs[0]) if outs else None
