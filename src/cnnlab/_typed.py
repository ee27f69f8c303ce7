"""Typed values from a user: the one reading of text by a type hint, and the one check of a
value against it, for every option cnnlab takes (zoo builders' options, recipe keys).

Hints are the plain ones cnnlab's signatures use: ``bool``, ``int``, ``float``, ``str``,
``tuple[int, ...]`` (or of fixed length), and unions of them with ``None``.  A bool is read
from ``true/false/yes/no/1/0`` in any case and nothing else; a bool is never taken for an int,
nor a string for a bool.  Errors are :class:`TypedValueError` with what was expected; the
caller adds which option it was.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["TypedValueError", "check_value", "did_you_mean", "parse_text", "type_name"]

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_NONE = ("none", "null", "")


class TypedValueError(CnnlabError):
    """A value that does not have its option's type; ``expected`` says what would do."""

    def __init__(self, expected: str):
        self.expected = expected
        super().__init__(f"expected {expected}")


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid``, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _parts(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if _is_union(hint) else (hint,)


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def type_name(hint: Any) -> str:
    """How a hint reads in a message: ``"int | none"``, ``"true or false"``, ``"list of
    float"``, ``"3 int values"``."""
    if _is_union(hint):
        return " | ".join(type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return f"{len(args)} {type_name(args[0])} values (a,b,...)"
    return {bool: "true or false", str: "text", type(None): "none"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def parse_text(text: str, hint: Any) -> Any:
    """``text`` read as a value of ``hint`` (then checked by :func:`check_value`)."""
    text = text.strip()
    parts = _parts(hint)
    if type(None) in parts and text.lower() in _NONE:
        return None
    # the most specific reading first: "3" is an int before it is a tuple of one
    order = sorted(
        (p for p in parts if p is not type(None)), key=lambda p: typing.get_origin(p) is tuple
    )
    for part in order:
        try:
            return check_value(_parse_one(text, part), part)
        except TypedValueError:
            continue
    raise TypedValueError(type_name(hint))


def _parse_one(text: str, hint: Any) -> Any:
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        items = [p.strip() for p in text.strip("[]()").split(",") if p.strip()]
        inner = args[0]
        if not (len(args) == 2 and args[1] is Ellipsis) and len(items) != len(args):
            raise TypedValueError(type_name(hint))
        return tuple(_parse_one(p, inner) for p in items)
    try:
        if hint is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if hint is int:
            return int(text.replace("_", ""))
        if hint is float:
            return float(text)
    except ValueError:
        raise TypedValueError(type_name(hint)) from None
    return text


def check_value(value: Any, hint: Any) -> Any:
    """``value`` when it has type ``hint`` (an int does for a float and becomes one), else
    :class:`TypedValueError`.  A list is accepted for a tuple and becomes one."""
    if hint is Any:
        return value
    if _is_union(hint):
        return _check_union(value, hint)
    if typing.get_origin(hint) is tuple:
        return _check_tuple(value, hint)
    if hint is type(None):
        ok = value is None
    elif hint in _SCALARS:
        ok = _SCALARS[hint](value)
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:  # a hint cnnlab's signatures do not use: take the value as it is
        ok = True
    if not ok:
        raise TypedValueError("none" if hint is type(None) else type_name(hint))
    return float(value) if hint is float else value


# bool is an int in Python; an option typed int or float must not take True.
_SCALARS: dict[type, Any] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _check_union(value: Any, hint: Any) -> Any:
    for part in typing.get_args(hint):
        try:
            return check_value(value, part)
        except TypedValueError:
            continue
    raise TypedValueError(type_name(hint))


def _check_tuple(value: Any, hint: Any) -> tuple:
    if not isinstance(value, list | tuple):
        raise TypedValueError(type_name(hint))
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        inner = [args[0]] * len(value)
    elif len(args) == len(value):
        inner = list(args)
    else:
        raise TypedValueError(type_name(hint))
    return tuple(check_value(v, h) for v, h in zip(value, inner, strict=True))
