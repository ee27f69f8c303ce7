"""The error types cnnlab raises for user mistakes.

Every error a user can cause (a bad spec, a window that does not fit, an unknown model name, a
broken data file) is a :class:`CnnlabError`. The CLI prints such errors as one line and exits
with status 2; anything else is a bug and keeps its traceback.  :func:`check_int` is the one
check of an integer argument (a count, a size, a stride) that every layer of cnnlab uses.
"""

from __future__ import annotations

import traceback
from pathlib import Path

__all__ = [
    "AnalysisError",
    "CnnlabError",
    "DataError",
    "GeometryError",
    "ShapeError",
    "SpecError",
    "UnknownModelError",
    "UserCodeError",
    "check_int",
]


class CnnlabError(ValueError):
    """Base class of the errors caused by user input (subclass of ``ValueError``)."""


class GeometryError(CnnlabError):
    """A window (convolution or pooling) that does not fit its input, or a volume that vanishes."""


class ShapeError(GeometryError):
    """Tensors whose shapes do not go together (channels, features, broadcasting)."""


class AnalysisError(CnnlabError):
    """A model's forward that cannot be traced for the given input (names the layer)."""


class UnknownModelError(CnnlabError, KeyError):
    """A model name that is not registered; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SpecError(CnnlabError):
    """A compact-notation text that does not parse or build.

    ``text`` is the whole spec, ``pos`` the 0-based character offset of the problem (or None),
    ``reason`` what was wrong and expected.  ``str()`` shows the text with a caret under ``pos``.
    """

    def __init__(self, reason: str, text: str = "", pos: int | None = None):
        self.reason = reason
        self.text = text
        self.pos = pos
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.text or self.pos is None:
            return self.reason
        # Show a window of the text around the position so long specs stay readable.
        start = max(0, self.pos - 60)
        end = min(len(self.text), self.pos + 60)
        shown = self.text[start:end].replace("\n", " ").replace("\t", " ")
        prefix = "..." if start > 0 else ""
        suffix = "..." if end < len(self.text) else ""
        caret = " " * (len(prefix) + self.pos - start) + "^"
        return f"{self.reason}\n  {prefix}{shown}{suffix}\n  {caret}"


class DataError(CnnlabError):
    """A dataset that cannot be found, read or trusted; the message names the file."""


def check_int(
    what: str, value: object, low: int = 1, error: type[CnnlabError] | None = None
) -> int:
    """``value`` when it is an integer (not a bool) >= ``low``; otherwise ``error``
    (:class:`CnnlabError` by default) saying ``"{what} must be an integer >= {low}, got ..."``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise (error or CnnlabError)(f"{what} must be an integer >= {low}, got {value!r}")
    return value


class UserCodeError(CnnlabError):
    """An exception raised by the user's own code (a factory, a module's forward, a file that
    does not import): one line with the exception's type and message and the user's
    ``file:line``; ``cause`` keeps the original for ``--traceback``."""

    def __init__(self, what: str, cause: BaseException, user_file: str | Path | None = None):
        self.cause = cause
        where = _user_frame(cause, user_file)
        at = f" at {where}" if where else ""
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        detail = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
        super().__init__(f"{what}: {detail}{at} (--traceback shows all)")

    def traceback_text(self) -> str:
        return "".join(traceback.format_exception(self.cause))


def _user_frame(exc: BaseException, user_file: str | Path | None) -> str | None:
    """``file:line`` of the innermost frame in ``user_file`` (or, without one, outside
    cnnlab and torch), where the user's code raised."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    want = str(Path(user_file).resolve()) if user_file else None
    for frame in reversed(frames):
        name = frame.filename
        if want is not None:
            if str(Path(name).resolve()) == want:
                return f"{user_file}:{frame.lineno}"
        elif not name.startswith("<") and not {"cnnlab", "torch"} & set(Path(name).parts):
            return f"{name}:{frame.lineno}"
    return None
