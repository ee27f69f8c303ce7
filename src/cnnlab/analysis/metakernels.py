"""Shape-only results of the few ops whose PyTorch meta kernel is slow on first use.

The tracer runs an op without a counting rule on shape-only ("meta") stand-ins to learn its
output's shape.  For most ops PyTorch's meta kernel is C++; for some it is a Python
decomposition that imports ``torch.fx.experimental.symbolic_shapes`` (and with it SymPy) on
its first call: about a second of a process's first analysis, for LeNet-5's connection table
(``index_copy``), where the analysis itself takes milliseconds.  :func:`run_on_meta` makes
those outputs directly, as the decomposition would (same shape, dtype and strides), after the
same checks; any call it does not recognise exactly, or that the checks would refuse, runs
PyTorch's own kernel, so errors are PyTorch's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["run_on_meta"]


def run_on_meta(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """``func(*args, **kwargs)`` on meta tensors, without its slow first use where known."""
    make = _KNOWN.get(func)
    if make is not None:
        out = make(*args) if not kwargs and len(args) == 4 else None
        if out is not None:
            return out
    return func(*args, **kwargs)


def _index_copy(x: Any, dim: Any, index: Any, source: Any) -> torch.Tensor | None:
    """``x.index_copy(dim, index, source)``: a new contiguous tensor of ``x``'s shape and
    dtype (the decomposition's ``index_put(...).contiguous()``), or None to let PyTorch decide
    (anything but the plain case of equal ranks, a 1-d long index and matching slices)."""
    if not (
        isinstance(x, torch.Tensor)
        and isinstance(index, torch.Tensor)
        and isinstance(source, torch.Tensor)
        and isinstance(dim, int)
        and x.is_meta
        and index.is_meta
        and source.is_meta
        and x.dim() >= 1
        and source.dim() == x.dim()
        and index.dim() == 1
        and index.dtype == torch.long
        and source.dtype == x.dtype
        and -x.dim() <= dim < x.dim()
    ):
        return None
    d = dim % x.dim()
    if x.shape[:d] != source.shape[:d] or x.shape[d + 1 :] != source.shape[d + 1 :]:
        return None
    if source.shape[d] != index.numel():
        return None
    return torch.empty(x.shape, dtype=x.dtype, device="meta")


# torch function -> a maker of its output from the same four positional arguments
_KNOWN: dict[Any, Callable[..., torch.Tensor | None]] = {
    torch.Tensor.index_copy: _index_copy,
    torch.index_copy: _index_copy,
}
