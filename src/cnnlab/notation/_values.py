"""The values a layer kind holds: checks that name their field, and how values are written.

Pure Python (no torch).  Every check raises :class:`FieldError`, a
:class:`~cnnlab.errors.SpecError` that knows which field of the layer was wrong, so the parser
puts its caret under the part of the text that wrote that field (no guessing from the
message's words).
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.errors import SpecError

__all__ = [
    "MAX_INT",
    "FieldError",
    "NoNotation",
    "Pair",
    "as_pair",
    "check_bool",
    "check_float",
    "check_int",
    "check_pair",
    "settle",
    "write_value",
]

Pair = tuple[int, int]

# Bounds that keep a typo from allocating the machine away; far beyond any real network.
MAX_INT = 1 << 24


class FieldError(SpecError):
    """A layer field with a bad value; ``field`` is the dataclass field's name."""

    def __init__(self, field: str, reason: str):
        self.field = field
        super().__init__(reason)


class NoNotation(Exception):  # noqa: N818 (a signal between a kind and the formatter)
    """A module of a kind's type whose settings the notation cannot write (``why``)."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def as_pair(value: Any) -> Pair:
    """A module's int-or-pair attribute (``kernel_size``, ``stride``...) as a pair."""
    return tuple(value) if isinstance(value, tuple | list) else (value, value)  # type: ignore


def check_pair(field: str, value: object, low: int, label: str | None = None) -> Pair:
    """A whole number or an ``(a, b)`` pair of them, each in ``low .. MAX_INT``, as a pair."""
    label = label or field
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], int)
        or isinstance(value[0], bool)
        or isinstance(value[1], bool)
    ):
        raise FieldError(field, f"{label} must be a whole number or a pair AxB, got {value!r}")
    for v in value:
        if not low <= v <= MAX_INT:
            raise FieldError(field, f"{label} must be between {low} and {MAX_INT}, got {v}")
    return value  # type: ignore[return-value]


def check_int(field: str, value: object, low: int, label: str | None = None) -> int:
    label = label or field
    if not isinstance(value, int) or isinstance(value, bool):
        raise FieldError(field, f"{label} must be a whole number, got {value!r}")
    if not low <= value <= MAX_INT:
        raise FieldError(field, f"{label} must be between {low} and {MAX_INT}, got {value}")
    return value


def check_float(
    field: str,
    value: object,
    low: float,
    high: float = math.inf,
    open_low: bool = False,
    label: str | None = None,
) -> float:
    label = label or field
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field, f"{label} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        if high != math.inf:
            bound += f" and <= {high:g}"
        raise FieldError(field, f"{label} must be {bound}, got {value!r}")
    return value


def check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, f"{field} must be true or false, got {value!r}")
    return value


def settle(obj: object, name: str, value: object) -> None:
    """Set a field of a frozen dataclass to its checked value (in ``__post_init__``)."""
    object.__setattr__(obj, name, value)


def write_value(value: Any) -> str:
    """A value as the notation writes it: ``3`` or ``1x7`` for pairs, ``0.001`` for floats
    (``repr``, so it reads back exactly), ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    if isinstance(value, float):
        return repr(value)
    return str(value)
