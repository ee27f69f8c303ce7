"""The tracer: run a model's forward on shape-only tensors and record every module and op.

How it works, and why the model is left exactly as it was:

* The input is a ``meta`` tensor (a shape and a dtype, no storage).  A
  :class:`~torch.overrides.TorchFunctionMode` intercepts every torch function the forward
  calls (``F.conv2d`` inside ``nn.Conv2d``, but also ``F.relu``, ``torch.cat``, ``x + y`` in
  the user's own ``forward``).  Functions with a rule in :mod:`cnnlab.analysis.rules` are NOT
  run: the rule builds the output from the arithmetic.  So no activation is ever allocated,
  the model's parameters are only read for their shapes (never copied), BatchNorm running
  statistics and counters are not touched, and VGG-16 at 4096x4096 costs what it costs at 224.
* A function without a rule runs on shape-only stand-ins of its tensor arguments (real
  tensors are replaced by ``meta`` tensors of the same shape, so nothing of the model is
  modified); it is recorded as *uncounted* unless it is a pure view.  Small real-only
  computations (index tables, masks: at most 65,536 elements in and out, the output size
  found on stand-ins first) run on the real tensors, because their values can decide shapes.
* Factories (``torch.ones(b, c, h, w)``, ``torch.arange``, ``p.new_zeros``) make their result
  on the meta device and are recorded as forward allocations; only results of at most 65,536
  elements are made for real, as constants.  So the real memory an analysis takes is bounded
  whatever the input size.
* Whatever the forward assigns to its modules (counters, EMA buffers, caches, lists) is put
  back afterwards (:class:`~cnnlab.analysis.modelstate.ModelState`), also when it fails;
  a model made only of modules whose forwards assign nothing (``replay.PURE``) has nothing
  to put back but the random state, and its repeated residual blocks are rebuilt from one
  recorded call each (:mod:`~cnnlab.analysis.replay`).
* Forward pre/post hooks on every submodule (:mod:`~cnnlab.analysis.hooks`: two global
  module hooks that skip modules outside the model, or one pair per module) delimit module
  calls; they are removed in a ``finally`` block, also when the forward fails.

Per tensor the tracer keeps the receptive field (one :class:`~cnnlab.geometry.Field` per
spatial axis), whether it owns new storage, whether a training forward would give it a
gradient (it depends on a parameter that requires one; only such calls keep anything for
backward, and a product keeps an operand only for another that needs a gradient), and which
recorded op produced it, from which it derives the rows' receptive fields, forward
allocations, the tensors autograd would keep for backward, and the graph (which calls feed
which).  It also notes the first call that reads each parameter, so that a module using a
child's weights itself is given them.

The rules come from a :class:`~cnnlab.analysis.rules.RuleTable` given per trace; the tracer
keeps no state between traces.  Beside it: :mod:`~cnnlab.analysis.modelstate` (taking and
putting back the model's state), :mod:`~cnnlab.analysis.fields` (receptive-field
propagation), :mod:`~cnnlab.analysis.blame` (which line of the model's code raised) and
:mod:`~cnnlab.analysis.metakernels` (shape-only results PyTorch is slow to give).
"""

from __future__ import annotations

import traceback
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.analysis import replay
from cnnlab.analysis import rules as R
from cnnlab.analysis.blame import (
    first_line,
    func_name,
    raised_by_the_analysis,
    shape_text,
    user_line,
    user_line_of,
)
from cnnlab.analysis.fields import Fields, derive, globalize, window_fits
from cnnlab.analysis.hooks import ModuleHooks
from cnnlab.analysis.metakernels import run_on_meta
from cnnlab.analysis.modelstate import ModelState, members
from cnnlab.analysis.records import Frame, OpRecord, TraceResult
from cnnlab.analysis.rules.base import TooLargeError
from cnnlab.analysis.walk import map_tensors, shapes_of, storage_owner, tensors_in
from cnnlab.errors import AnalysisError, CnnlabError, ShapeError
from cnnlab.geometry import Field

__all__ = ["AnalysisError", "finish", "start", "trace"]

_REAL_LIMIT = 65_536  # elements: real-only calls up to this size run on real tensors


# Reads of a tensor's metadata that a shape-only stand-in answers exactly as the tensor itself
# (not its device, nor anything of autograd): they return no tensor and change nothing.
_METADATA = frozenset(
    {
        torch.Tensor.dim,
        torch.Tensor.size,
        torch.Tensor.numel,
        torch.Tensor.stride,
        torch.Tensor.element_size,
        torch.Tensor.is_floating_point,
        torch.Tensor.is_complex,
        torch.Tensor.is_contiguous,
        torch.Tensor.shape.__get__,
        torch.Tensor.dtype.__get__,
        torch.Tensor.ndim.__get__,
        torch.Tensor.layout.__get__,
    }
)


class _Tracer(TorchFunctionMode):
    def __init__(self, root: Frame, strict: bool, rules: R.RuleTable, xs: tuple[torch.Tensor, ...]):
        super().__init__()
        self.stack: list[Frame] = [root]
        self.strict = strict
        self.rules = rules
        self.ops = rules.ops
        self.input_ids = {id(x) for x in xs}
        self.producer: dict[int, OpRecord] = {}  # id(tensor) -> the op that returned it
        self.info: dict[int, Fields] = {}
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive, so ids stay unique
        self.shadows: dict[int, torch.Tensor] = {}
        self.saved: dict[int, int] = {}  # id(storage owner) -> bytes kept for backward
        self.saved_extra = 0
        self.state: set[int] = set()  # ids of the model's parameters and buffers
        # ids of traced tensors that would require a gradient in a training forward (they
        # depend on a parameter that requires one); parameters answer for themselves.
        self.grad: set[int] = set()
        self.params: set[int] = set()  # ids of the model's parameters
        self.used: dict[int, Frame] = {}  # id(parameter) -> the frame of the first call reading it
        self.state_shadows: set[int] = set()  # ids of their shape-only stand-ins
        self.fit_cache: dict[tuple[int, ...], Any] = {}  # fit() per (size, window): pure
        # The block call being recorded for replay (cnnlab.analysis.replay), if any.
        self.recording: Any = None

    # -- bookkeeping ---------------------------------------------------------------------

    def _remember(self, t: torch.Tensor, info: Fields | None) -> None:
        self.keep.append(t)
        if info is not None:
            self.info[id(t)] = info

    def info_of(self, t: Any) -> Fields | None:
        return self.info.get(id(t)) if isinstance(t, torch.Tensor) else None

    def needs_grad(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and (t.requires_grad or id(t) in self.grad)

    def sources_of(self, tensors: list[torch.Tensor]) -> tuple[OpRecord | None, ...]:
        """The producers of the traced activations among ``tensors`` (the model's own
        parameters and buffers, and constants, are not activations), without repeats."""
        return self.sources_of_ids([id(t) for t in tensors])

    def sources_of_ids(self, ids: list[int]) -> tuple[OpRecord | None, ...]:
        """:meth:`sources_of` for the tensors of these ids."""
        out: list[OpRecord | None] = []
        producer = self.producer
        for i in ids:
            if i in self.input_ids:
                src = None
            elif i in producer:
                src = producer[i]
            else:
                continue
            for o in out:
                if o is src:
                    break
            else:
                out.append(src)
        return tuple(out)

    def _produced(self, rec: OpRecord, outs: list[torch.Tensor]) -> None:
        for o in outs:
            self.producer[id(o)] = rec  # in-place results: the latest writer produced them

    def _shadow(self, t: torch.Tensor) -> torch.Tensor:
        if t.is_meta:
            return t
        if self.recording is not None:
            self.recording.shadow(t)
        s = self.shadows.get(id(t))
        if s is None:
            s = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
            self.shadows[id(t)] = s
            self.keep.append(t)
            if self.needs_grad(t):
                self.grad.add(id(s))
            if id(storage_owner(t)) in self.state:
                self.state_shadows.add(id(s))
        return s

    # -- the interception ------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        rule = self.ops.get(func)
        tensors = tensors_in(args)
        if kwargs:
            tensors_in(kwargs, tensors)
        else:
            kwargs = {}
        params, used = self.params, self.used
        meta = False
        for t in tensors:
            # The first call that reads each parameter: a module may use a child's weights
            # without calling the child (F.linear(x, self.proj.weight)).
            if id(t) in params and id(t) not in used:
                used[id(t)] = self.stack[-1]
            if not meta and t.is_meta:
                meta = True
        if rule is None:
            if func in _METADATA:
                try:  # the same answer as on a stand-in, and nothing to record
                    return func(*args, **kwargs)
                except Exception:  # noqa: BLE001 - the fallback below raises it as it should
                    pass
            return self._fallback(func, args, kwargs, tensors)
        if not tensors:
            return self._factory(rule, func, args, kwargs)
        if not meta:
            # Only real tensors (parameters, buffers, constants): not part of the traced
            # activations.  Run small ones as they are, stand in for large ones.
            return self._run_untraced(func, args, kwargs, tensors)
        return self._apply(rule, args, kwargs, tensors)

    def _call(self, rule: R.OpRule, args, kwargs) -> R.Call:
        return R.Call(rule.name, rule.bind(args, kwargs), where=self.stack[-1].where)

    def _apply(self, rule: R.OpRule, args, kwargs, tensors) -> Any:
        """Run ``rule`` instead of the function, and record the call."""
        frame = self.stack[-1]
        call = R.Call(rule.name, rule.bind(args, kwargs), frame.where)  # (_call)
        try:  # (a table's rules are OpRules: their function called without their __call__)
            effect = rule.fn(call) if type(rule) is R.OpRule else rule(call)
        except TooLargeError as exc:
            raise ShapeError(f"{call.where}: {exc}") from None
        self._record(rule.name, frame, effect, tensors, call)
        return effect.output

    def _factory(self, rule: R.OpRule, func, args, kwargs) -> Any:
        """A function that creates tensors from sizes alone (``torch.ones(b, c, h, w)``,
        ``torch.arange(n)``): its rule makes the result on the meta device, a forward
        allocation.  A result of at most ``_REAL_LIMIT`` elements is made for real instead,
        because its values may decide shapes (index tables, masks): a constant, as before."""
        call = self._call(rule, args, kwargs)
        effect = rule(call)
        if self.recording is not None:
            self.recording.ok = False  # a tensor made from nothing: not replayed
        if sum(o.numel() for o in tensors_in(effect.output)) <= _REAL_LIMIT:
            return func(*args, **kwargs)
        self._record(rule.name, self.stack[-1], effect, [], call)
        return effect.output

    def _run_untraced(self, func, args, kwargs, tensors):
        if sum(t.numel() for t in tensors) <= _REAL_LIMIT and not _mutates(func, kwargs):
            if self.recording is not None:
                self.recording.ok = False  # real tensors, whose values may decide shapes
            # Small real tensors can still make a large one (``p.expand(b, c, h, w)
            # .contiguous()``, broadcasting, ``p.new_zeros(...)``): find the result's size on
            # stand-ins first.  A function that needs values (``item()``, ``nonzero()``)
            # fails there and runs for real, on its small inputs.
            margs, mkwargs = map_tensors(self._shadow, (args, kwargs))
            probe = self._probe(func, margs, mkwargs)
            if sum(o.numel() for o in tensors_in(probe)) <= _REAL_LIMIT:
                out = func(*args, **kwargs)
                if any(self.needs_grad(t) for t in tensors):  # e.g. a weight computed
                    for o in tensors_in(out):
                        self.keep.append(o)
                        self.grad.add(id(o))
                return out
            # An activation-sized result: traced on the stand-ins, like an activation.
            rule = self.rules.op(func)
            if rule is not None:
                return self._apply(rule, margs, mkwargs, tensors_in(mkwargs, tensors_in(margs)))
            return self._fallback(func, margs, mkwargs)
        args, kwargs = map_tensors(self._shadow, (args, kwargs))
        return func(*args, **kwargs)

    def _probe(self, func, margs, mkwargs) -> Any:
        """The output of ``func`` on shape-only stand-ins, or None where it needs values.  An
        op with a rule gets its output from the rule: PyTorch's meta kernels for element-wise
        ops are Python references whose first use imports torch._dynamo (about a second of a
        first analysis, for a layer that scales a parameter by a number)."""
        rule = self.ops.get(func)
        if rule is not None:
            try:
                return rule(
                    R.Call(rule.name, rule.bind(margs, mkwargs), self.stack[-1].where)
                ).output
            except Exception:  # noqa: BLE001 - PyTorch's kernel decides below
                pass
        try:
            return run_on_meta(func, margs, mkwargs)
        except (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError):
            return None

    def _fallback(self, func, args, kwargs, tensors=None):
        if tensors is None:
            tensors = tensors_in(kwargs, tensors_in(args))
        if not any(t.is_meta for t in tensors):
            if not tensors:
                return func(*args, **kwargs)  # torch.tensor([...]), torch.get_default_dtype()...
            return self._run_untraced(func, args, kwargs, tensors)
        margs, mkwargs = map_tensors(self._shadow, (args, kwargs))
        frame = self.stack[-1]
        try:
            out = run_on_meta(func, margs, mkwargs)
        except (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError) as exc:
            at = user_line_of([(f.filename, f.lineno) for f in traceback.extract_stack()])
            raise AnalysisError(
                f"{frame.path or '(model)'} ({frame.type}): {func_name(func)} failed on "
                f"shape-only tensors {', '.join(shape_text(t.shape) for t in tensors)}: "
                f"{type(exc).__name__}: {first_line(exc)}" + (f" (at {at})" if at else "")
            ) from exc
        outs = tensors_in(out)
        if not outs:
            return out  # metadata: size(), dim(), shape ...
        ins = tensors_in(mkwargs, tensors_in(margs))
        in_ids = {id(storage_owner(t)) for t in ins}
        is_view = all(id(storage_owner(o)) in in_ids for o in outs)
        first = next((t for t in tensors if t.is_meta), None)
        src = self.info_of(first)
        info = None
        mode = 0  # the output's field: none (0), its first input's (1), that made global (2)
        if is_view and first is not None:
            o = outs[0]
            if o.dim() == first.dim() and tuple(o.shape[2:]) == tuple(first.shape[2:]):
                mode = 1
            elif o.dim() < 3 and first.dim() >= 3:
                mode = 2
        if src is not None and mode:
            info = src if mode == 1 else globalize(src, first)
        needs = any(self.needs_grad(t) for t in ins)
        for o in outs:
            self._remember(o, info)
            if needs:
                self.grad.add(id(o))
        rec = OpRecord(
            name=func_name(func),
            parent=frame,
            effect=None,
            input_shapes=tuple(tuple(t.shape) for t in tensors),
            output_shapes=tuple(tuple(o.shape) for o in outs),
            itemsize=outs[0].element_size() if outs else 0,
            out_info=info,
            view=is_view,
            sources=self.sources_of(tensors),
        )
        if not is_view:
            rec.alloc_values = sum(o.numel() for o in outs)
            rec.alloc_bytes = sum(o.numel() * o.element_size() for o in outs)
        self._produced(rec, outs)
        frame.add_op(rec)
        if self.recording is not None:
            self.recording.uncounted(rec, tensors, first, mode, outs, outs if needs else ())
        return out

    def _record(self, name: str, frame: Frame, effect: R.Effect, tensors, call: R.Call) -> None:
        # (The hot path of every counted call: each shape read once, in one loop, and no
        # helper call or comprehension where a line does (on Python 3.11 each of those is a
        # call); see _remember and needs_grad for what it inlines.)
        out = effect.output
        outs = [out] if isinstance(out, torch.Tensor) else tensors_in(out)
        sp = effect.spatial
        same_kind = sp.kind == "same"
        info = self.info
        info_of = info.get
        grad = self.grad
        shapes = []
        ins = []
        same = []
        in_ids = []
        producer = self.producer
        needs = False
        for t in tensors:
            shape = tuple(t.shape)
            shapes.append(shape)
            if not needs and (t.requires_grad or id(t) in grad):
                needs = True
            if t.is_meta:
                ins.append(t)
                in_ids.append(id(t))
                if same_kind:
                    same.append((info_of(id(t)), shape))
        primary = call.args.get("input")
        if not isinstance(primary, torch.Tensor):
            primary = ins[0] if ins else None
        primary_shape = None if primary is None else tuple(primary.shape)
        out_shapes = tuple([tuple(o.shape) for o in outs])
        out_cells = out_shapes[0][2:] if outs else None
        src_info = None if primary is None else info_of(id(primary))
        if same_kind:
            fits = ()
            one = same[0][0] if len(same) == 1 else None
            if one is not None and one.fields is not None and same[0][1][2:] == out_cells:
                field = one  # derive's answer for one input of the output's size
            else:
                field = derive(sp, src_info, None, same, out_cells)
        else:
            fits = window_fits(sp, primary_shape, self, frame) if sp.kind == "window" else ()
            cells = None if primary_shape is None else primary_shape[2:]
            field = derive(sp, src_info, cells, same, out_cells)
        first = outs[0] if outs else None
        rec = OpRecord(
            name=name,
            parent=frame,
            effect=effect,
            input_shapes=tuple(shapes),
            output_shapes=out_shapes,
            out_info=field,
            fits=fits,
            sources=self.sources_of_ids(in_ids),
            itemsize=0 if first is None else first.element_size(),
        )
        if not effect.inplace:
            in_owner_ids = {id(storage_owner(t)) for t in ins}
            for o in outs:
                if id(storage_owner(o)) not in in_owner_ids:
                    n = o.numel()
                    rec.alloc_values += n
                    rec.alloc_bytes += n * o.element_size()
        keep = self.keep
        for o in outs:
            keep.append(o)  # _remember(o, field), and the latest writer produced it
            if field is not None:
                info[id(o)] = field
            producer[id(o)] = rec
        grads: list[torch.Tensor] = []
        saved: list[torch.Tensor] = []
        extra = 0
        if needs and not effect.detached:
            # Autograd records this call: its floating-point outputs need gradients (indices,
            # masks and counts have none), and it keeps tensors.
            for o in outs:
                if o.is_floating_point() or o.is_complex():
                    grads.append(o)
                    grad.add(id(o))
            kept = list(effect.saved)
            for t, op in effect.saved_for:
                if isinstance(op, torch.Tensor) and (op.requires_grad or id(op) in grad):
                    kept.append(t)
            for t in kept:
                owner = self._keep_for_backward(t)
                if owner is not None:
                    saved.append(owner)
            extra = effect.saved_extra_bytes
            self.saved_extra += extra
        frame.add_op(rec)
        if self.recording is not None:
            self.recording.counted(rec, ins, primary, outs, grads, saved, extra)

    def _keep_for_backward(self, t: Any) -> torch.Tensor | None:
        """Count ``t``'s storage as kept for backward; its owner, or None where not counted."""
        if not isinstance(t, torch.Tensor):
            return None
        owner = storage_owner(t)
        if id(owner) in self.state or id(owner) in self.state_shadows:
            return None  # the model's own parameters and buffers: counted as parameters
        self.saved[id(owner)] = owner.numel() * owner.element_size()
        self.keep.append(owner)
        return owner


def _mutates(func: Any, kwargs: dict) -> bool:
    """In-place functions (``add_``, ``__iadd__``, ``__setitem__``, ``out=``): they would
    modify the model's own tensors (BatchNorm's ``num_batches_tracked += 1``), so they only
    ever run on stand-ins."""
    name = getattr(func, "__name__", "")
    if "out" in kwargs:
        return True
    if name.startswith("__"):
        return name.startswith("__i") or name in ("__setitem__", "__set__", "__delitem__")
    return name.endswith("_")


def _forward(model: nn.Module, xs: tuple[torch.Tensor, ...], tracer: _Tracer) -> Any:
    """``model(x)``; an exception raised by the model's own code (or by PyTorch for it) becomes
    an AnalysisError naming the layer that was running, the exception's type and message and
    the line of the model's code that raised it (the original stays its ``__cause__``).  An
    exception raised inside the analysis itself is a bug of cnnlab and propagates as it is."""
    try:
        return model(*xs)
    except CnnlabError:
        raise
    except Exception as exc:
        if raised_by_the_analysis(exc):
            raise
        frame = tracer.stack[-1]
        at = user_line(exc)
        raise AnalysisError(
            f"{frame.path or '(model)'} ({frame.type}): the forward failed on an input of "
            f"shape {', '.join(shape_text(x.shape) for x in xs)}: {type(exc).__name__}: "
            f"{first_line(exc)}" + (f" (at {at})" if at else "")
        ) from exc


def trace(
    model: nn.Module,
    x: torch.Tensor | tuple[torch.Tensor, ...],
    strict: bool = False,
    rules: R.RuleTable = R.DEFAULT_RULES,
    named: list[tuple[str, nn.Module]] | None = None,
) -> TraceResult:
    """Run ``model`` on the shape-only tensor ``x`` (or tensors, one per input) under
    ``rules`` and return the tree of calls.  ``named`` is ``list(model.named_modules())``
    when the caller has it already (walking a large model's tree is not free)."""
    named = list(model.named_modules()) if named is None else named
    parameters, held = members(named, "_parameters")
    buffers, held_buffers = members(named, "_buffers")
    root = Frame(path="", module=model, parent=None, depth=0, call=1)
    xs = x if isinstance(x, tuple) else (x,)
    tracer = start(root, xs, strict, rules, parameters, buffers)
    own_hooks = any(m._forward_pre_hooks or m._forward_hooks for _, m in named)
    # A model made only of modules whose forwards assign nothing (replay.PURE), with no hooks
    # but ours, changes nothing a trace would have to put back but the random state; and its
    # repeated blocks can be replayed.
    pure = not own_hooks and replay.all_pure(named)
    state = ModelState(() if pure else (m for _, m in named))
    hooks = ModuleHooks(model, tracer, named)
    handles = []
    replayer = None
    try:
        handles = hooks.register(named, own_hooks)
        if (
            pure
            and replay.ENABLED
            and rules is R.DEFAULT_RULES
            and held == len(parameters)
            and held_buffers == len(buffers)
        ):
            # (no parameter or buffer held twice; the replayer checks the modules)
            replayer = replay.Replayer(tracer, hooks, named)
        with tracer, torch.no_grad():
            output = _forward(model, xs, tracer)
    finally:
        if replayer is not None:
            replayer.uninstall()
        for h in handles:
            h.remove()
        state.restore()
    return finish(tracer, output, xs, parameters, buffers, replayer)


def start(
    root: Frame,
    xs: tuple[torch.Tensor, ...],
    strict: bool,
    rules: R.RuleTable,
    parameters: list,
    buffers: list,
) -> _Tracer:
    """The tracer of one trace from ``root`` on the inputs ``xs`` of a model with these
    parameters and buffers (also what the spec path, :mod:`~cnnlab.analysis.specpath`, drives)."""
    tracer = _Tracer(root, strict, rules, xs)
    tracer.params = {id(p) for p in parameters}
    tracer.state = tracer.params | {id(b) for b in buffers}
    for t in xs:
        tracer._remember(t, Fields(tuple(Field() for _ in range(max(t.dim() - 2, 0)))))
    return tracer


def finish(
    tracer: _Tracer,
    output: Any,
    xs: tuple[torch.Tensor, ...],
    parameters: list,
    buffers: list,
    replayer: Any = None,
) -> TraceResult:
    """The :class:`TraceResult` of a trace that returned ``output``."""
    root = tracer.stack[0]
    root.output_shapes = shapes_of(output)
    outs = tensors_in(output)
    root.out_info = tracer.info_of(outs[0]) if outs else None
    saved = sum(tracer.saved.values()) + tracer.saved_extra
    return TraceResult(
        root=root,
        output=output,
        saved_bytes=saved,
        input_values=sum(t.numel() for t in xs),
        input_bytes=sum(t.numel() * t.element_size() for t in xs),
        used=tracer.used,
        parameters=parameters,
        buffers=buffers,
        replayed=0 if replayer is None else replayer.replayed,
    )
