"""Parser of the compact notation: text -> :class:`~cnnlab.notation.spec.Spec`.

Grammar (case-insensitive keywords; whitespace is free except that it separates items)::

    spec    := item (SEP item)*              SEP: '-', ',', '->', '→' or whitespace
    item    := atom (('*' | '×') COUNT)*      COUNT: a number, or a name bound by the caller
    atom    := '(' spec ')' [name] | '[' spec ']' [name] | branch | layer
    branch  := '{' spec ('|' spec)+ '}' MERGE [name]    MERGE: 'cat' or 'add'
    layer   := WORD [WIDTHS] [KERNEL] ['/' STRIDE] ['-' NUMBER] ['/' STRIDE] [options]
    name    := '(' 'name' '=' NAME ')'       a named group is one module (numbered layers)
    WIDTHS  := '(' INT (',' INT)* ')'         right after the word: inception(64,96,...)
    KERNEL, STRIDE := INT | INT 'x' INT       (conv3, conv1x7, maxpool3/2, conv7x7/2-64)
    options := '(' KEY '=' VALUE (',' KEY '=' VALUE)* ')'

Layer words (aliases in brackets) and their options (``key=value``; pairs as ``AxB``):

====================================  =========================================================
``conv3-64``, ``conv7/2-64``           conv [convolution]: kernel, ``/stride``, ``-filters``;
``conv1x7-64``                         stride, pad (default "same" ``(F-1)/2``; a number, AxB,
``conv5-16(table=lenet5)``             ``same`` or ``valid``), dilation, groups, bias, table
                                       (a connection table: ``lenet5``, LeNet-5's C3, or rows
                                       of input maps ``0+1+2/1+2+3``)
``maxpool``, ``maxpool3/2``            maxpool [pool, max_pool], avgpool [avg_pool]: default
``avgpool7/1``                         2x2/2; stride (default: the kernel), pad, ceil
``subsample``, ``subsample3/2``        LeNet-5's trainable S2/S4 [subsampling]: default 2x2/2
``gap``                                global average pooling [global_avgpool]
``adaptavg6``, ``adaptavg6x7``         adaptive average pooling to 6x6 (6x7) cells
                                       [adaptive_avgpool]
``zeropad2``, ``zeropad1x2``           zeros around each map [zero_pad]: rows x columns on
``zeropad(top=1,bottom=2)``            each side; top, bottom, left, right one side each
``fc-4096``                            fc [linear, dense]: ``-outputs``; bias
``relu`` ``tanh`` ``sigmoid``          activations; ``stanh`` [scaled_tanh] is LeCun's
``stanh``                              1.7159*tanh(2a/3)
``bn``                                 batch norm [batchnorm]: eps, momentum, affine
``lrn``                                AlexNet's LRN [norm]: size 5, alpha 1e-4, beta 0.75, k 2
``dropout``, ``dropout-0.4``           dropout [drop]: ``-p`` or p (default 0.5)
``flatten``                            implicit before the first fc that reads a volume
``softmax``                            marker at the end: the model returns logits
``input``                              optional marker at the start; builds nothing
``inception(64,96,128,16,32,32)``      GoogLeNet's module: #1x1, #3x3 reduce, #3x3, #5x5
                                       reduce, #5x5, pool proj (Table 1)
``basic-64``, ``basic-128/2``          ResNet's blocks [basicblock]: ``-planes``, ``/stride``;
``bottleneck-64``                      shortcut (A, B or C; default B), variant (a strided
                                       bottleneck's: v1.5 default, or v1)
``[(basic-64)*2](name=layer1)``        a named group: one nn.Sequential, layers numbered 0, 1
====================================  =========================================================

Every layer also takes ``name=`` (its module name; by default the naming rule of
:mod:`cnnlab.notation._naming`).

``-`` followed by a number is the layer's parameter (the VGG table's ``conv3-64``,
``fc-4096``; ``dropout-0.4``); ``-`` followed by anything else separates layers (the lecture's
``CONV-RELU``).  An options block is recognised by ``(`` followed by ``key=``, so
``conv3-64 (relu)*2`` is a conv then a group.  The parser keeps an explicit stack (no
recursion), so nesting depth is bounded only by memory, and repetition is expanded with a cap
of :data:`MAX_LAYERS` layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab._typed import did_you_mean
from cnnlab.errors import SpecError
from cnnlab.notation._read_layer import _NAME, LIST, WORDS, LayerReader
from cnnlab.notation._scan import DIGITS, LETTERS, NAME_CHARS, SPACE
from cnnlab.notation.branch import MERGES, Branch
from cnnlab.notation.group import Group
from cnnlab.notation.kinds import Layer
from cnnlab.notation.spec import Spec

__all__ = ["MAX_LAYERS", "WORDS", "parse_spec"]

MAX_LAYERS = 10_000  # after expanding repetition; VGG-19 has 45, ResNet-1202 about 610 (blocks)
# A branch is a layer holding specs, and its text, shapes and modules are computed through
# them recursively: the depth is bounded (a real network nests one or two deep).
MAX_BRANCH_DEPTH = 16

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(")]}")
_TIMES = frozenset("*×")
_EXPECTED_LAYER = f"a layer ({LIST}, softmax) or a group '(...)'"


def parse_spec(text: str, **counts: int) -> Spec:
    """Parse compact-notation text into a :class:`~cnnlab.notation.spec.Spec`.

    ``counts`` bind symbolic repetition counts, so the lecture's line can be written with
    letters: ``parse_spec("[(conv3-32-relu)*N-maxpool]*M-(fc-64-relu)*K-fc-10,softmax",
    N=2, M=3, K=1)`` (names are case-insensitive, like the rest of the notation).

    Raises :class:`~cnnlab.errors.SpecError` (and nothing else) for any text that is not a
    valid spec: the message shows the text with a caret and says what was expected.
    """
    return parse_with_counts(text, counts, strict=False)


def parse_with_counts(
    text: str, counts: dict[str, Any], keywords: tuple[str, ...] = (), strict: bool = True
) -> Spec:
    """:func:`parse_spec`; with ``strict``, a count the text never uses is an error (a typo of
    a count, or of one of the caller's ``keywords``, which the message suggests).
    :func:`parse_spec` is not strict, so that one binding serves several texts."""
    if not isinstance(text, str):
        raise SpecError(f"a spec is text, got {type(text).__name__}")
    bound: dict[str, int] = {}
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SpecError(f"the count {key}={value!r} must be a whole number >= 0")
        bound[key.lower()] = value
    parser = _Parser(text, bound)
    spec = Spec(tuple(parser.parse()), text)
    for key in counts if strict else ():
        if key.lower() not in parser.used:
            used = sorted(parser.used)
            hint = did_you_mean(key, [*keywords, *used])
            raise SpecError(
                f"unknown keyword {key!r}{hint}: the spec has no count of that name "
                f"(its counts: {', '.join(used) or 'none'}"
                + (f"; other keywords: {', '.join(keywords)})" if keywords else ")")
            )
    return spec


@dataclass
class _Frame:
    """An open group: its layers so far (already expanded) and where it opened."""

    layers: list[Layer] = field(default_factory=list)
    opener: str = ""
    pos: int = 0
    paths: list[list[Layer]] = field(default_factory=list)  # a branch's paths before this one
    weight: int = 0  # layers held (all paths, a branch's paths counted): MAX_LAYERS caps it


class _Parser(LayerReader):
    def __init__(self, text: str, counts: dict[str, int]):
        super().__init__(text)
        self.counts = counts
        self.used: set[str] = set()  # the counts the text refers to
        self.total = 0  # layers held in all open frames (bounded by MAX_LAYERS)

    def parse(self) -> list[Layer]:
        """The layers of the whole text: items (a layer or a group, each maybe repeated)
        alternate with separators; each open group is a frame on the stack (no recursion)."""
        stack = [_Frame()]
        after = "the start"  # what the item we expect follows, for messages
        while True:
            self.skip_space()
            opened = self.item(stack, after)
            if opened is not None:  # a group opened, or the 'input' marker: an item follows
                after = opened
                continue
            ended = self.after_item(stack)
            if isinstance(ended, list):
                return ended
            after = ended

    def item(self, stack: list[_Frame], after: str) -> str | None:
        """Open a group or skip the 'input' marker (returning what the next item follows), or
        read a layer with its repetitions into the open frame (None)."""
        c = self.peek()
        if c == "{" and sum(f.opener == "{" for f in stack) >= MAX_BRANCH_DEPTH:
            raise self.error(f"branches nest at most {MAX_BRANCH_DEPTH} deep")
        if c in _OPEN and c:
            stack.append(_Frame(opener=c, pos=self.pos))
            self.pos += 1
            return f"'{c}'"
        if not (c in LETTERS and c):
            raise self.expected(after)
        layer_pos = self.pos
        layer = self.layer()
        if layer is None:  # the 'input' marker
            if len(stack) > 1 or stack[0].layers or layer_pos != self._first_pos():
                raise self.error(
                    "'input' can only come first (it marks the image the network "
                    "reads and builds nothing)",
                    layer_pos,
                )
            self.separator(False, after_input=True)
            return "'input'"
        items = [layer]
        self.add(stack[-1], items, self.repeat(items, 1))
        return None

    def expected(self, after: str) -> SpecError:
        """No item where one must be: say what was found instead."""
        c = self.peek()
        if c in ("|", "}") and c and after in ("'{'", "'|'"):
            return self.error(
                "an empty path: write id for a path that passes its input on (a shortcut)"
            )
        if c in _CLOSE and c:
            if after in ("'('", "'['"):
                return self.error(f"empty group: expected {_EXPECTED_LAYER} after {after}")
            return self.error(f"expected {_EXPECTED_LAYER} after {after}, got {c!r}")
        if not c:
            if after == "the start":
                return self.error("empty spec: expected " + _EXPECTED_LAYER)
            return self.error(f"expected {_EXPECTED_LAYER} after {after}")
        if c in DIGITS:
            return self.error(
                f"expected {_EXPECTED_LAYER} after {after}, got a number (a layer takes "
                "one parameter after '-', e.g. conv3-64, fc-4096)"
            )
        return self.error(f"expected {_EXPECTED_LAYER} after {after}, got {c!r}")

    def after_item(self, stack: list[_Frame]) -> list[Layer] | str:
        """After an item: close groups, then read a separator (returning its description),
        or reach the end (returning all the layers)."""
        while True:
            spaced = self.skip_space()
            c = self.peek()
            if not c:
                if len(stack) > 1:
                    top = stack[-1]
                    raise self.error(f"'{top.opener}' is never closed", top.pos)
                return stack[0].layers
            if c == "|":
                if stack[-1].opener != "{":
                    raise self.error(
                        "'|' separates the paths of a branch, as in {conv1-64 | conv3-64}cat; "
                        "here no '{' is open"
                    )
                top = stack[-1]
                top.paths.append(top.layers)
                top.layers = []  # the frame's weight counts all its paths
                self.pos += 1
                return "'|'"
            if c not in _CLOSE:
                break
            self.close(stack, c)
        sep = self.separator(spaced)
        if not sep:
            raise self.error(self.unexpected_after_item())
        return sep

    def close(self, stack: list[_Frame], c: str) -> None:
        """Close the open group with ``c`` and add its layers, repeated, to the one around."""
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
        self.total -= top.weight
        if top.opener == "{":
            node: Layer | None = self.branch(top)  # one layer, holding its paths'
        else:
            node = self.group(top)  # None: the group only repeats its layers
        if node is None:
            items, weight = top.layers, top.weight
        else:
            if node.depth > MAX_BRANCH_DEPTH:
                raise self.error(
                    f"branches and named groups nest at most {MAX_BRANCH_DEPTH} deep", top.pos
                )
            items, weight = [node], top.weight + 1
        self.add(stack[-1], items, self.repeat(items, weight))

    def group(self, top: _Frame) -> Group | None:
        """The group whose bracket was just closed is one module if a name follows:
        ``[(basic-64)*2](name=layer1)``."""
        name = self.branch_name("a group")
        if name is None:
            return None
        try:
            return Group(tuple(top.layers), text_=self.text, name=name, pos=top.pos)
        except SpecError as exc:
            if exc.text:
                raise
            raise self.error(exc.reason, top.pos) from None

    def branch(self, top: _Frame) -> Branch:
        """The branch whose '}' was just read: its merge word and options follow."""
        close = self.pos - 1
        paths = [*top.paths, top.layers]
        if len(paths) < 2:
            raise self.error(
                "a branch needs two or more paths separated by '|', as in {conv3-64 | id}add",
                top.pos,
            )
        start = self.pos
        self.skip_run(LETTERS)
        merge = self.text[start : self.pos].lower()
        if merge not in MERGES:
            raise self.error(
                "a branch ends with its merge right after '}': cat (the paths' channels "
                f"concatenated) or add (summed){', got ' + repr(merge) if merge else ''}",
                start if merge else close,
            )
        name = self.branch_name("a branch")
        try:
            return Branch(tuple(tuple(p) for p in paths), merge, text_=self.text, name=name,
                          pos=close)  # fmt: skip
        except SpecError as exc:
            if exc.text:
                raise
            raise self.error(exc.reason, close) from None

    def branch_name(self, what: str) -> str | None:
        """A branch or a group takes one option, ``(name=...)``."""
        save = self.pos
        self.skip_space()
        if self.peek() != "(" or not self._looks_like_options():
            self.pos = save
            return None
        self.pos += 1
        self.skip_space()
        kstart = self.pos
        self.skip_run(NAME_CHARS)
        if self.text[kstart : self.pos].lower() != "name":
            raise self.error(f"{what} takes one option, name=", kstart)
        self.skip_space()
        self.pos += 1  # the '=' (_looks_like_options saw it)
        self.skip_space()
        name = self.value(_NAME)
        self.skip_space()
        if self.peek() != ")":
            raise self.error(f"expected ')' after the branch's name, got {self.describe()}")
        self.pos += 1
        return name

    def _first_pos(self) -> int:
        i = 0
        while i < self.n and self.text[i] in SPACE:
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
        elif spaced and (c in LETTERS or c in _OPEN) and c:
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

    def add(self, frame: _Frame, items: list[Layer], weight: int) -> None:
        """Add ``items``, holding ``weight`` layers (a branch's paths counted), to ``frame``."""
        frame.layers.extend(items)
        frame.weight += weight
        self.total += weight
        if self.total > MAX_LAYERS:
            raise self.error(
                f"the spec expands to more than {MAX_LAYERS:,} layers; is a repetition count "
                "too large?"
            )

    def repeat(self, items: list[Layer], weight: int) -> int:
        """Apply ``*N`` suffixes (in place) to the items of the atom just read, which hold
        ``weight`` layers; return the weight after repetition."""
        while True:
            save = self.pos
            self.skip_space()
            if self.peek() not in _TIMES or not self.peek():
                self.pos = save
                return weight
            star = self.pos
            self.pos += 1
            self.skip_space()
            count = self.count(star)
            if weight * count + self.total > MAX_LAYERS:
                raise self.error(
                    f"the spec expands to more than {MAX_LAYERS:,} layers; is a repetition "
                    "count too large?",
                    star,
                )
            items[:] = items * count
            weight *= count

    def count(self, star: int) -> int:
        start = self.pos
        c = self.peek()
        if c in DIGITS and c:
            value, is_int = self.number()
            if not is_int:
                raise self.error("a repetition count must be a whole number", start)
            return value
        if c in LETTERS and c:
            self.skip_run(NAME_CHARS)
            name = self.text[start : self.pos]
            if name.lower() not in self.counts:
                bound = ", ".join(sorted(self.counts)) or "none"
                raise self.error(
                    f"the count {name!r} has no value: pass it, e.g. "
                    f"parse_spec(text, {name}=2) (bound here: {bound})",
                    start,
                )
            self.used.add(name.lower())
            return self.counts[name.lower()]
        raise self.error(f"expected a repetition count after {self.text[star]!r}, e.g. *2", start)

    # -- numbers -------------------------------------------------------------------------
