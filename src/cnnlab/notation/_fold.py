"""Folding runs of identical layers into repetitions: ``(conv3-512-relu)*3``.

Pure functions over the layers' canonical texts, nested where the text repeats at two levels,
with ``(...)`` for the innermost groups and ``[...]`` around them, as in the lecture's pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["fold"]

_MAX_PERIOD = 32  # longest repeated unit looked for, in layers (VGG's is 2 or 4)


def fold(tokens: list[str], compact: bool = True) -> str:
    """The layers' texts joined by ``-``, repeated runs folded (unless ``compact=False``)."""
    items = _compress(list(tokens)) if compact else tokens
    return "-".join(_render(item) for item in items)


@dataclass(frozen=True)
class _Group:
    items: tuple[Any, ...]
    count: int
    depth: int


def _compress(items: list[Any]) -> list[Any]:
    """Fold repeated runs, shortest units first, so that inner repetitions nest inside outer
    ones as the lecture writes them: ``[(conv3-32-relu)*2-maxpool]*3``, not a flat group of
    five layers repeated three times."""
    p = 1
    while p <= min(_MAX_PERIOD, len(items) // 2):
        items, changed = _fold(items, p)
        p = 1 if changed else p + 1
    return items


def _fold(items: list[Any], p: int) -> tuple[list[Any], bool]:
    """Replace every run of two or more copies of a ``p``-item unit, left to right."""
    out: list[Any] = []
    i, n, changed = 0, len(items), False
    while i < n:
        unit = items[i : i + p]
        c = _run(items, i, p)
        if c > 1 and _better_later(items, i, p, c):
            c = 1  # [maxpool-(conv..)*3]*2-maxpool reads worse than maxpool-[(conv..)*3-maxpool]*2
        if c > 1:
            depth = 1 + max((x.depth for x in unit if isinstance(x, _Group)), default=0)
            out.append(_Group(tuple(unit), c, depth))
            i += p * c
            changed = True
        else:
            out.append(items[i])
            i += 1
    return out, changed


def _run(items: list[Any], i: int, p: int) -> int:
    """How many copies of ``items[i:i+p]`` follow each other from ``i``."""
    unit, c = items[i : i + p], 1
    if len(unit) < p:
        return 0
    while i + (c + 1) * p <= len(items) and items[i + c * p : i + (c + 1) * p] == unit:
        c += 1
    return c


def _better_later(items: list[Any], i: int, p: int, c: int) -> bool:
    """Whether a run a few items later repeats as often as the run at ``i`` and reads better:
    its unit ends with a pool (a stage) where the one at ``i`` has a pool inside, or it starts
    one item later where the one at ``i`` starts with an activation or normalisation."""
    unit = items[i : i + p]
    if p > 1 and _follows(unit[0]) and _run(items, i + 1, p) >= c:
        return True  # (relu-{...}add)*3-relu reads worse than relu-({...}add-relu)*3
    if _is_pool(unit[-1]) or not any(_is_pool(x) for x in unit):
        return False
    for shift in range(1, p):
        end = i + shift + p - 1
        if end < len(items) and _is_pool(items[end]) and _run(items, i + shift, p) >= c:
            return True
    return False


def _follows(item: Any) -> bool:
    # An activation or normalisation belongs to the layer before it, so a repeated unit should
    # end with it, not start with it.
    return isinstance(item, str) and item.split("(")[0] in _FOLLOWERS


_FOLLOWERS = frozenset({"relu", "tanh", "sigmoid", "stanh", "bn", "lrn", "dropout"})


def _is_pool(item: Any) -> bool:
    # A pooling layer ends a stage, so a repeated unit should end with it, not start with it.
    return isinstance(item, str) and item.startswith(("maxpool", "avgpool", "gap", "subsample"))


def _render(item: Any) -> str:
    if isinstance(item, str):
        return item
    inner = "-".join(_render(x) for x in item.items)
    open_, close = ("(", ")") if item.depth % 2 else ("[", "]")
    return f"{open_}{inner}{close}*{item.count}"
