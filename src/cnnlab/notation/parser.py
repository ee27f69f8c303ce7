"""Parser of the compact notation: text -> :class:`~cnnlab.notation.ir.Spec`.

Grammar (case-insensitive keywords; whitespace is free except that it separates items)::

    spec    := item (SEP item)*              SEP: '-', ',', '->', '→' or whitespace
    item    := atom (('*' | '×') COUNT)*      COUNT: a number, or a name bound by the caller
    atom    := '(' spec ')' | '[' spec ']' | layer
    layer   := WORD [KERNEL] ['/' STRIDE] ['-' NUMBER] ['/' STRIDE] [options]
    KERNEL, STRIDE := INT | INT 'x' INT       (conv3, conv1x7, maxpool3/2, conv7x7/2-64)
    options := '(' KEY '=' VALUE (',' KEY '=' VALUE)* ')'

Layer words (aliases in brackets) and their options (``key=value``; pairs as ``AxB``):

====================================  =========================================================
``conv3-64``, ``conv7/2-64``           conv [convolution]: kernel, ``/stride``, ``-filters``;
``conv1x7-64``                         stride, pad (default "same" ``(F-1)/2``; a number, AxB,
                                       ``same`` or ``valid``), dilation, groups, bias
``maxpool``, ``maxpool3/2``            maxpool [pool, max_pool], avgpool [avg_pool]: default
``avgpool7/1``                         2x2/2; stride (default: the kernel), pad, ceil
``gap``                                global average pooling [global_avgpool]
``fc-4096``                            fc [linear, dense]: ``-outputs``; bias
``relu`` ``tanh`` ``sigmoid``          activations; ``stanh`` [scaled_tanh] is LeCun's
``stanh``                              1.7159*tanh(2a/3)
``bn``                                 batch norm [batchnorm]: eps, momentum, affine
``lrn``                                AlexNet's LRN [norm]: size 5, alpha 1e-4, beta 0.75, k 2
``dropout``, ``dropout-0.4``           dropout [drop]: ``-p`` or p (default 0.5)
``flatten``                            implicit before the first fc that reads a volume
``softmax``                            marker at the end: the model returns logits
``input``                              optional marker at the start; builds nothing
====================================  =========================================================

Every layer also takes ``name=`` (its module name; by default the naming rule of
:mod:`cnnlab.notation.ir`).

``-`` followed by a number is the layer's parameter (the VGG table's ``conv3-64``,
``fc-4096``; ``dropout-0.4``); ``-`` followed by anything else separates layers (the lecture's
``CONV-RELU``).  An options block is recognised by ``(`` followed by ``key=``, so
``conv3-64 (relu)*2`` is a conv then a group.  The parser keeps an explicit stack (no
recursion), so nesting depth is bounded only by memory, and repetition is expanded with a cap
of :data:`MAX_LAYERS` layers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import SpecError
from cnnlab.notation.ir import (
    FC,
    LRN,
    Activation,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    Pool,
    Softmax,
    Spec,
)

__all__ = ["MAX_LAYERS", "WORDS", "parse_spec"]

MAX_LAYERS = 10_000  # after expanding repetition; VGG-19 has 45, ResNet-1202 about 2,400
_MAX_DIGITS = 12  # longer numbers are typos (and int() refuses > 4300 digits)

_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _LETTERS | _DIGITS
_SPACE = frozenset(" \t\r\n")
_OPEN = {"(": ")", "[": "]"}
_CLOSE = frozenset(")]")
_TIMES = frozenset("*×")

# keyword -> canonical layer word (the first spelling of each is the canonical one)
WORDS: dict[str, str] = {}
for _canon, *_aliases in (
    ("conv", "convolution"),
    ("fc", "linear", "dense"),
    ("maxpool", "max_pool", "pool"),
    ("avgpool", "avg_pool"),
    ("gap", "global_avgpool", "globalavgpool"),
    ("relu",),
    ("tanh",),
    ("sigmoid",),
    ("stanh", "scaled_tanh", "scaledtanh"),
    ("bn", "batchnorm", "batch_norm"),
    ("lrn", "norm"),
    ("dropout", "drop"),
    ("flatten",),
    ("softmax",),
    ("input",),
):
    for _w in (_canon, *_aliases):
        WORDS[_w] = _canon

_LIST = "conv, maxpool, avgpool, gap, fc, relu, tanh, sigmoid, stanh, bn, lrn, dropout, flatten"
_EXPECTED_LAYER = f"a layer ({_LIST}, softmax) or a group '(...)'"

# Options each layer word accepts (pad/padding are one option).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "conv": ("stride", "pad", "dilation", "groups", "bias", "name"),
    "maxpool": ("stride", "pad", "ceil", "name"),
    "avgpool": ("stride", "pad", "ceil", "name"),
    "bn": ("eps", "momentum", "affine", "name"),
    "lrn": ("size", "alpha", "beta", "k", "name"),
    "dropout": ("p", "name"),
    "fc": ("bias", "name"),
}
_OPTION_ALIASES = {"padding": "pad", "dil": "dilation"}
_PAIR_OPTIONS = frozenset({"stride", "pad", "dilation"})
_INT_OPTIONS = frozenset({"groups", "size"})
_BOOL_OPTIONS = frozenset({"bias", "ceil", "affine"})
_FLOAT_OPTIONS = frozenset({"eps", "momentum", "alpha", "beta", "k", "p"})


def parse_spec(text: str, **counts: int) -> Spec:
    """Parse compact-notation text into a :class:`~cnnlab.notation.ir.Spec`.

    ``counts`` bind symbolic repetition counts, so the lecture's line can be written with
    letters: ``parse_spec("[(conv3-32-relu)*N-maxpool]*M-(fc-64-relu)*K-fc-10,softmax",
    N=2, M=3, K=1)`` (names are case-insensitive, like the rest of the notation).

    Raises :class:`~cnnlab.errors.SpecError` (and nothing else) for any text that is not a
    valid spec: the message shows the text with a caret and says what was expected.
    """
    if not isinstance(text, str):
        raise SpecError(f"a spec is text, got {type(text).__name__}")
    bound: dict[str, int] = {}
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SpecError(f"the count {key}={value!r} must be a whole number >= 0")
        bound[key.lower()] = value
    return Spec(tuple(_Parser(text, bound).parse()), text)


@dataclass
class _Frame:
    """An open group: its layers so far (already expanded) and where it opened."""

    layers: list[Layer] = field(default_factory=list)
    opener: str = ""
    pos: int = 0


class _Parser:
    def __init__(self, text: str, counts: dict[str, int]):
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.counts = counts
        self.total = 0  # layers held in all open frames (bounded by MAX_LAYERS)

    # -- helpers -------------------------------------------------------------------------

    def error(self, reason: str, pos: int | None = None) -> SpecError:
        return SpecError(reason, self.text, self.pos if pos is None else pos)

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < self.n else ""

    def skip_space(self) -> bool:
        start = self.pos
        while self.pos < self.n and self.text[self.pos] in _SPACE:
            self.pos += 1
        return self.pos > start

    def describe(self) -> str:
        if self.pos >= self.n:
            return "the end of the text"
        return f"{self.text[self.pos]!r}"

    # -- the main loop -------------------------------------------------------------------

    def parse(self) -> list[Layer]:
        stack = [_Frame()]
        expect_item = True
        after = "the start"  # what the item we expect follows, for messages
        while True:
            spaced = self.skip_space()
            c = self.peek()
            if expect_item:
                if c in _OPEN and c:
                    stack.append(_Frame(opener=c, pos=self.pos))
                    self.pos += 1
                    after = f"'{c}'"
                    continue
                if c in _LETTERS and c:
                    layer_pos = self.pos
                    layer = self.layer()
                    if layer is None:  # the 'input' marker
                        if len(stack) > 1 or stack[0].layers or layer_pos != self._first_pos():
                            raise self.error(
                                "'input' can only come first (it marks the image the network "
                                "reads and builds nothing)",
                                layer_pos,
                            )
                        after = "'input'"
                        self.separator(False, after_input=True)
                        continue
                    items = [layer]
                    self.repeat(items)
                    self.add(stack[-1], items)
                    expect_item = False
                    continue
                if c in _CLOSE and c:
                    if after in ("'('", "'['"):
                        raise self.error(f"empty group: expected {_EXPECTED_LAYER} after {after}")
                    raise self.error(f"expected {_EXPECTED_LAYER} after {after}, got {c!r}")
                if not c:
                    if after == "the start":
                        raise self.error("empty spec: expected " + _EXPECTED_LAYER)
                    raise self.error(f"expected {_EXPECTED_LAYER} after {after}")
                if c in _DIGITS:
                    raise self.error(
                        f"expected {_EXPECTED_LAYER} after {after}, got a number (a layer takes "
                        "one parameter after '-', e.g. conv3-64, fc-4096)"
                    )
                raise self.error(f"expected {_EXPECTED_LAYER} after {after}, got {c!r}")
            # after an item: a closing bracket, a separator, or the end
            if not c:
                if len(stack) > 1:
                    top = stack[-1]
                    raise self.error(f"'{top.opener}' is never closed", top.pos)
                return stack[0].layers
            if c in _CLOSE:
                top = stack[-1]
                if len(stack) == 1:
                    raise self.error(f"{c!r} closes nothing: there is no open '(' or '['")
                if _OPEN[top.opener] != c:
                    raise self.error(
                        f"{c!r} does not match the {top.opener!r} opened at character "
                        f"{top.pos + 1}; expected {_OPEN[top.opener]!r}"
                    )
                self.pos += 1
                stack.pop()
                self.total -= len(top.layers)
                items = top.layers
                self.repeat(items)
                self.add(stack[-1], items)
                continue
            sep = self.separator(spaced)
            if not sep:
                raise self.error(self.unexpected_after_item())
            after = sep
            expect_item = True

    def _first_pos(self) -> int:
        i = 0
        while i < self.n and self.text[i] in _SPACE:
            i += 1
        return i

    def separator(self, spaced: bool, after_input: bool = False) -> str | None:
        """Consume one separator (with the spaces around it); return its description, or
        None if there is none here.  ``spaced``: whitespace was just skipped."""
        spaced = self.skip_space() or spaced
        c = self.peek()
        if c == "-" and self.peek(1) == ">":
            self.pos += 2
            found = "'->'"
        elif c in ("-", ",", "→") and c:
            self.pos += 1
            found = f"'{c}'"
        elif spaced and (c in _LETTERS or c in _OPEN) and c:
            found = "a space"
        else:
            found = None
        if after_input and found is None and self.pos < self.n and self.peek() not in _CLOSE:
            raise self.error(self.unexpected_after_item())
        return found

    def unexpected_after_item(self) -> str:
        c = self.peek()
        if c == "?":
            return (
                "'?' marks an optional layer in the lecture's pattern (POOL?); write the layer "
                "or leave it out (lecture_pattern(pool=...) chooses for you)"
            )
        if c in _TIMES:
            return "a repetition count must follow '*' directly after a layer or group"
        if c == "(":
            return (
                "options go right after a layer as key=value pairs, e.g. conv3-64(stride=2); "
                "a group needs a separator ('-', ',' or a space) before it"
            )
        if c == "/":
            return "a stride '/S' comes right after the kernel size, e.g. maxpool3/2, conv7/2-64"
        return (
            f"expected a separator ('-', ',' or a space), a closing bracket or the end after "
            f"this layer, got {self.describe()}"
        )

    def add(self, frame: _Frame, items: list[Layer]) -> None:
        frame.layers.extend(items)
        self.total += len(items)
        if self.total > MAX_LAYERS:
            raise self.error(
                f"the spec expands to more than {MAX_LAYERS:,} layers; is a repetition count "
                "too large?"
            )

    def repeat(self, items: list[Layer]) -> None:
        """Apply ``*N`` suffixes (in place) to the items of the atom just read."""
        while True:
            save = self.pos
            self.skip_space()
            if self.peek() not in _TIMES or not self.peek():
                self.pos = save
                return
            star = self.pos
            self.pos += 1
            self.skip_space()
            count = self.count(star)
            if len(items) * count + self.total > MAX_LAYERS:
                raise self.error(
                    f"the spec expands to more than {MAX_LAYERS:,} layers; is a repetition "
                    "count too large?",
                    star,
                )
            items[:] = items * count

    def count(self, star: int) -> int:
        start = self.pos
        c = self.peek()
        if c in _DIGITS and c:
            value, is_int = self.number()
            if not is_int:
                raise self.error("a repetition count must be a whole number", start)
            return value
        if c in _LETTERS and c:
            while self.peek() in _NAME_CHARS and self.peek():
                self.pos += 1
            name = self.text[start : self.pos]
            if name.lower() not in self.counts:
                bound = ", ".join(sorted(self.counts)) or "none"
                raise self.error(
                    f"the count {name!r} has no value: pass it, e.g. "
                    f"parse_spec(text, {name}=2) (bound here: {bound})",
                    start,
                )
            return self.counts[name.lower()]
        raise self.error(f"expected a repetition count after {self.text[star]!r}, e.g. *2", start)

    # -- numbers -------------------------------------------------------------------------

    def number(self) -> tuple[Any, bool]:
        """An unsigned int or float at pos: ``64``, ``0.5``, ``.5``, ``1e-4``, ``5e-05``."""
        start = self.pos
        while self.peek() in _DIGITS and self.peek():
            self.pos += 1
        is_int = True
        if self.peek() == "." and (self.pos > start or self.peek(1) in _DIGITS):
            is_int = False
            self.pos += 1
            while self.peek() in _DIGITS and self.peek():
                self.pos += 1
        if self.pos == start:
            raise self.error(f"expected a number, got {self.describe()}")
        if self.peek() in ("e", "E") and self.peek():
            j = self.pos + 1
            if j < self.n and self.text[j] in "+-":
                j += 1
            if j < self.n and self.text[j] in _DIGITS:
                is_int = False
                self.pos = j
                while self.peek() in _DIGITS and self.peek():
                    self.pos += 1
        token = self.text[start : self.pos]
        if sum(ch in _DIGITS for ch in token) > _MAX_DIGITS:
            raise self.error(f"the number {token[:20]}... is too long", start)
        return (int(token), True) if is_int else (float(token), False)

    def int_pair(self, what: str) -> tuple[int, int]:
        """``3`` -> (3, 3); ``1x7`` -> (1, 7)."""
        start = self.pos
        if not (self.peek() in _DIGITS and self.peek()):
            raise self.error(f"expected {what} (a whole number, or AxB), got {self.describe()}")
        a, is_int = self.number()
        if not is_int:
            raise self.error(f"{what} must be a whole number", start)
        if self.peek() in ("x", "X") and self.peek() and self.peek(1) in _DIGITS and self.peek(1):
            self.pos += 1
            second = self.pos
            b, is_int = self.number()
            if not is_int:
                raise self.error(f"{what} must be a whole number", second)
            return (a, b)
        return (a, a)

    # -- one layer -----------------------------------------------------------------------

    def layer(self) -> Layer | None:
        start = self.pos
        while self.peek() in _LETTERS and self.peek():
            self.pos += 1
        word = self.text[start : self.pos]
        canon = WORDS.get(word.lower())
        if canon is None:
            raise self.unknown(word, start)
        kernel = stride = param = None
        kpos = spos = ppos = start
        if self.peek() in _DIGITS and self.peek():
            kpos = self.pos
            kernel = self.int_pair("a kernel size")
        if self.peek() == "/":
            self.pos += 1
            spos = self.pos
            stride = self.int_pair("a stride after '/'")
        # '-' followed by a number is this layer's parameter (spaces allowed around '-')
        save = self.pos
        self.skip_space()
        if self.peek() == "-":
            self.pos += 1
            self.skip_space()
            c = self.peek()
            if c and (c in _DIGITS or (c == "." and self.peek(1) in _DIGITS and self.peek(1))):
                ppos = self.pos
                param = self.number()
            else:
                self.pos = save
        else:
            self.pos = save
        if param is not None and self.peek() == "/":  # conv3-64/2: the stride after the width
            if stride is not None:
                raise self.error("the stride is given twice", self.pos)
            self.pos += 1
            spos = self.pos
            stride = self.int_pair("a stride after '/'")
        options = self.options(canon)
        return self.make(canon, word, start, kernel, kpos, stride, spos, param, ppos, options)

    def unknown(self, word: str, start: int) -> SpecError:
        end = self.pos
        while end < self.n and (self.text[end] in _NAME_CHARS or self.text[end] in "/"):
            end += 1
        token = self.text[start:end]
        rest = self.text[start + len(word) : end]
        close = difflib.get_close_matches(word.lower(), list(WORDS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0] + rest!r}?" if close else ""
        return self.error(f"unknown layer {token!r}{hint} (layers: {_LIST}, softmax)", start)

    def options(self, canon: str) -> dict[str, tuple[Any, int]]:
        """An options block ``(key=value, ...)`` if one follows; else empty."""
        save = self.pos
        self.skip_space()
        if self.peek() != "(" or not self._looks_like_options():
            self.pos = save
            return {}
        open_pos = self.pos
        self.pos += 1
        allowed = _OPTIONS.get(canon, ("name",) if canon not in ("softmax", "input") else ())
        values: dict[str, tuple[Any, int]] = {}
        while True:
            self.skip_space()
            kstart = self.pos
            while self.peek() in _NAME_CHARS and self.peek():
                self.pos += 1
            key = self.text[kstart : self.pos].lower()
            if not key:
                raise self.error(f"expected an option name (key=value), got {self.describe()}")
            key = _OPTION_ALIASES.get(key, key)
            if key not in allowed:
                if not allowed:
                    raise self.error(f"{canon} takes no options", kstart)
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(
                    f"{canon} has no option {key!r}{hint} (options: {', '.join(allowed)})", kstart
                )
            if key in values:
                raise self.error(f"the option {key!r} is given twice", kstart)
            self.skip_space()
            if self.peek() != "=":
                raise self.error(f"expected '=' after {key!r}, got {self.describe()}")
            self.pos += 1
            self.skip_space()
            vpos = self.pos
            values[key] = (self.value(key), vpos)
            self.skip_space()
            c = self.peek()
            if c == ",":
                self.pos += 1
                continue
            if c == ")":
                self.pos += 1
                return values
            if not c:
                raise self.error("the options '(' is never closed", open_pos)
            raise self.error(f"expected ',' or ')' in the options, got {self.describe()}")

    def _looks_like_options(self) -> bool:
        i = self.pos + 1
        while i < self.n and self.text[i] in _SPACE:
            i += 1
        j = i
        while j < self.n and self.text[j] in _NAME_CHARS:
            j += 1
        if j == i or self.text[i] in _DIGITS:
            return False
        while j < self.n and self.text[j] in _SPACE:
            j += 1
        return j < self.n and self.text[j] == "="

    def value(self, key: str) -> Any:
        start = self.pos
        if key == "name":
            while self.peek() in _NAME_CHARS and self.peek():
                self.pos += 1
            if self.pos == start:
                raise self.error("expected a name (letters, digits, '_')")
            return self.text[start : self.pos]
        c = self.peek()
        if c and (c in _DIGITS or (c == "." and self.peek(1) in _DIGITS and self.peek(1))):
            if key in _PAIR_OPTIONS:
                return self.int_pair(key)
            value, is_int = self.number()
            if key in _INT_OPTIONS and not is_int:
                raise self.error(f"{key} must be a whole number", start)
            if key in _BOOL_OPTIONS:
                raise self.error(f"{key} must be true or false", start)
            return value
        if c in _LETTERS and c:
            while self.peek() in _LETTERS and self.peek():
                self.pos += 1
            word = self.text[start : self.pos].lower()
            if key in _BOOL_OPTIONS and word in ("true", "false"):
                return word == "true"
            if key == "pad" and word in ("same", "valid"):
                return word
            valid = {
                True: "true or false",
                False: "a number" + (", same or valid" if key == "pad" else ""),
            }[key in _BOOL_OPTIONS]
            raise self.error(f"{key} must be {valid}, got {word!r}", start)
        raise self.error(f"expected a value for {key!r}, got {self.describe()}")

    def make(self, canon, word, start, kernel, kpos, stride, spos, param, ppos, opts):
        """Check which parts this layer word takes and build the node."""

        def refuse(what: str, pos: int, example: str) -> SpecError:
            return self.error(f"{word} takes no {what}{example}", pos)

        def opt(key: str, default: Any = None) -> Any:
            return opts[key][0] if key in opts else default

        def build(make: Callable[[], Layer], pos: int) -> Layer:
            try:
                return make()
            except SpecError as exc:  # the node's own checks; point at the part concerned
                first = exc.reason.split(" ", 1)[0].split("=", 1)[0]
                key = {"padding": "pad", "dropout": "p", "pooling": "pad"}.get(first, first)
                if key in opts:
                    pos = opts[key][1]
                elif first in ("kernel", "a") and kernel is not None:
                    pos = kpos  # "a 2x2 kernel has no symmetric 'same' padding"
                elif first in ("width", "dropout") and param is not None:
                    pos = ppos
                elif first == "stride" and stride is not None:
                    pos = spos
                raise self.error(exc.reason, pos) from None

        name = opt("name")
        if canon == "input":
            if kernel or stride or param is not None or opts:
                raise self.error("'input' takes no parameters", kpos)
            return None
        takes_kernel = canon in ("conv", "maxpool", "avgpool")
        if kernel is not None and not takes_kernel:
            raise refuse("kernel size", kpos, "")
        if stride is not None and not takes_kernel:
            raise refuse("stride", spos, "")
        if param is not None and canon not in ("conv", "fc", "dropout"):
            hint = ""
            if canon in ("maxpool", "avgpool"):
                hint = f" (kernel and stride are written {canon}3/2)"
            raise refuse("parameter after '-'", ppos, hint)
        if canon in ("conv", "fc"):
            what = "filters" if canon == "conv" else "outputs"
            example = "conv3-64" if canon == "conv" else "fc-4096"
            if param is None:
                raise self.error(
                    f"{word} needs its width (number of {what}) after '-', e.g. {example}",
                    self.pos,
                )
            if not param[1]:
                raise self.error(f"the width of {word} must be a whole number", ppos)
        if canon == "conv":
            if kernel is None:
                raise self.error(
                    f"{word} needs a kernel size: conv3-64 is 64 filters of 3x3 "
                    "(conv7/2-64: 7x7 at stride 2)",
                    self.pos if param is None else ppos - 1,
                )
            if stride is not None and "stride" in opts:
                raise self.error("the stride is given twice", opts["stride"][1])
            pad = opt("pad")
            if pad == "valid":
                pad = 0
            if pad == "same":
                pad = None
            return build(
                lambda: Conv(
                    kernel,
                    param[0],
                    stride=stride if stride is not None else opt("stride", (1, 1)),
                    padding=pad,
                    dilation=opt("dilation", (1, 1)),
                    groups=opt("groups", 1),
                    bias=opt("bias", True),
                    name=name,
                    pos=start,
                ),
                start,
            )
        if canon in ("maxpool", "avgpool"):
            if stride is not None and "stride" in opts:
                raise self.error("the stride is given twice", opts["stride"][1])
            k = kernel if kernel is not None else (2, 2)
            s = stride if stride is not None else opt("stride")
            if s is None and kernel is None:
                s = (2, 2)
            pad = opt("pad", 0)
            if pad == "valid":
                pad = 0
            elif pad == "same":
                if k[0] % 2 == 0 or k[1] % 2 == 0:
                    raise self.error(
                        "an even window has no symmetric 'same' padding", opts["pad"][1]
                    )
                pad = (k[0] // 2, k[1] // 2)
            return build(
                lambda: Pool(
                    canon[:3],
                    kernel=k,
                    stride=s,
                    padding=pad,
                    ceil=opt("ceil", False),
                    name=name,
                    pos=start,
                ),
                start,
            )
        if canon == "fc":
            return build(lambda: FC(param[0], bias=opt("bias", True), name=name, pos=start), start)
        if canon == "dropout":
            if param is not None and "p" in opts:
                raise self.error("the dropout probability is given twice", opts["p"][1])
            p = param[0] if param is not None else opt("p", 0.5)
            return build(lambda: Dropout(p, name=name, pos=start), ppos)
        if canon == "bn":
            return build(
                lambda: BatchNorm(
                    eps=opt("eps", 1e-5),
                    momentum=opt("momentum", 0.1),
                    affine=opt("affine", True),
                    name=name,
                    pos=start,
                ),
                start,
            )
        if canon == "lrn":
            return build(
                lambda: LRN(
                    size=opt("size", 5),
                    alpha=opt("alpha", 1e-4),
                    beta=opt("beta", 0.75),
                    k=opt("k", 2.0),
                    name=name,
                    pos=start,
                ),
                start,
            )
        simple: dict[str, Callable[[], Layer]] = {
            "gap": lambda: GlobalAvgPool(name=name, pos=start),
            "flatten": lambda: Flatten(name=name, pos=start),
            "softmax": lambda: Softmax(pos=start),
        }
        if canon in simple:
            return build(simple[canon], start)
        return build(lambda: Activation(canon, name=name, pos=start), start)
