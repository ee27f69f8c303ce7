"""Walkers over the tensors in a torch call's arguments (tuples, lists, dict values)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["NESTS", "map_tensors", "shapes_of", "storage_owner", "tensors_in"]

# Arguments of torch calls nest tensors only in tuples, lists and dicts.  These two walkers do
# what torch.utils._pytree's tree_flatten/tree_map would, at a fraction of the cost: pytree's
# node-type lookup is slow on first use and was most of the analysis time of small networks.


def tensors_in(value: Any, out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Every tensor in ``value`` (nested tuples, lists and dict values), in order."""
    out = [] if out is None else out
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, _SEQUENCES):
        for v in value:  # one level inline: most arguments are flat
            if isinstance(v, torch.Tensor):
                out.append(v)
            elif isinstance(v, NESTS):
                tensors_in(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            tensors_in(v, out)
    return out


NESTS = (tuple, list, dict)
_SEQUENCES = (tuple, list)  # (a tuple of types: ``tuple | list`` is a new union per call)


def storage_owner(t: torch.Tensor) -> torch.Tensor:
    """The tensor that owns ``t``'s storage (``t`` itself unless it is a view)."""
    while t._base is not None:
        t = t._base
    return t


def map_tensors(fn: Any, value: Any) -> Any:
    """``value`` with every tensor replaced by ``fn(tensor)``; containers keep their type."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, _SEQUENCES):
        items = [map_tensors(fn, v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if hasattr(value, "_fields"):  # a namedtuple
            return type(value)(*items)
        return type(value)(items)
    if isinstance(value, dict):
        return {k: map_tensors(fn, v) for k, v in value.items()}
    return value


def shapes_of(value: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(t.shape) for t in tensors_in(value))
