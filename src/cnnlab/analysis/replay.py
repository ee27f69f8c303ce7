"""Replaying repeated blocks: a deep ResNet calls the same residual block, with the same
hyperparameters, on inputs of the same shape, up to 200 times a stage (ResNet-1202: 600
blocks of 5 kinds).  The first such call is traced and its record kept; each later one is
rebuilt from that record instead of running its forward again: the same frames, ops, counts,
shapes, fits, memory and gradient flags (all functions of what the key holds), with the
receptive fields, producers (the graph) and first parameter uses worked out again from the
call's own inputs.

When two calls give the same rows, provably: only blocks of the classes in :data:`BLOCKS`,
in a model built only of modules of the classes in :data:`PURE` (or subclasses of
nn.Sequential that change nothing of how it runs), whose forwards (read here, all in PyTorch
or cnnlab) depend on nothing but their modules' attributes and their inputs' metadata, and
assign nothing (so what was keyed before the trace holds throughout).  The key of a call
(:func:`static_key`, :func:`call_key`) holds, for every module of the block, its exact
class, its training flag, every attribute that is not nn.Module's own bookkeeping (only plain
values: numbers, strings, dtypes and tuples or lists of them; any other value and the block
is never replayed), its parameters' and buffers' shapes, strides, dtypes, devices and
``requires_grad``, and its submodules' names; and for the call, every argument: a tensor's
shape, strides, dtype, device, whether it is a view (and of what) and whether a training
forward would give it a gradient, any other argument by type and value.  A record is kept
only when everything the traced call read or made is accounted for: its inputs, the block's
own parameters and buffers, and the outputs of its counted calls (anything else, e.g. a
constant made in the forward, an op run on real tensors or a parameter of another module,
and that key is traced every time).  Nothing is replayed when the analysis has rules of its
own (a user rule may count calls), when a module has forward hooks, or when a module,
parameter or buffer is held twice in the model (shared weights).
:data:`ENABLED` turns replay off (the tests compare both ways).
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as _module

from cnnlab.analysis.fields import Fields, derive, globalized
from cnnlab.analysis.records import Frame, OpRecord
from cnnlab.analysis.walk import storage_owner, tensors_in
from cnnlab.layers import (
    BasicBlock,
    Bottleneck,
    ConnectionTableConv2d,
    Inception,
    LocalResponseNorm,
    ScaledTanh,
    Subsampling,
    ZeroPadShortcut,
)

__all__ = ["BLOCKS", "ENABLED", "PURE", "Replayer", "all_pure", "call_key", "static_key"]

ENABLED = True

# Blocks worth replaying: several layers each, repeated many times in a network.
BLOCKS: frozenset[type] = frozenset({BasicBlock, Bottleneck})

# Modules whose forward is a function of their attributes (the key) and their inputs' metadata
# alone (no global state, no random numbers, no values of tensors that decide shapes: the
# connection table's index buffer is made from its table attribute) and assigns nothing
# (BatchNorm's in-place count of batches runs on a stand-in in a trace).  Subclasses of
# nn.Sequential that change nothing of how it runs count as nn.Sequential (_pure).
PURE: frozenset[type] = frozenset(
    {
        BasicBlock, Bottleneck, ZeroPadShortcut, Inception, LocalResponseNorm, ScaledTanh,
        Subsampling, ConnectionTableConv2d, nn.Sequential, nn.Identity, nn.Dropout,
        nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU,
        nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear, nn.Flatten,
    }
)  # fmt: skip

# nn.Module's own bookkeeping (hook tables, the parameter, buffer and submodule tables): the
# key holds the tables' contents, and no module may have hooks.
_OWN = frozenset(nn.Module().__dict__)
_SCALARS = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device})
_NO = object()  # "not a plain value"

_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


def all_pure(named: list[tuple[str, nn.Module]]) -> bool:
    """Whether every module of a model (its ``named_modules()``) is of a class in PURE, none
    has a forward of its own set on the instance or backward hooks (a call of a module with
    them wraps its inputs), and no global module hook (which could change anything) is
    registered."""
    return (
        not _module._global_forward_hooks
        and not _module._global_forward_pre_hooks
        and not _module._global_backward_hooks
        and not _module._global_backward_pre_hooks
        and all(map(_pure, {type(m) for _, m in named}))
        and all(
            _RUNS.isdisjoint(m.__dict__) and not (m._backward_hooks or m._backward_pre_hooks)
            for _, m in named
        )
    )


@cache
def _pure(cls: type) -> bool:
    """Whether ``cls`` is in PURE, or a subclass of nn.Sequential (a spec's or the zoo's
    networks) that overrides nothing of how a module or a Sequential runs."""
    if cls in PURE:
        return True
    if not issubclass(cls, nn.Sequential):
        return False
    mro = cls.__mro__
    own = set().union(*(vars(c) for c in mro[: mro.index(nn.Sequential)]))
    return not own & _RUNS


# What nn.Sequential's forward calls, and how a module is called and its attributes read.
_RUNS = frozenset(
    {
        "forward", "__iter__", "__len__", "__call__", "_call_impl", "_wrapped_call_impl",
        "__getattr__", "__getattribute__", "__setattr__", "__dir__", "children",
        "named_children", "modules", "named_modules",
    }
)  # fmt: skip


def _plain(v: Any) -> Any:
    """``v`` as a hashable key (types and values), or ``_NO`` if it is not a plain value."""
    t = type(v)
    if t in _SCALARS:
        return (t, v)
    if t is tuple or t is list:
        types = tuple(map(type, v))
        if all(i in _SCALARS for i in types):
            return (t, tuple(v), types)  # the types too: 1, 1.0 and True are equal keys
        items = tuple(_plain(i) for i in v)
        return _NO if any(i is _NO for i in items) else (t, items)
    return _NO


def _tensor_key(t: torch.Tensor | None) -> tuple | None:
    if t is None:
        return None
    return (type(t), tuple(t.shape), t.stride(), t.dtype, t.device, t.requires_grad)


def static_key(module: nn.Module, memo: dict[int, Any]) -> Any:
    """What a block's rows depend on in the block itself (see the module docstring), or None
    where it cannot be replayed.  ``memo`` (id -> key) makes a pass over a model linear."""
    k = memo.get(id(module), _NO)
    if k is not _NO:
        return k
    memo[id(module)] = key = _static_key(module, memo)
    return key


def _static_key(module: nn.Module, memo: dict[int, Any]) -> Any:
    if not _pure(type(module)):
        return None
    d = module.__dict__
    names = tuple(d)
    layout = _LAYOUTS.get((type(module), names))
    if layout is None:  # which attributes are not nn.Module's own, for this class and layout
        layout = _LAYOUTS[(type(module), names)] = tuple(
            i for i, n in enumerate(names) if n not in _OWN
        )
    values = tuple(d.values())
    attrs = tuple(_plain(values[i]) for i in layout)
    if _NO in attrs:
        return None
    children = tuple(_NO if c is None else static_key(c, memo) for c in module._modules.values())
    if None in children:
        return None
    params, buffers = module._parameters, module._buffers
    return (
        type(module),
        module.training,
        names,
        attrs,
        tuple(params),
        tuple(map(_tensor_key, params.values())),
        tuple(buffers),
        tuple(map(_tensor_key, buffers.values())),
        tuple(sorted(module._non_persistent_buffers_set)),
        tuple(module._modules),
        children,
    )


# (class, attribute names in order) -> positions of the attributes that are not nn.Module's own
_LAYOUTS: dict[tuple, tuple[int, ...]] = {}


def call_key(args: tuple, kwargs: dict, needs_grad: Any, state: set[int]) -> tuple | None:
    """What a call's rows depend on in its arguments, or None where it cannot be replayed (a
    tensor in the keyword arguments or nested in an argument, one passed twice or sharing
    storage with another, a parameter or buffer of the model, an argument that is not plain).
    ``needs_grad(t)``: whether a training forward would give ``t`` a gradient; ``state``: ids
    of the model's parameters and buffers."""
    for v in kwargs.values():
        if isinstance(v, torch.Tensor) or _plain(v) is _NO:
            return None
    key = []
    seen: set[int] = set()
    for a in args:
        if not isinstance(a, torch.Tensor):
            pv = _plain(a)
            if pv is _NO:
                return None
            key.append(pv)
            continue
        owner = storage_owner(a)
        if id(a) in seen or id(owner) in seen or id(a) in state or id(owner) in state:
            return None
        seen.add(id(a))
        seen.add(id(owner))
        key.append(
            (
                tuple(a.shape), a.stride(), a.dtype, a.device, a.requires_grad, needs_grad(a),
                a.storage_offset(), None if owner is a else _tensor_key(owner),
            )
        )  # fmt: skip
    return (tuple(key), tuple((k, _plain(v)) for k, v in kwargs.items()))


class _Record:
    """What one traced call of a block did, in slots: its tensor inputs first, then the
    storage owners of those that are views, its parameters and buffers, then each new
    tensor of its counted calls.  ``ok`` turns False at anything it cannot account for."""

    def __init__(self, tracer: Any, module: nn.Module, modules: list[nn.Module], args: tuple):
        self.tracer = tracer
        self.ok = True
        self.slot: dict[int, int] = {}  # id(tensor) -> slot
        self.shapes: list[tuple] = []  # per slot: (shape, stride, dtype) of a new tensor
        self.owner: list[int] = []  # per slot: the slot of its storage owner
        self.n_given = 0  # inputs, their owners, the block's parameters and buffers
        inputs = tensors_in(args)
        for t in inputs:
            self._give(t)
        for t in inputs:
            o = storage_owner(t)
            if o is not t:
                self._give(o)
            self.owner[self.slot[id(t)]] = self.slot[id(o)]
        for m in modules:
            for t in (*m._parameters.values(), *m._buffers.values()):
                if t is not None:
                    self._give(t)
        self.n_inputs = len(inputs)
        self.n_given = len(self.owner)
        self.module_index = {id(m): i for i, m in enumerate(modules)}
        self.frames: list[Frame] = []  # the traced frames under the block, in order
        self.frame_index: dict[int, int] = {}  # id(frame) -> index (0: the block's own)
        self.frame_index[id(tracer.stack[-1])] = 0
        self.events: list[tuple] = []
        self.used_before = set(tracer.used)
        self.n_ops = 0

    def _give(self, t: torch.Tensor) -> None:
        if id(t) not in self.slot:
            self.slot[id(t)] = len(self.owner)
            self.owner.append(len(self.owner))
            self.shapes.append(())

    def slot_of(self, t: Any) -> int:
        s = self.slot.get(id(t), -1) if isinstance(t, torch.Tensor) else -1
        if s < 0:
            self.ok = False
        return s

    def new(self, outs: list[torch.Tensor]) -> tuple[int, ...]:
        """Slots of a counted call's outputs (a new slot for each new tensor)."""
        slots = []
        for o in outs:
            s = self.slot.get(id(o))
            if s is None:
                s = self.slot[id(o)] = len(self.owner)
                owner = storage_owner(o)
                self.owner.append(s if owner is o else self.slot_of(owner))
                self.shapes.append((tuple(o.shape), o.stride(), o.dtype, o.requires_grad))
            slots.append(s)
        return tuple(slots)

    # -- what the tracer reports while the block runs --------------------------------------

    def open(self, frame: Frame, tensors: list[torch.Tensor]) -> None:
        index = self.module_index.get(id(frame.module))
        if index is None:
            self.ok = False
            return
        self.frame_index[id(frame)] = len(self.frames) + 1
        self.frames.append(frame)
        self.events.append((0, index, frame, tuple(self.slot_of(t) for t in tensors)))

    def shadow(self, t: torch.Tensor) -> None:
        """A shape-only stand-in made for a real tensor (BatchNorm's count of batches, counted
        in place on the stand-in); the result of a call on stand-ins is in no slot, so that
        a record using it is never replayed."""
        self.events.append((3, self.slot_of(t)))

    def close(self, frame: Frame, outs: list[torch.Tensor]) -> None:
        self.events.append((1, self.slot_of(outs[0]) if outs else -1, frame))

    def counted(self, rec, ins, primary, outs, grads, saved, extra) -> None:
        """A call with a rule (:meth:`_Tracer._record`)."""
        field = (
            self.slot_of(primary) if primary is not None else -1,
            None if primary is None else tuple(primary.shape[2:]),
            tuple((self.slot_of(t), tuple(t.shape)) for t in ins)
            if rec.effect.spatial.kind == "same"
            else (),
        )
        self._op(rec, [self.slot_of(t) for t in ins], outs, grads, saved, extra, field)

    def uncounted(self, rec, tensors, first, mode, outs, grads) -> None:
        """A call without a rule on shape-only tensors (:meth:`_Tracer._fallback`); ``mode``:
        0 no field, 1 its first input's, 2 that field made global."""
        cells = tuple(first.shape[2:]) if mode == 2 else None
        field = (mode, self.slot_of(first) if first is not None else -1, cells)
        self._op(rec, [self.slot_of(t) for t in tensors], outs, grads, (), 0, field)

    def _op(self, rec, sources, outs, grads, saved, extra, field) -> None:
        if rec.parent is not self.tracer.stack[-1] or id(rec.parent) not in self.frame_index:
            self.ok = False
        out_slots = self.new(outs)
        grad_slots = tuple(self.slot_of(t) for t in grads)
        saved_slots = tuple((self.slot_of(o), o.numel() * o.element_size()) for o in saved)
        self.events.append(
            (2, rec, tuple(sources), out_slots, grad_slots, saved_slots, extra, field)
        )
        self.n_ops += 1

    def finish(self, output: Any) -> _Template | None:
        """The template of this call, or None where it cannot be replayed."""
        if not self.ok or not isinstance(output, torch.Tensor):
            return None
        s = self.slot_of(output)
        if s < 0 or (s >= self.n_given and (self.owner[s] != s or self.shapes[s][3])):
            return None  # a view or a parameter returned, or one that needs a gradient
        used = []
        for pid, frame in self.tracer.used.items():
            if pid in self.used_before:
                continue
            fi = self.frame_index.get(id(frame))
            ps = self.slot.get(pid)
            if fi is None or ps is None or ps >= self.n_given:
                return None
            used.append((ps, fi))
        return _Template(self, s, tuple(used))


class _Template:
    """A traced call's record, ready to be replayed (see :meth:`Replayer.replay`)."""

    def __init__(self, r: _Record, out: int, used: tuple):
        self.n_given = r.n_given
        self.n_inputs = r.n_inputs
        self.owner = r.owner
        self.shapes = r.shapes
        self.events = r.events
        self.out = out
        self.used = used


class Replayer:
    """Installs, for one trace, a ``forward`` on each block that is replayable and repeated,
    which records its first call per key and replays the later ones; the model's state, put
    back after the trace, drops them."""

    def __init__(self, tracer: Any, hooks: Any, named: list[tuple[str, nn.Module]]):
        self.tracer = tracer
        self.hooks = hooks
        self.templates: dict[Any, _Template | None] = {}
        self.replayed = 0
        self.active = False  # recording or replaying: inner blocks run as they are
        memo: dict[int, Any] = {}
        groups: dict[Any, list[nn.Module]] = {}
        # (with torch functions off: a parameter's metadata read through its subclass's
        # handler costs 20 us)
        with _NO_TORCH_FUNCTION():
            for _, m in named:
                if type(m) in BLOCKS:
                    key = static_key(m, memo)
                    if key is not None:
                        groups.setdefault(key, []).append(m)
        self.blocks = {id(m): k for k, ms in groups.items() if len(ms) > 1 for m in ms}
        self.installed = []
        self.subtree: dict[int, list[nn.Module]] = {}
        if self.blocks and sum(len(m._modules) for _, m in named) + 1 != len(named):
            return  # a module held twice (or a None entry): the tree's ids are not unique
        for ms in groups.values():
            if len(ms) > 1:
                for m in ms:
                    m.__dict__["forward"] = partial(self.call, m)
                    self.installed.append(m)
        # Each installed block's modules in its named_modules() order: the entries after it
        # in the model's pre-order walk, while their paths are under its own (no module is
        # held twice, so the walk's order is the block's own).
        n = len(named)
        for i, (path, m) in enumerate(named):
            if id(m) in self.blocks:
                prefix = f"{path}."
                j = i + 1
                while j < n and named[j][0].startswith(prefix):
                    j += 1
                self.subtree[id(m)] = [c for _, c in named[i:j]]

    def call(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        forward = type(module).forward
        if self.active:
            return forward(module, *args, **kwargs)
        with _NO_TORCH_FUNCTION():
            ck = call_key(args, kwargs, self.tracer.needs_grad, self.tracer.state)
        if ck is None:
            return forward(module, *args, **kwargs)
        key = (self.blocks[id(module)], ck)
        modules = self.subtree[id(module)]
        if key in self.templates:
            template = self.templates[key]
            if template is None:
                return forward(module, *args, **kwargs)
            self.replayed += 1
            with _NO_TORCH_FUNCTION():
                return self.replay(template, modules, args)
        tracer = self.tracer
        self.active = True
        with _NO_TORCH_FUNCTION():
            record = _Record(tracer, module, modules, args)
        tracer.recording = record
        try:
            output = forward(module, *args, **kwargs)
        finally:
            tracer.recording = None
            self.active = False
        with _NO_TORCH_FUNCTION():
            self.templates[key] = record.finish(output)
        return output

    def replay(self, t: _Template, modules: list[nn.Module], args: tuple) -> torch.Tensor:
        """The block's frames and ops rebuilt from ``t`` on this call's inputs (``modules``:
        the block's, in the template's order), and its output."""
        tracer = self.tracer
        producer, info = tracer.producer, tracer.info
        objs: list[Any] = tensors_in(args)
        for i in range(t.n_inputs):
            o = storage_owner(objs[i])
            if o is not objs[i]:
                objs.append(o)
        for m in modules:
            for x in (*m._parameters.values(), *m._buffers.values()):
                if x is not None:
                    objs.append(x)
        objs.extend([None] * (len(t.owner) - len(objs)))
        ids = [id(o) for o in objs]
        block = tracer.stack[-1]
        stack = [block]
        frames = [block]
        paths, calls = self.hooks.paths, self.hooks.calls
        for ev in t.events:
            if ev[0] == 2:
                self._op(ev, stack[-1], objs, ids, t)
            elif ev[0] == 3:
                tracer._shadow(objs[ev[1]])
            elif ev[0] == 0:
                _, index, tf, in_slots = ev
                module = modules[index]
                path = paths[id(module)]
                call = calls[path] = calls.get(path, 0) + 1
                frame = Frame(
                    path=path,
                    module=module,
                    parent=stack[-1],
                    depth=path.count(".") + 1,
                    call=call,
                    input_shapes=tf.input_shapes,
                    sources=tracer.sources_of_ids([ids[s] for s in in_slots]),
                )
                stack[-1].items.append(frame)
                stack.append(frame)
                frames.append(frame)
            else:
                _, out0, tf = ev
                frame = stack.pop()
                frame.output_shapes = tf.output_shapes
                rec = producer.get(ids[out0]) if out0 >= 0 else None
                frame.itemsize = rec.itemsize if rec is not None else 0
                frame.out_info = info.get(ids[out0]) if out0 >= 0 else None
                frame.override = tf.override
        used = tracer.used
        for ps, fi in t.used:
            used.setdefault(ids[ps], frames[fi])
        return objs[t.out]

    def _op(self, ev: tuple, frame: Frame, objs: list, ids: list[int], t: _Template) -> None:
        _, tr, sources, out_slots, grad_slots, saved_slots, extra, field = ev
        tracer = self.tracer
        for s in out_slots:
            if objs[s] is None:
                shape = t.shapes[s]
                if t.owner[s] == s and s == t.out:
                    o = torch.empty_strided(shape[0], shape[1], dtype=shape[2], device="meta")
                else:
                    o = object()  # only a key: nothing but the tracer's tables sees it
                objs[s] = o
                ids[s] = id(o)
        info = _field(tr, field, tracer.info, ids)
        rec = OpRecord(
            tr.name,
            frame,
            tr.effect,
            tr.input_shapes,
            tr.output_shapes,
            info,
            tr.fits,
            tr.alloc_values,
            tr.alloc_bytes,
            tr.view,
            1,
            tracer.sources_of_ids([ids[s] for s in sources]),
            tr.itemsize,
        )
        keep, producer, table = tracer.keep, tracer.producer, tracer.info
        for s in out_slots:
            keep.append(objs[s])
            if info is not None:
                table[ids[s]] = info
            producer[ids[s]] = rec
        for s in grad_slots:
            tracer.grad.add(ids[s])
        for s, nbytes in saved_slots:  # s: a storage owner's slot
            tracer.saved[ids[s]] = nbytes
            keep.append(objs[s])
        tracer.saved_extra += extra
        frame.add_op(rec)

    def uninstall(self) -> None:
        for m in self.installed:
            m.__dict__.pop("forward", None)


def _field(tr: OpRecord, field: tuple, table: dict[int, Fields], ids: list[int]) -> Fields | None:
    """The receptive field of a replayed op's output, from its inputs' fields now."""
    if tr.effect is None:  # an uncounted view: its first input's field, or that made global
        mode, first, cells = field
        src = table.get(ids[first]) if first >= 0 else None
        if mode == 0 or src is None:
            return None
        return src if mode == 1 else globalized(src, cells)
    primary, cells, ins = field
    src = table.get(ids[primary]) if primary >= 0 else None
    out_cells = tr.output_shapes[0][2:] if tr.output_shapes else None
    return derive(
        tr.effect.spatial, src, cells, [(table.get(ids[s]), shape) for s, shape in ins], out_cells
    )
