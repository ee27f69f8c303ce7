"""Reading characters of the compact notation: positions, spaces, numbers, size pairs.

The base of the parser; every error it raises is a :class:`~cnnlab.errors.SpecError` with a
caret at the offending character.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import SpecError

__all__ = ["DIGITS", "LETTERS", "NAME_CHARS", "SPACE", "Scanner"]

_MAX_DIGITS = 12  # longer numbers are typos (and int() refuses > 4300 digits)

DIGITS = frozenset("0123456789")
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
NAME_CHARS = LETTERS | DIGITS
SPACE = frozenset(" \t\r\n")


class Scanner:
    """A position in ``text`` and the reading of its smallest pieces."""

    def __init__(self, text: str):
        self.text = text
        self.n = len(text)
        self.pos = 0

    def error(self, reason: str, pos: int | None = None) -> SpecError:
        return SpecError(reason, self.text, self.pos if pos is None else pos)

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < self.n else ""

    def skip_space(self) -> bool:
        i = self.pos
        if i < self.n and self.text[i] in SPACE:  # (most places have none)
            self.skip_run(SPACE)
            return True
        return False

    def skip_run(self, chars: frozenset[str]) -> None:
        """Move past the characters in ``chars`` at the position (a word, a number's
        digits): one loop over the text, not a ``peek`` per character."""
        text, i, n = self.text, self.pos, self.n
        while i < n and text[i] in chars:
            i += 1
        self.pos = i

    def describe(self) -> str:
        if self.pos >= self.n:
            return "the end of the text"
        return f"{self.text[self.pos]!r}"

    # -- the main loop -------------------------------------------------------------------

    def number(self) -> tuple[Any, bool]:
        """An unsigned int or float at pos: ``64``, ``0.5``, ``.5``, ``1e-4``, ``5e-05``."""
        start = self.pos
        self.skip_run(DIGITS)
        is_int = True
        if self.peek() == "." and (self.pos > start or self.peek(1) in DIGITS):
            is_int = False
            self.pos += 1
            self.skip_run(DIGITS)
        if self.pos == start:
            raise self.error(f"expected a number, got {self.describe()}")
        if self.peek() in ("e", "E") and self.peek():
            j = self.pos + 1
            if j < self.n and self.text[j] in "+-":
                j += 1
            if j < self.n and self.text[j] in DIGITS:
                is_int = False
                self.pos = j
                self.skip_run(DIGITS)
        token = self.text[start : self.pos]
        if sum(ch in DIGITS for ch in token) > _MAX_DIGITS:
            raise self.error(f"the number {token[:20]}... is too long", start)
        return (int(token), True) if is_int else (float(token), False)

    def int_pair(self, what: str) -> tuple[int, int]:
        """``3`` -> (3, 3); ``1x7`` -> (1, 7)."""
        start = self.pos
        if not (self.peek() in DIGITS and self.peek()):
            raise self.error(f"expected {what} (a whole number, or AxB), got {self.describe()}")
        a, is_int = self.number()
        if not is_int:
            raise self.error(f"{what} must be a whole number", start)
        if self.peek() in ("x", "X") and self.peek() and self.peek(1) in DIGITS and self.peek(1):
            self.pos += 1
            second = self.pos
            b, is_int = self.number()
            if not is_int:
                raise self.error(f"{what} must be a whole number", second)
            return (a, b)
        return (a, a)

    # -- one layer -----------------------------------------------------------------------
