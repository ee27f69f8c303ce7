"""``analyze``: trace a model once and turn the call tree into rows and totals."""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from dataclasses import replace
from math import prod
from typing import Any

import torch
from torch import nn

from cnnlab.analysis import rules as R
from cnnlab.analysis.records import Frame, OpRecord, TraceResult
from cnnlab.analysis.result import (
    INPUT,
    Analysis,
    Layer,
    RField,
    Row,
    RowKey,
    Totals,
    TrainingMemory,
)
from cnnlab.analysis.tracer import trace
from cnnlab.errors import AnalysisError, CnnlabError, GeometryError, check_int

__all__ = ["analyze", "assemble"]


def analyze(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]],
    batch: int = 1,
    dtype: torch.dtype | Sequence[torch.dtype] = torch.float32,
    strict: bool = False,
    rules: Mapping[Any, Any] | None = None,
) -> Analysis:
    """Shapes, parameters, memory, multiply-adds and receptive fields of ``model``, per layer.

    ``input_size`` is one example's ``(C, H, W)`` (or ``(C, L)``, ``(C, D, H, W)``); the model
    sees a batch of ``batch`` such examples of ``dtype``.  A model with several inputs takes
    one size per input, ``[(3, 32, 32), (10,)]``, and one dtype for all or one per input
    (``[torch.float32, torch.long]``).  Works on any ``nn.Module``: every
    module call and every functional op of its forward becomes a row (see
    :mod:`cnnlab.analysis.tracer` for how, without allocating activations or touching the
    model).  ``strict=True`` raises :class:`~cnnlab.errors.GeometryError` at the first window
    (convolution or pooling) that does not tile its input, with the lecture's arithmetic.

    ``rules`` overrides counting rules for this analysis only (fvcore's ``set_op_handle``
    idea): ``{F.conv2d: rule}`` replaces an op's rule (a plain ``Call -> Effect`` keeps the
    default's argument binding, an :class:`~cnnlab.analysis.rules.OpRule` brings its own),
    ``{MyLayer: rule}`` adds a module rule (``(module, inputs, output) -> ModuleCount``), and a
    value of None removes a rule.  See :meth:`~cnnlab.analysis.rules.RuleTable.with_overrides`.

    Raises :class:`~cnnlab.errors.CnnlabError` for an invalid size, or (as
    :class:`~cnnlab.analysis.tracer.AnalysisError` / ``GeometryError``) when the forward cannot
    run on such an input; the message names the layer.
    """
    if not isinstance(model, nn.Module):
        raise CnnlabError(f"analyze() needs a torch.nn.Module, got {type(model).__name__}")
    # Tracing creates many short-lived objects next to torch's large heap, and the cyclic
    # garbage collector's full passes were half the time of a first analysis; they run after.
    # Off from the start: the first allocations after building a large model (its objects all
    # young) set off a full pass (0.14 s of ResNet-1202's 0.7 s, in walking its modules).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze(model, input_size, batch, dtype, strict, rules)
    finally:
        if gc_was_enabled:
            gc.enable()


def _analyze(model, input_size, batch, dtype, strict, rules) -> Analysis:
    named = list(model.named_modules())  # walked once: a large model's tree is not free
    scripted = [n or "(model)" for n, m in named if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise CnnlabError(
            f"{scripted[0]} is a TorchScript module (torch.jit.script or torch.jit.trace): its "
            "forward is compiled and cannot be traced op by op; analyze the nn.Module it was "
            "made from"
        )
    several = (
        isinstance(input_size, list | tuple)
        and bool(input_size)
        and all(isinstance(s, list | tuple | torch.Size) for s in input_size)
    )
    sizes = [_check_size(s) for s in input_size] if several else [_check_size(input_size)]
    size = sizes[0]
    check_int("batch", batch)
    dtypes = list(dtype) if isinstance(dtype, list | tuple) else [dtype] * len(sizes)
    if len(dtypes) != len(sizes) or not all(isinstance(d, torch.dtype) for d in dtypes):
        raise CnnlabError(
            f"dtype must be a torch.dtype or one per input ({len(sizes)}), got {dtype!r}"
        )
    for s, d in zip(sizes, dtypes, strict=True):
        n = batch * prod(s)
        if n * d.itemsize >= 2**63:
            raise CnnlabError(
                f"input size {'x'.join(map(str, s))} with batch {batch} is {n:.3g} values, more "
                f"than a PyTorch tensor can hold (2^63 bytes); give a smaller size or batch"
            )
    table = R.DEFAULT_RULES.with_overrides(rules)
    xs = tuple(
        torch.empty((batch, *s), dtype=d, device="meta") for s, d in zip(sizes, dtypes, strict=True)
    )
    try:
        result = trace(model, xs, strict=strict, rules=table, named=named)
    except (AnalysisError, GeometryError) as exc:
        if not several and len(size) >= 3 and size[0] == 1 and batch == 1:
            # torchinfo's habit: input_size=(1, 3, 224, 224) with the batch in it; said
            # only when the size without that leading 1 really runs (a 1x28x28 image
            # whose model fails for its own reasons gets no such hint).
            try:
                inner = torch.empty((1, *size[1:]), dtype=dtypes[0], device="meta")
                trace(model, (inner,), strict=False, rules=table, named=named)
            except Exception:  # noqa: BLE001 - it does not run either way: no hint
                raise exc from exc.__cause__
            raise type(exc)(
                f"{exc}; note: the input size is one example's, without the batch "
                f"(which is given separately): try {size[1:]}"
            ) from exc
        raise
    return assemble(result, type(model).__name__, xs, batch, strict, named, _own_parameters(named))


def assemble(
    result: TraceResult,
    model_type: str,
    xs: tuple[torch.Tensor, ...],
    batch: int,
    strict: bool,
    named: list[tuple[str, nn.Module]],
    own: dict[str, list[tuple[str, Any]]],
) -> Analysis:
    """The :class:`Analysis` of a trace, for a traced model and for the spec path
    (:mod:`~cnnlab.analysis.specpath`).  ``own``: each path's parameters (attribute, tensor),
    each at its first holder; ``named``: the modules, for those no call reached."""
    x = xs[0]
    builder = _RowBuilder(model_type, x.element_size(), named, own)
    builder.attribute_functional_uses(result.root, result.used)
    builder.walk(result.root)
    rows = builder.rows + builder.uncalled_rows()
    totals = _totals(result, builder, batch)
    return Analysis(
        model=model_type,
        input_shape=tuple(x.shape),
        dtype=str(x.dtype).replace("torch.", ""),
        rows=tuple(rows),
        totals=totals,
        conventions=dict(R.CONVENTIONS),
        strict=strict,
        output_shapes=result.root.output_shapes,
        input_shapes=tuple(tuple(t.shape) for t in xs),
    )


def _own_parameters(named: list[tuple[str, nn.Module]]) -> dict[str, list[tuple[str, Any]]]:
    """Each parameter at the first module that holds it (shared tensors once)."""
    own: dict[str, list[tuple[str, Any]]] = {}
    seen: set[int] = set()
    for path, module in named:
        for attr, p in module._parameters.items():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            own.setdefault(path, []).append((attr, p))
    return own


def _check_size(input_size: Any) -> tuple[int, ...]:
    if isinstance(input_size, torch.Tensor):
        raise CnnlabError(
            f"input size must be one example's sizes such as (3, 224, 224), not a tensor (got a "
            f"{str(input_size.dtype).replace('torch.', '')} tensor of shape "
            f"{tuple(input_size.shape)}); for a batch x, use "
            f"analyze(model, tuple(x.shape[1:]), batch=x.shape[0], dtype=x.dtype)"
        )
    if isinstance(input_size, int):
        input_size = (input_size,)
    try:
        size = tuple(input_size)
    except TypeError:
        size = ()
    if not size or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise CnnlabError(
            f"input size must be one example's positive sizes such as (3, 224, 224) "
            f"(channels, height, width), got {input_size!r}"
        )
    return size


class _Agg:
    """Counts of one subtree."""

    __slots__ = (
        "macs", "other", "params", "weights", "biases", "trainable", "uncounted", "fits", "layer"
    )  # fmt: skip

    def __init__(self) -> None:
        self.macs = 0
        self.other = 0
        self.params = 0
        self.weights = 0
        self.biases = 0
        self.trainable = 0
        self.uncounted: dict[str, int] = {}  # op name -> calls with no counting rule
        self.fits: list[tuple[Any, bool]] = []
        self.layer: Layer | None = None

    def add(self, other: _Agg) -> None:
        self.macs += other.macs
        self.other += other.other
        self.params += other.params
        self.weights += other.weights
        self.biases += other.biases
        self.trainable += other.trainable
        if other.uncounted:
            mine = self.uncounted
            for name, n in other.uncounted.items():
                mine[name] = mine.get(name, 0) + n


class _RowBuilder:
    def __init__(
        self,
        model_type: str,
        itemsize: int,
        named: list[tuple[str, nn.Module]],
        own: dict[str, list[tuple[str, Any]]],
    ):
        self.model_type = model_type
        self.named = named
        self.itemsize = itemsize
        self.rows: list[Row] = []
        self.uncounted: dict[str, int] = {}
        # Memos of the walk, by id: a producer's row key, a field's RField (a leaf's output
        # field is often its op's, and an activation's its input's: the same object).
        self.key_of: dict[int, RowKey] = {}
        self.rfield_of: dict[int, RField | None] = {}
        self.called: set[str] = set()
        self.own = own  # path -> its parameters (attribute, tensor); see _own_parameters

    def attribute_functional_uses(self, root: Frame, used: dict[int, Frame]) -> None:
        """Parameters of a module that was never called but whose weights a called module
        used itself (``F.linear(x, self.proj.weight)``, multi-head attention's ``out_proj``)
        belong to the module whose call read them first, so that rows add up to the total."""
        called: set[str] = set()
        stack = [root]
        while stack:
            frame = stack.pop()
            called.add(frame.path)
            stack.extend(i for i in frame.items if type(i) is Frame)
        for path in [p for p in self.own if p not in called]:
            keep = []
            for attr, p in self.own[path]:
                user = used.get(id(p))
                if user is None:
                    keep.append((attr, p))
                else:
                    self.own.setdefault(user.path, []).append((attr, p))
            self.own[path] = keep

    def own_agg(self, path: str) -> _Agg:
        agg = _Agg()
        for attr, p in self.own.get(path, []):
            n = p.numel()
            agg.params += n
            if attr == "bias":
                agg.biases += n
            else:
                agg.weights += n
            if p.requires_grad:
                agg.trainable += n
        return agg

    def walk(self, frame: Frame) -> _Agg:
        """Rows of ``frame``'s subtree (pre-order) and its aggregated counts."""
        agg = self.own_agg(frame.path) if frame.call == 1 else _Agg()
        parent = frame.parent
        rows = self.rows
        index = len(rows)
        if parent is not None:
            self.called.add(frame.path)
            rows.append(None)  # this frame's row, made once its subtree is counted
        leaf = True  # not frame.has_children
        for item in frame.items:
            if type(item) is Frame:
                leaf = False
                break
        emits = parent is None or not leaf  # _emits_ops(frame)
        for item in frame.items:
            if type(item) is Frame:
                agg.add(self.walk(item))
            else:
                _add_op(agg, item)
                if emits:
                    rows.append(self._op_row(item, frame, _op_agg(item)))
        if frame.override is not None:
            _apply(frame.override, agg, leaf)
        if parent is None:
            self.uncounted = agg.uncounted
            self.root_agg = agg
            return agg
        shapes = frame.output_shapes
        values = prod(shapes[0]) if shapes else 0
        row = _new_row(
            path=frame.path,
            type=frame.type_name,
            kind="module",
            depth=frame.depth,
            parent=parent.path if parent.parent is not None else None,
            call=frame.call,
            leaf=leaf,
            layer=agg.layer if leaf or frame.override is not None else None,
            input_shapes=frame.input_shapes,
            output_shapes=shapes,
            params=agg.params,
            weights=agg.weights,
            biases=agg.biases,
            trainable=agg.trainable,
            activations=values,
            activation_bytes=values * (frame.itemsize or self.itemsize),
            macs=agg.macs,
            other_ops=agg.other,
            uncounted=tuple(sorted(agg.uncounted)) if agg.uncounted else (),
            field=self._rfield(frame.out_info),
            fit=_fit_text(agg.fits) if leaf else "",
            notes=(f"call {frame.call}: parameters counted at the first call",)
            if frame.call > 1
            else (),
            producers=self._keys(frame.sources),
        )
        rows[index] = row
        return agg

    def _op_row(self, rec: OpRecord, frame: Frame, agg: _Agg) -> Row:
        shapes = rec.output_shapes
        return _new_row(
            path=_op_path(rec),
            type=rec.name,
            kind="op",
            depth=frame.depth + 1,
            parent=frame.path or None,
            call=1,
            leaf=True,
            layer=agg.layer,
            input_shapes=rec.input_shapes,
            output_shapes=shapes,
            params=0,
            weights=0,
            biases=0,
            trainable=0,
            activations=prod(shapes[0]) if shapes else 0,
            activation_bytes=prod(shapes[0]) * (rec.itemsize or self.itemsize) if shapes else 0,
            macs=agg.macs,
            other_ops=agg.other,
            uncounted=tuple(sorted(agg.uncounted)),
            field=self._rfield(rec.out_info),
            fit=_fit_text(agg.fits),
            notes=() if rec.counted else ("no counting rule: MACs unknown",),
            producers=self._keys(rec.sources),
        )

    def _keys(self, sources) -> tuple[RowKey, ...]:
        """Row keys of the producers: the op's own row, or the leaf module that ran it."""
        keys: list[RowKey] = []
        memo = self.key_of
        for rec in sources:
            key = memo.get(id(rec))
            if key is None:
                key = memo[id(rec)] = _key(rec)
            if key not in keys:
                keys.append(key)
        return tuple(keys)

    def _rfield(self, info) -> RField | None:
        memo = self.rfield_of
        r = memo.get(id(info), _UNSEEN)
        if r is _UNSEEN:
            r = memo[id(info)] = _rfield(info)
        return r

    def uncalled_rows(self) -> list[Row]:
        """Modules that hold parameters but were not called (e.g. auxiliary heads in eval)."""
        rows = []
        for path, module in self.named:
            if not path or path in self.called:
                continue
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            if parent and parent not in self.called:
                continue  # shown by its uncalled ancestor
            agg = _Agg()
            for sub, _ in module.named_modules(prefix=path):
                agg.add(self.own_agg(sub))
            if agg.params == 0:
                continue
            rows.append(
                _params_only_row(
                    path,
                    type(module).__name__,
                    path.count(".") + 1,
                    parent or None,
                    agg,
                    "not called by this forward (mode or input): parameters only",
                )
            )
        own_root = self.own_agg("")
        if own_root.params:
            rows.append(
                _params_only_row(
                    "(model)",
                    self.model_type,
                    1,
                    None,
                    own_root,
                    "parameters held by the model itself",
                )
            )
        return rows


def _emits_ops(frame: Frame) -> bool:
    """Ops called directly in a container (or the model itself) get rows of their own; the
    ops of a leaf module are that module's row."""
    return frame.parent is None or frame.has_children


def _op_path(rec: OpRecord) -> str:
    base = f"{rec.parent.path}." if rec.parent.path else ""
    return f"{base}<{rec.name}>" + (f"#{rec.n}" if rec.n > 1 else "")


def _new_row(**fields: Any) -> Row:
    """``Row(**fields)`` with every field given, without the frozen dataclass's one
    ``object.__setattr__`` per field: the same object (Row has no ``__post_init__``), at an
    eighth of the cost, for the thousands of rows of a deep network."""
    row = object.__new__(Row)
    row.__dict__.update(fields)
    return row


def _key(rec: OpRecord | None) -> RowKey:
    """The row key of a producer: the op's own row, or the leaf module that ran it."""
    if rec is None:
        return INPUT
    if _emits_ops(rec.parent):
        return (_op_path(rec), 1)
    return (rec.parent.path, rec.parent.call)


_UNSEEN = object()


def _apply(count, agg: _Agg, leaf: bool) -> None:
    """A module rule's :class:`~cnnlab.analysis.rules.ModuleCount` over the ops' counts."""
    if count.macs is not None or count.other_ops is not None:
        agg.macs = int(count.macs if count.macs is not None else agg.macs)
        agg.other = int(count.other_ops if count.other_ops is not None else agg.other)
        agg.uncounted.clear()  # the rule counts the module as a whole
    base = agg.layer if leaf else None  # a container's first op is not what it is
    if count.kind is not None:
        agg.layer = replace(base, kind=count.kind) if base is not None else Layer(count.kind)
    elif not leaf:
        agg.layer = None
    if count.connections is not None and agg.layer is not None:
        agg.layer = replace(agg.layer, connections=count.connections)


def _add_op(agg: _Agg, rec: OpRecord) -> None:
    """``agg`` plus one op's counts, fits and layer (no _Agg made per op of the network)."""
    effect = rec.effect
    if effect is None:
        if not rec.view:
            agg.uncounted[rec.name] = agg.uncounted.get(rec.name, 0) + 1
        return
    agg.macs += effect.macs
    agg.other += effect.other_ops
    if rec.fits:
        ceil = effect.spatial.ceil_mode
        agg.fits.extend([(f, ceil) for f in rec.fits])
    if agg.layer is None:
        agg.layer = effect.layer


def _op_agg(rec: OpRecord) -> _Agg:
    agg = _Agg()
    _add_op(agg, rec)
    return agg


def _rfield(info) -> RField | None:
    if info is None or info.fields is None or not info.fields:
        return None
    return RField(
        size=tuple(f.size for f in info.fields),
        jump=None if info.is_global else tuple(f.jump for f in info.fields),
        start=tuple(f.start for f in info.fields),
        is_global=info.is_global,
    )


def _fit_text(fits: list[tuple[Any, bool]]) -> str:
    """``exact``, or what the window does to the last rows/columns, e.g. ``drops 1``."""
    if not fits:
        return ""
    parts = []
    for f, ceil in fits:
        if f.fits:
            parts.append("exact")
        elif ceil:
            parts.append("ceil +1")
        elif f.dropped_input:
            parts.append(f"drops {f.dropped_input}")
        else:
            parts.append(f"drops {f.dropped} pad")
    if len(set(parts)) == 1:
        return parts[0]
    return ", ".join(parts)


def _totals(result, builder: _RowBuilder, batch: int) -> Totals:
    total = trainable = param_bytes = trainable_bytes = 0
    for p in result.parameters:  # (one pass: a deep network has thousands)
        n = p.numel()
        nbytes = n * p.element_size()
        total += n
        param_bytes += nbytes
        if p.requires_grad:
            trainable += n
            trainable_bytes += nbytes
    biases = sum(p.numel() for own in builder.own.values() for a, p in own if a == "bias")
    buffers = result.buffers
    alloc_values = result.input_values
    alloc_bytes = result.input_bytes
    stack = [result.root]
    while stack:
        frame = stack.pop()
        for item in frame.items:
            if isinstance(item, Frame):
                stack.append(item)
            else:
                alloc_values += item.alloc_values
                alloc_bytes += item.alloc_bytes
    agg = builder.root_agg
    return Totals(
        params=total,
        trainable=trainable,
        frozen=total - trainable,
        weights=total - biases,
        biases=biases,
        param_bytes=param_bytes,
        buffers=sum(b.numel() for b in buffers),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        macs=agg.macs,
        other_ops=agg.other,
        input_values=result.input_values,
        activation_values=alloc_values,
        activation_bytes=alloc_bytes,
        training=TrainingMemory(
            saved_activations=result.saved_bytes,
            parameters=param_bytes,
            gradients=trainable_bytes,
            sgd_momentum_state=trainable_bytes,
            adam_state=2 * trainable_bytes,
        ),
        uncounted=dict(builder.uncounted),
        batch=batch,
    )


def _params_only_row(path: str, kind: str, depth: int, parent: str | None, agg, note: str) -> Row:
    """A row for parameters that no traced call used (they still count in the totals)."""
    return Row(
        path=path,
        type=kind,
        kind="uncalled",
        depth=depth,
        parent=parent,
        call=0,
        leaf=True,
        layer=None,
        input_shapes=(),
        output_shapes=(),
        params=agg.params,
        weights=agg.weights,
        biases=agg.biases,
        trainable=agg.trainable,
        activations=0,
        activation_bytes=0,
        macs=0,
        other_ops=0,
        uncounted=(),
        field=None,
        fit="",
        notes=(note,),
    )
