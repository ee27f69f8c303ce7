"""Reading one layer of the compact notation: its word, kernel, stride, number and options,
checked against what its kind takes (:mod:`cnnlab.notation.layer`) and built.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import SpecError
from cnnlab.notation._scan import DIGITS, LETTERS, NAME_CHARS, SPACE, Scanner
from cnnlab.notation._values import FieldError
from cnnlab.notation.kinds import KINDS, Layer, Option

__all__ = ["LIST", "WORDS", "LayerReader"]


# canonical layer word -> its kind; keyword (any spelling) -> canonical word.  "input" is an
# optional marker at the start that builds nothing.
_KIND_OF: dict[str, type[Layer]] = {spelling[0]: kind for kind in KINDS for spelling in kind.words}
WORDS: dict[str, str] = {
    word: spelling[0] for kind in KINDS for spelling in kind.words for word in spelling
}
WORDS["input"] = "input"

LIST = ", ".join(word for word, kind in _KIND_OF.items() if kind.takes_name)
_OPTION_ALIASES = {"padding": "pad", "dil": "dilation"}
_NAME = Option("name", "name")
_CHOICE_CHARS = NAME_CHARS | {"."}  # a choice value: letters, digits, _ and .


@dataclass
class _Written:
    """What the text wrote for one layer, and where: ``at`` maps each part (``kernel``,
    ``stride``, ``param``) to the offset of its text, ``options`` each option's field to its
    value and the offset of the value."""

    word: str  # as spelled
    canon: str  # its canonical word
    start: int
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    param: tuple[Any, bool] | None = None  # (number, is whole)
    widths: tuple[int, ...] = ()  # the bracketed whole numbers of a kind with ``widths``
    options: dict[str, tuple[Any, int]] = field(default_factory=dict)
    at: dict[str, int] = field(default_factory=dict)


def _allowed(canon: str) -> dict[str, Option]:
    """The options a layer word takes, by key (read-only; one table per word)."""
    allowed = _ALLOWED.get(canon)
    if allowed is None:
        kind = _KIND_OF.get(canon)  # None for 'input'
        allowed = {o.key: o for o in (kind.options if kind else ())}
        if kind is not None and kind.takes_name:
            allowed["name"] = _NAME
        _ALLOWED[canon] = allowed
    return allowed


_ALLOWED: dict[str, dict[str, Option]] = {}


class LayerReader(Scanner):
    """Reads the layer at the position (see :meth:`layer`)."""

    def layer(self) -> Layer | None:
        start = self.pos
        self.skip_run(LETTERS)
        word = self.text[start : self.pos]
        canon = WORDS.get(word.lower())
        if canon is None:
            raise self.unknown(word, start)
        w = _Written(word, canon, start)
        kind = _KIND_OF.get(canon)
        if kind is not None and kind.widths:
            w.widths = self.widths(kind, w)
        if self.peek() in DIGITS and self.peek():
            w.at["kernel"] = self.pos
            w.kernel = self.int_pair("a kernel size")
        if self.peek() == "/":
            self.pos += 1
            w.at["stride"] = self.pos
            w.stride = self.int_pair("a stride after '/'")
        # '-' followed by a number is this layer's parameter (spaces allowed around '-')
        save = self.pos
        self.skip_space()
        if self.peek() == "-":
            self.pos += 1
            self.skip_space()
            c = self.peek()
            if c and (c in DIGITS or (c == "." and self.peek(1) in DIGITS and self.peek(1))):
                w.at["param"] = self.pos
                w.param = self.number()
            else:
                self.pos = save
        else:
            self.pos = save
        if w.param is not None and self.peek() == "/":  # conv3-64/2: the stride after the width
            if w.stride is not None:
                raise self.error("the stride is given twice", self.pos)
            self.pos += 1
            w.at["stride"] = self.pos
            w.stride = self.int_pair("a stride after '/'")
        w.options = self.options(canon)
        return self.make(w)

    def widths(self, kind: type[Layer], w: _Written) -> tuple[int, ...]:
        """The whole numbers in brackets right after the word: ``inception(64,96,...)``."""
        need = len(kind.widths)
        if self.peek() != "(":
            raise self.error(f"{w.word} needs its {need} widths in brackets: {kind.widths_help}")
        open_pos = self.pos
        self.pos += 1
        values: list[int] = []
        while True:
            self.skip_space()
            at = self.pos
            if not (self.peek() in DIGITS and self.peek()):
                raise self.error(
                    f"expected width {len(values) + 1} of {need} of {w.word} "
                    f"({kind.widths[min(len(values), need - 1)]}), got {self.describe()}: "
                    f"{kind.widths_help}"
                )
            value, is_int = self.number()
            if not is_int:
                raise self.error(f"the widths of {w.word} are whole numbers", at)
            if len(values) < need:
                w.at[kind.widths[len(values)]] = at
            values.append(value)
            unclosed = f"the '(' of {w.word}'s widths is never closed"
            if not self._more(open_pos, unclosed, f"{w.word}'s widths"):
                break
        if len(values) != need:
            raise self.error(
                f"{w.word} takes {need} widths, got {len(values)}: {kind.widths_help}", open_pos
            )
        return tuple(values)

    def unknown(self, word: str, start: int) -> SpecError:
        end = self.pos
        while end < self.n and (self.text[end] in NAME_CHARS or self.text[end] in "/"):
            end += 1
        token = self.text[start:end]
        rest = self.text[start + len(word) : end]
        close = difflib.get_close_matches(word.lower(), list(WORDS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0] + rest!r}?" if close else ""
        return self.error(f"unknown layer {token!r}{hint} (layers: {LIST}, softmax)", start)

    def options(self, canon: str) -> dict[str, tuple[Any, int]]:
        """An options block ``(key=value, ...)`` if one follows, as field -> (value, offset
        of the value); else empty."""
        save = self.pos
        self.skip_space()
        if self.peek() != "(" or not self._looks_like_options():
            self.pos = save
            return {}
        open_pos = self.pos
        self.pos += 1
        allowed = _allowed(canon)
        values: dict[str, tuple[Any, int]] = {}
        while True:
            self.skip_space()
            kstart = self.pos
            self.skip_run(NAME_CHARS)
            key = self.text[kstart : self.pos].lower()
            if not key:
                raise self.error(f"expected an option name (key=value), got {self.describe()}")
            key = _OPTION_ALIASES.get(key, key)
            if key not in allowed:
                if not allowed:
                    raise self.error(f"{canon} takes no options", kstart)
                close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(
                    f"{canon} has no option {key!r}{hint} (options: {', '.join(allowed)})", kstart
                )
            option = allowed[key]
            if option.target in values:
                raise self.error(f"the option {key!r} is given twice", kstart)
            self.skip_space()
            if self.peek() != "=":
                raise self.error(f"expected '=' after {key!r}, got {self.describe()}")
            self.pos += 1
            self.skip_space()
            vpos = self.pos
            values[option.target] = (self.value(option), vpos)
            if not self._more(open_pos, "the options '(' is never closed", "the options"):
                return values

    def _more(self, open_pos: int, unclosed: str, inside: str) -> bool:
        """After an item of a bracketed list: True past a ',' (another item follows), False
        past the closing ')'."""
        self.skip_space()
        c = self.peek()
        if c and c in ",)":
            self.pos += 1
            return c == ","
        if not c:
            raise self.error(unclosed, open_pos)
        raise self.error(f"expected ',' or ')' in {inside}, got {self.describe()}")

    def _looks_like_options(self) -> bool:
        i = self.pos + 1
        while i < self.n and self.text[i] in SPACE:
            i += 1
        j = i
        while j < self.n and self.text[j] in NAME_CHARS:
            j += 1
        if j == i or self.text[i] in DIGITS:
            return False
        while j < self.n and self.text[j] in SPACE:
            j += 1
        return j < self.n and self.text[j] == "="

    def value(self, option: Option) -> Any:
        """The value of ``option``, read as its type says (see :class:`Option`)."""
        if option.value == "name":
            return self._name()
        if option.value == "table":
            return self.table(option.key)
        if option.value == "choice":
            return self._choice(option)
        c = self.peek()
        if c and (c in DIGITS or (c == "." and self.peek(1) in DIGITS and self.peek(1))):
            return self._number(option)
        if c in LETTERS and c:
            return self._word(option)
        raise self.error(f"expected a value for {option.key!r}, got {self.describe()}")

    def _name(self) -> str:
        start = self.pos
        self.skip_run(NAME_CHARS)
        if self.pos == start:
            raise self.error("expected a name (letters, digits, '_')")
        return self.text[start : self.pos]

    def _choice(self, option: Option) -> str:
        start = self.pos
        self.skip_run(_CHOICE_CHARS)
        word = self.text[start : self.pos]
        for choice in option.choices:
            if word.lower() == choice.lower():
                return choice
        got = f"got {word!r}" if word else f"got {self.describe()}"
        raise self.error(f"{option.key} must be one of {', '.join(option.choices)}, {got}", start)

    def _number(self, option: Option) -> Any:
        """A number where the option's value starts with a digit: a pair, an int, a float."""
        key, kind, start = option.key, option.value, self.pos
        if kind in ("pair", "pad"):
            return self.int_pair(key)
        value, is_int = self.number()
        if kind == "int" and not is_int:
            raise self.error(f"{key} must be a whole number", start)
        if kind == "bool":
            raise self.error(f"{key} must be true or false", start)
        return value

    def _word(self, option: Option) -> Any:
        """A word where the option's value starts with a letter: true/false, same/valid."""
        key, kind, start = option.key, option.value, self.pos
        self.skip_run(LETTERS)
        word = self.text[start : self.pos].lower()
        if kind == "bool" and word in ("true", "false"):
            return word == "true"
        if kind == "pad" and word in ("same", "valid"):
            return word
        valid = "true or false" if kind == "bool" else "a number"
        valid += ", same or valid" if kind == "pad" else ""
        raise self.error(f"{key} must be {valid}, got {word!r}", start)

    def table(self, key: str) -> str | tuple[tuple[int, ...], ...]:
        """A connection table: a name (``lenet5``) or rows of input maps, the maps of one
        output map joined by ``+`` and the rows by ``/`` (``0+1+2/1+2+3``)."""
        start = self.pos
        if self.peek() in LETTERS and self.peek():
            self.skip_run(NAME_CHARS)
            return self.text[start : self.pos].lower()
        rows: list[tuple[int, ...]] = []
        row: list[int] = []
        while True:
            if not (self.peek() in DIGITS and self.peek()):
                raise self.error(
                    f"{key} must be lenet5 (the paper's C3 table) or rows of input maps such "
                    f"as 0+1+2/1+2+3, got {self.describe()}"
                )
            at = self.pos
            value, is_int = self.number()
            if not is_int:
                raise self.error(f"{key}: an input map is a whole number", at)
            row.append(value)
            c = self.peek()
            if c == "+":
                self.pos += 1
            elif c == "/":
                self.pos += 1
                rows.append(tuple(row))
                row = []
            else:
                rows.append(tuple(row))
                return tuple(rows)

    # -- from the written parts to a layer -------------------------------------------------

    def make(self, w: _Written) -> Layer | None:
        """Check the parts written against what the layer's kind takes, then build it (None
        for the 'input' marker).  A field the kind refuses is shown at the text that set it."""
        if w.canon == "input":
            if w.kernel or w.stride or w.param is not None or w.options:
                raise self.error("'input' takes no parameters", w.at.get("kernel", w.start))
            return None
        kind = _KIND_OF[w.canon]
        self.check_parts(kind, w)
        values: dict[str, Any] = kind.fixed_by_word(w.canon)
        at: dict[str, int] = {}  # field -> offset of the text that set it
        written = {kind.size_field or "kernel": w.kernel, "stride": w.stride}
        if w.param is not None:
            written[kind.param.field] = w.param[0]  # type: ignore[union-attr]
            at[kind.param.field] = w.at["param"]  # type: ignore[union-attr]
        for key, value in written.items():
            if value is not None:
                values[key] = value
                at.setdefault(key, w.at.get("kernel" if key == kind.size_field else key, w.start))
        values.update(zip(kind.widths, w.widths, strict=False))
        at.update((k, w.at[k]) for k in kind.widths if k in w.at)
        for target, (value, pos) in w.options.items():
            values[target], at[target] = value, pos
        try:
            return kind(**values, pos=w.start)
        except FieldError as exc:
            raise self.error(exc.reason, at.get(exc.field, w.start)) from None

    def check_parts(self, kind: type[Layer], w: _Written) -> None:
        """Refuse a kernel, stride or '-number' the kind does not take; require those it
        needs; refuse a value given twice (in the head and as an option)."""

        def refuse(what: str, part: str, hint: str = "") -> SpecError:
            return self.error(f"{w.word} takes no {what}{hint}", w.at[part])

        if w.kernel is not None and not ((kind.windowed and kind.takes_kernel) or kind.size_field):
            hint = f" (its stride is written {w.canon}-64/2)" if kind.windowed else ""
            raise refuse("kernel size", "kernel", hint)
        if w.stride is not None and not kind.windowed:
            raise refuse("stride", "stride")
        param = kind.param
        if w.param is not None and param is None:
            hint = f" (kernel and stride are written {w.canon}3/2)" if kind.windowed else ""
            raise refuse("parameter after '-'", "param", hint)
        if param is not None and param.example:  # a width: required and whole
            if w.param is None:
                raise self.error(
                    f"{w.word} needs its width (number of {param.what}) after '-', "
                    f"e.g. {param.example}",
                    self.pos,
                )
            if not w.param[1]:
                raise self.error(f"the width of {w.word} must be a whole number", w.at["param"])
        if kind.kernel_help and w.kernel is None:
            pos = w.at["param"] - 1 if "param" in w.at else self.pos
            what = "an output size" if kind.size_field else "a kernel size"
            raise self.error(f"{w.word} needs {what}: {kind.kernel_help}", pos)
        if w.stride is not None and "stride" in w.options:
            raise self.error("the stride is given twice", w.options["stride"][1])
        if w.param is not None and param.field in w.options:  # type: ignore[union-attr]
            raise self.error(
                f"the {param.what} is given twice",  # type: ignore[union-attr]
                w.options[param.field][1],  # type: ignore[union-attr]
            )
