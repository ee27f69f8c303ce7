"""Take what a forward can change in a model, and put it back exactly: what lets the analysis
run any forward (counters, EMA buffers, caches, lists it appends to) and leave the model as it
was, also when the forward fails.

A forward may assign to its modules (``self.calls += 1``, an EMA buffer
``self.avg = 0.9 * self.avg + ...``, a cache ``self.last = x``) and fill the lists, dicts and
sets they hold; during a trace those values are shape-only tensors or counts of a call that
never happened.  :class:`ModelState` records every module's attributes (parameters, buffers and
submodules included) by identity, and the contents of the containers reachable from them
through lists, tuples, dicts and sets; :meth:`ModelState.restore` puts the attributes back and
gives the containers their old contents, in place.  Tensors themselves are never written by a
trace (in-place calls run on stand-ins), and PyTorch's global random state is put back too.
Objects of other types that a forward changes (an attribute of an attribute's ``__dict__``)
are not tracked.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import is_
from typing import Any

import torch
from torch import nn

__all__ = ["ModelState", "members"]

_CONTAINERS = (list, tuple, dict, set)
_MISSING = object()


class ModelState:
    """What a forward can change in ``modules`` (a model's ``modules()``), taken now."""

    def __init__(self, modules: Iterable[nn.Module]):
        # (module, its attribute names then, their values then)
        self.attrs: list[tuple[nn.Module, tuple[str, ...], tuple[Any, ...]]] = []
        # (dict, its keys then, its values then); (list or set, its elements then).  Tuples
        # cannot change: only their items are tracked.
        self.dicts: list[tuple[dict, tuple, tuple]] = []
        self.others: list[tuple[list | set, tuple]] = []
        seen: set[int] = set()
        stack: list = []
        for m in modules:
            d = m.__dict__
            self.attrs.append((m, tuple(d), tuple(d.values())))
            # PyTorch's hook tables are left out (a dozen per module, and a forward does not
            # register hooks; the analysis removes its own by their handles).
            stack.extend(v for k, v in d.items() if isinstance(v, _CONTAINERS) and "hooks" not in k)
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if isinstance(v, dict):
                values = tuple(v.values())
                self.dicts.append((v, tuple(v), values))
            else:
                values = tuple(v)
                if not isinstance(v, tuple):
                    self.others.append((v, values))
            stack.extend(i for i in values if isinstance(i, _CONTAINERS))
        self.rng = torch.random.get_rng_state()

    def restore(self) -> None:
        """Put every tracked attribute and container content back, and the random state."""
        for obj, keys, values in self.dicts:
            if not _same(obj, keys, values):
                obj.clear()
                obj.update(zip(keys, values, strict=True))
        for obj, values in self.others:
            if len(obj) == len(values) and (
                all(map(is_, obj, values)) if isinstance(obj, list) else obj.issuperset(values)
            ):
                continue
            if isinstance(obj, list):
                obj[:] = values
            else:
                obj.clear()
                obj.update(values)
        for module, keys, values in self.attrs:
            now = module.__dict__
            if _same(now, keys, values):
                continue
            for key in now.keys() - set(keys):
                del now[key]
            for key, value in zip(keys, values, strict=True):
                if now.get(key, _MISSING) is not value:
                    now[key] = value
        torch.random.set_rng_state(self.rng)


def _same(d: dict, keys: tuple, values: tuple) -> bool:
    """Whether ``d`` still maps exactly ``keys`` to ``values`` (by identity), in order; a
    reordered but equal dict answers False, and is then rebuilt, which changes nothing."""
    return len(d) == len(keys) and all(map(is_, d.values(), values)) and all(map(is_, d, keys))


def members(named: list[tuple[str, nn.Module]], table: str) -> tuple[list, int]:
    """``model.parameters()`` (table ``_parameters``) or ``model.buffers()`` (``_buffers``)
    from the model's ``named_modules()``: each tensor once, at its first holder; and how many
    holdings there are (more than tensors: some are shared)."""
    seen: set[int] = set()
    out = []
    held = 0
    for _, m in named:
        for t in getattr(m, table).values():
            if t is not None:
                held += 1
                if id(t) not in seen:
                    seen.add(id(t))
                    out.append(t)
    return out, held
