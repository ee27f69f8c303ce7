"""The lecture's arithmetic for one sliding window, worked out, as plain data.

``window_arithmetic(7, 3, 2)`` holds what the lecture writes on the board: the formula
``(N - F + 2P)/S + 1`` with the numbers in, the output size, whether the window tiles the
input, a convolution's parameters and the "same" padding.  ``cnnlab arith`` renders it; a
drawing of the window (an arithmetic frame) can read the same record.  No torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.errors import GeometryError
from cnnlab.geometry import Fit, check_fit, effective_kernel, fit, output_size, same_padding

__all__ = ["ConvParams", "WindowArithmetic", "window_arithmetic"]


@dataclass(frozen=True)
class ConvParams:
    """Parameters of ``filters`` filters of ``kernel x kernel x depth`` (one bias each)."""

    kernel: int
    depth: int
    filters: int

    @property
    def per_filter(self) -> int:
        """Weights of one filter: ``F*F*D1``."""
        return self.kernel * self.kernel * self.depth

    @property
    def weights(self) -> int:
        return self.per_filter * self.filters

    @property
    def total(self) -> int:
        """Weights and biases: ``(F*F*D1 + 1) * K``."""
        return (self.per_filter + 1) * self.filters


@dataclass(frozen=True)
class WindowArithmetic:
    """One window over a square ``size x size`` input (see :func:`window_arithmetic`).

    ``fit`` is the floor arithmetic (:class:`~cnnlab.geometry.Fit`); ``output`` is what
    PyTorch computes (rounded up with ``ceil``).  ``params`` is set for a convolution given
    its input depth and filter count, ``same`` (the padding that keeps the size at stride 1)
    and ``same_output`` when asked for.
    """

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    pool: bool
    ceil: bool
    span: int  # cells the (dilated) window covers
    fit: Fit
    output: int
    params: ConvParams | None = None
    same: int | None = None
    same_output: int | None = None

    @property
    def exact(self) -> bool:
        return self.fit.fits

    @property
    def depth_out(self) -> int | None:
        """Depth of the output volume: the filters of a convolution (None if not given)."""
        return self.params.filters if self.params is not None else None


def window_arithmetic(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    pool: bool = False,
    ceil: bool = False,
    same: bool = False,
    depth: int | None = None,
    filters: int | None = None,
) -> WindowArithmetic:
    """The worked arithmetic of one window.  ``stride`` defaults to 1 for a filter and to the
    window size for a pool.  Without ``ceil``, a window that does not tile its input raises
    :class:`~cnnlab.errors.GeometryError` with the lecture's explanation (which strides and
    paddings fit).  ``depth`` and ``filters`` (a convolution's input depth and number of
    filters, both or neither, not for a pool) give its parameters."""
    s = stride if stride is not None else (kernel if pool else 1)
    if ceil:
        f = fit(size, kernel, s, padding, dilation)
        out = output_size(size, kernel, s, padding, dilation, ceil_mode=True)
    else:
        f = check_fit(size, kernel, s, padding, dilation, where=f"{size}x{size} input")
        out = f.output
    params = None
    if depth is not None or filters is not None:
        if pool:
            raise GeometryError("a pooling window has no parameters: drop depth and filters")
        if depth is None or filters is None or depth < 1 or filters < 1:
            raise GeometryError("a convolution's parameters need both depth and filters >= 1")
        params = ConvParams(kernel, depth, filters)
    pad = same_padding(kernel, dilation) if same else None
    return WindowArithmetic(
        size=size,
        kernel=kernel,
        stride=s,
        padding=padding,
        dilation=dilation,
        pool=pool,
        ceil=ceil,
        span=effective_kernel(kernel, dilation),
        fit=f,
        output=out,
        params=params,
        same=pad,
        same_output=None if pad is None else output_size(size, kernel, 1, pad, dilation),
    )
