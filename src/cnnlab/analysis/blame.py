"""Where an exception of a traced forward came from: the line of the model's own code that
raised it (not torch's, not cnnlab's), and whether it was raised by the analysis itself (a bug
of cnnlab, which must propagate as it is rather than be blamed on the model)."""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = [
    "first_line",
    "func_name",
    "raised_by_the_analysis",
    "shape_text",
    "user_line",
    "user_line_of",
]


_TORCH_DIR = os.path.dirname(torch.__file__)
_CNNLAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ANALYSIS_DIR = os.path.dirname(os.path.abspath(__file__))


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    out = []
    tb = exc.__traceback__
    while tb is not None:
        out.append((os.path.abspath(tb.tb_frame.f_code.co_filename), tb.tb_lineno))
        tb = tb.tb_next
    return out


def raised_by_the_analysis(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is the analysis's own code."""
    frames = _frames(exc)
    return bool(frames) and frames[-1][0].startswith(_ANALYSIS_DIR + os.sep)


def user_line(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of the model's own code (not torch's, not
    cnnlab's) in ``exc``'s traceback, relative to the working directory when under it."""
    return user_line_of(_frames(exc))


def user_line_of(frames: list[tuple[str, int | None]]) -> str:
    """:func:`user_line` over ``(file, line)`` pairs, outermost first."""
    for name, line in reversed(frames):
        path = os.path.abspath(name)
        if path.startswith((_TORCH_DIR + os.sep, _CNNLAB_DIR + os.sep)):
            continue
        try:
            rel = os.path.relpath(path)
        except ValueError:
            rel = path
        return f"{path if rel.startswith('..') else rel}:{line}"
    return ""


def func_name(func: Any) -> str:
    """A torch function's name for messages (``attribute`` for a tensor attribute read)."""
    name = getattr(func, "__name__", None) or repr(func)
    if name == "__get__":
        return "attribute"
    return name


def shape_text(shape) -> str:
    """``3x224x224``; ``()`` for a scalar."""
    return "x".join(map(str, shape)) or "()"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
