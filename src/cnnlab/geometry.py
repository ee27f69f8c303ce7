"""The lecture's spatial arithmetic, as pure integer functions (no torch).

One spatial axis at a time: a window of ``kernel`` (F) cells, moved by ``stride`` (S), over an
input of ``size`` (N) cells zero-padded by ``padding`` (P) on both sides, with ``dilation`` (D)
cells between taps.  The lecture's output size is ``(N - F + 2P)/S + 1``; with dilation the
window spans ``D*(F-1) + 1`` cells.  PyTorch rounds down (``floor``) for convolutions and for
pooling unless ``ceil_mode=True``, in which case it rounds up but never starts a window in the
right padding.

This module is cnnlab's one shape engine: the notation's shape inference (and through it
the zoo's build-time sizing, every family being notation text) and the analysis rules all size
windows with :meth:`Window.output` /
:func:`window_output`, report a window that leaves nothing with the one message of
:class:`VanishingVolume`, and find the smallest input that gets through with
:func:`smallest_input`.

Receptive fields are composed along a chain of windows with the classic recurrences
(jump ``j`` = product of strides; size ``r += (F_eff - 1) * j``; start ``-= P * j``), see
:class:`Field`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from cnnlab.errors import GeometryError, check_int

__all__ = [
    "Field",
    "Fit",
    "VanishingVolume",
    "Window",
    "axis_units",
    "chain",
    "check_fit",
    "effective_kernel",
    "fit",
    "fitting_paddings",
    "fitting_strides",
    "output_size",
    "same_padding",
    "smallest_input",
    "window_output",
]


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Cells a dilated window spans: ``D*(F-1) + 1``."""
    return dilation * (kernel - 1) + 1


def _validate(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    if (
        type(size) is int
        and type(kernel) is int
        and type(stride) is int
        and type(padding) is int
        and type(dilation) is int
        and size >= 1
        and kernel >= 1
        and stride >= 1
        and padding >= 0
        and dilation >= 1
    ):
        return  # (the usual case, in one test; the loop below names what is wrong)
    for name, value, low in (
        ("input size", size, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        check_int(name, value, low, GeometryError)


def output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output cells along one axis, rounded exactly as PyTorch rounds.

    ``floor((N + 2P - D*(F-1) - 1)/S) + 1``; with ``ceil_mode`` the division rounds up, and the
    last window is dropped if it would start inside the right padding (PyTorch's pooling rule).
    Returns 0 or less when the (padded) input is smaller than the window: the volume vanishes.
    (With ``ceil_mode`` PyTorch lets the last window hang over the end of the input, even when
    the input is shorter than the window.)
    """
    _validate(size, kernel, stride, padding, dilation)
    span = size + 2 * padding - effective_kernel(kernel, dilation)
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass(frozen=True)
class Fit:
    """How a window tiles one axis of its input."""

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    output: int  # what PyTorch computes (floor rounding)
    exact: Fraction  # (N - F_eff + 2P)/S + 1 before rounding
    dropped: int  # cells of the padded input, at the end, that no window covers
    dropped_input: int  # of those, cells of the real (unpadded) input

    @property
    def fits(self) -> bool:
        return self.exact.denominator == 1 and self.output >= 1

    def formula(self) -> str:
        """The lecture's arithmetic, e.g. ``(7 - 3 + 2*0)/3 + 1 = 2.33``."""
        f = effective_kernel(self.kernel, self.dilation)
        value = float(self.exact)
        shown = f"{int(value)}" if self.exact.denominator == 1 else f"{value:.2f}"
        return f"({self.size} - {f} + 2*{self.padding})/{self.stride} + 1 = {shown}"


def fit(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Fit:
    """Whether the window tiles the padded input exactly, and what it drops if not."""
    _validate(size, kernel, stride, padding, dilation)
    span = size + 2 * padding - effective_kernel(kernel, dilation)
    exact = Fraction(span + stride, stride)  # span/S + 1, in one (normalised) fraction
    out = span // stride + 1  # output_size(): PyTorch's floor rounding
    dropped = span % stride if span >= 0 else 0
    return Fit(
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        output=out,
        exact=exact,
        dropped=dropped,
        dropped_input=max(0, dropped - padding),
    )


def fitting_strides(
    size: int, kernel: int, padding: int = 0, dilation: int = 1, max_stride: int | None = None
) -> list[int]:
    """Strides for which the window tiles the padded input exactly (divisors of N + 2P - F).

    ``max_stride`` defaults to twice the window: a larger stride skips more input than each
    window sees (7x7 input, 3x3 filter: 1, 2, 4).
    """
    _validate(size, kernel, 1, padding, dilation)
    span = size + 2 * padding - effective_kernel(kernel, dilation)
    if span < 0:
        return []
    limit = max_stride if max_stride is not None else 2 * effective_kernel(kernel, dilation)
    return [s for s in range(1, limit + 1) if span % s == 0]


def fitting_paddings(
    size: int, kernel: int, stride: int, dilation: int = 1, max_padding: int | None = None
) -> list[tuple[int, int]]:
    """``(padding, output size)`` pairs that make the window tile exactly at this stride.

    Paddings range over ``0 .. F_eff - 1`` by default: a wider pad only adds windows that see
    nothing but zeros.
    """
    _validate(size, kernel, stride, 0, dilation)
    f = effective_kernel(kernel, dilation)
    limit = max_padding if max_padding is not None else f - 1
    result = []
    for p in range(limit + 1):
        span = size + 2 * p - f
        if span >= 0 and span % stride == 0:
            result.append((p, span // stride + 1))
    return result


def same_padding(kernel: int, dilation: int = 1) -> int:
    """The zero padding ``(F-1)/2`` that keeps the size at stride 1 (F=3 -> 1, 5 -> 2, 7 -> 3).

    Raises :class:`GeometryError` for an even (effective) kernel, which would need one more
    cell on one side than on the other.
    """
    _validate(1, kernel, 1, 0, dilation)
    f = effective_kernel(kernel, dilation)
    if f % 2 == 0:
        raise GeometryError(
            f"a {f}-cell window has no symmetric 'same' padding: it needs {(f - 1) // 2} cells "
            f"on one side and {f // 2} on the other; use an odd kernel"
        )
    return (f - 1) // 2


def check_fit(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    where: str = "layer",
) -> Fit:
    """Return the :class:`Fit`, or raise :class:`GeometryError` explaining, as the lecture
    does, why the window does not tile its input and which strides and paddings would."""
    result = fit(size, kernel, stride, padding, dilation)
    if result.fits:
        return result
    if result.output < 1:
        raise VanishingVolume(where, size, Window(kernel, stride, padding, dilation))
    f = effective_kernel(kernel, dilation)
    strides = fitting_strides(size, kernel, padding, dilation)
    pads = fitting_paddings(size, kernel, stride, dilation)
    value = f"{float(result.exact):.2f}"
    msg = (
        f"{where}: {result.formula()} is not a whole number: a {kernel}x{kernel} filter at "
        f"stride {stride} does not fit a {size}x{size} input"
        + (f" padded by {padding}" if padding else "")
        + f" ({value} rounds down to {result.output}; {result.dropped} "
        f"row(s)/column(s) dropped). "
        + f"Strides that fit: {', '.join(map(str, strides)) or 'none'}. "
    )
    if pads:
        shown = ", ".join(f"{p} (gives {o}x{o})" for p, o in pads)
        msg += f"Paddings that fit stride {stride}: {shown}."
    else:
        msg += f"No padding up to {f - 1} fits stride {stride}."
    raise GeometryError(msg)


@dataclass(frozen=True)
class Window:
    """One layer's sliding window along an axis (a convolution or a pooling)."""

    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @property
    def span(self) -> int:
        return effective_kernel(self.kernel, self.dilation)

    def output(self, size: int, ceil_mode: bool = False) -> int:
        """Output cells over ``size`` input cells (0 or less: the volume vanishes).
        ``ceil_mode``: PyTorch's pooling option, rounding up (see :func:`output_size`)."""
        return output_size(size, self.kernel, self.stride, self.padding, self.dilation, ceil_mode)

    def describe(self) -> str:
        """``a window of 3`` or ``a window of 3 (dilation 2: spans 5)``."""
        dilated = f" (dilation {self.dilation}: spans {self.span})" if self.dilation > 1 else ""
        return f"a window of {self.kernel}{dilated}"


class VanishingVolume(GeometryError):
    """A window that leaves no output cell: the one "the volume vanishes" message.

    ``str()`` reads ``{where}: (N - F + 2*P)/S + 1 = 0.50 < 1: a window of F does not fit N
    row(s) padded by P, so the volume vanishes`` followed by ``; {advice}`` when given, then
    ``tail``.  Callers that can say more (the smallest input that gets through, who needs it,
    a caret under the layer) catch it and raise :meth:`needs`; the fields stay for them to read
    (``axis``: which spatial axis vanished, where known; ``need``: the smallest input extent
    along it that gets through, once a caller has searched for it with :func:`smallest_input`).
    """

    def __init__(
        self,
        where: str,
        size: int,
        window: Window,
        unit: str = "cell(s)",
        advice: str = "",
        axis: int | None = None,
        need: int | None = None,
        tail: str = "",
    ):
        self.where, self.size, self.window, self.unit, self.axis = where, size, window, unit, axis
        self.advice, self.need, self.tail = advice, need, tail
        w = window
        formula = fit(size, w.kernel, w.stride, w.padding, w.dilation).formula()
        self.reason = (
            f"{where}: {formula} < 1: {w.describe()} does not fit {size} {unit} padded by "
            f"{w.padding}, so the volume vanishes"
        )
        super().__init__(self.reason + (f"; {advice}" if advice else "") + tail)

    def explained(
        self, advice: str, where: str | None = None, tail: str = "", need: int | None = None
    ) -> VanishingVolume:
        """The same volume vanishing with ``advice`` after it (and ``where`` in place of the
        layer, ``tail`` at the very end, ``need`` recorded; what was advised before is
        dropped).  Raise it ``from None``; a caller further up may explain it again."""
        where = self.where if where is None else where
        return VanishingVolume(where, self.size, self.window, self.unit, advice, self.axis,
                               need, tail)  # fmt: skip

    def needs(
        self,
        who: str,
        need: int | None,
        *,
        note: str = "",
        where: str | None = None,
        tail: str = "",
        otherwise: str = "no input size gets through",
    ) -> VanishingVolume:
        """:meth:`explained` with the advice on the input size: ``{who} needs an input of at
        least {need} {unit}{note}``, or ``otherwise`` when ``need`` is None (no input size gets
        through)."""
        advice = f"{who} needs an input of at least {need} {self.unit}{note}"
        return self.explained(advice if need is not None else otherwise, where, tail, need)


def axis_units(ndim: int) -> tuple[str, ...]:
    """What one cell is called along each spatial axis of an ``ndim``-d input, for messages:
    ``("row(s)", "column(s)")`` for images."""
    named = {1: ("cell(s)",), 2: ("row(s)", "column(s)"), 3: ("slice(s)", "row(s)", "column(s)")}
    return named.get(ndim, tuple(f"cell(s) along axis {i}" for i in range(ndim)))


def window_output(
    sizes: Sequence[int],
    windows: Sequence[Window],
    where: str,
    ceil_mode: bool = False,
    advice: str = "the input is too small for this network",
) -> tuple[int, ...]:
    """Output size along each spatial axis of one window op (a convolution or a pooling).

    ``sizes`` are the input's spatial sizes, ``windows`` the op's window per axis (same order),
    ``ceil_mode`` PyTorch's pooling option.  This is the per-axis sizing the analysis rules
    use.  Raises :class:`VanishingVolume` (naming ``where``) when an axis is left with no cell.
    """
    units = axis_units(len(sizes))
    out = []
    for axis, (n, window, unit) in enumerate(zip(sizes, windows, units, strict=True)):
        cells = window.output(n, ceil_mode)
        if cells < 1:
            raise VanishingVolume(where, n, window, unit, advice, axis)
        out.append(cells)
    return tuple(out)


def smallest_input(gets_through: Callable[[int], bool], limit: int = 1 << 20) -> int | None:
    """The smallest input extent for which ``gets_through(n)`` holds, or None up to ``limit``.

    ``gets_through`` must be monotone (false, then true from some size on), as it is for any
    network of windows, paddings, branches and global poolings: each output size is a
    non-decreasing function of its input size.  A binary search: about 20 calls for 1 << 20.
    """
    if not gets_through(limit):
        return None
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if gets_through(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Field:
    """Receptive field of an output unit along one axis, relative to the network input.

    ``size``: input cells one unit sees; ``jump``: input cells between neighbouring units
    (the effective stride); ``start``: input coordinate of the first cell seen by unit 0
    (negative when it reaches into padding).  Unit ``i`` sees
    ``[start + i*jump, start + i*jump + size - 1]``.
    """

    size: int = 1
    jump: int = 1
    start: int = 0

    @property
    def center(self) -> float:
        """Input coordinate of the centre of unit 0's field."""
        return self.start + (self.size - 1) / 2

    def then(self, window: Window) -> Field:
        """The field after one more window (composition through a layer)."""
        return Field(
            size=self.size + (window.span - 1) * self.jump,
            jump=self.jump * window.stride,
            start=self.start - window.padding * self.jump,
        )

    def merge(self, *others: Field) -> Field:
        """The field of a unit that combines branches (concatenation, addition).

        The result covers the union of the branches' fields.  All branches must move by the
        same jump, as they do whenever their outputs line up cell by cell.
        """
        fields = (self, *others)
        jumps = {f.jump for f in fields}
        if len(jumps) != 1:
            raise GeometryError(
                f"branches with different effective strides {sorted(jumps)} cannot be merged "
                "cell by cell"
            )
        start = min(f.start for f in fields)
        end = max(f.start + f.size - 1 for f in fields)
        return Field(size=end - start + 1, jump=self.jump, start=start)


def chain(windows: list[Window] | tuple[Window, ...], field: Field | None = None) -> list[Field]:
    """Fields after each window of a chain, starting from ``field`` (default: the input)."""
    current = field or Field()
    result = []
    for w in windows:
        current = current.then(w)
        result.append(current)
    return result
