"""Receptive fields of traced tensors, and the message of a ``ceil_mode`` window that does
not fit: what the tracer propagates through each recorded call.

Each traced tensor carries one :class:`~cnnlab.geometry.Field` per spatial axis (relative to
the network input), or none where no exact field exists (transposed convolutions,
resampling); :func:`moved`, :func:`globalize` and :func:`merge` give an op's output field from
its inputs', by the geometry's own :meth:`~cnnlab.geometry.Field.then` and
:meth:`~cnnlab.geometry.Field.merge`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from cnnlab.analysis.rules.base import Spatial, axis_name
from cnnlab.errors import GeometryError
from cnnlab.geometry import Field, check_fit, fit, fitting_paddings, fitting_strides

__all__ = [
    "Fields", "ceil_message", "derive", "globalize", "globalized", "merge", "moved", "window_fits"
]  # fmt: skip


@dataclass(frozen=True)
class Fields:
    """What the tracer knows about one tensor: its receptive field per spatial axis (None:
    unknown); ``is_global``: a unit sees the whole input (after global pooling, flatten)."""

    fields: tuple[Field, ...] | None
    is_global: bool = False


def ceil_message(where: str, f) -> str:
    strides = fitting_strides(f.size, f.kernel, f.padding, f.dilation)
    pads = fitting_paddings(f.size, f.kernel, f.stride, f.dilation)
    msg = (
        f"{where}: {f.formula()} is not a whole number: a {f.kernel}x{f.kernel} window at "
        f"stride {f.stride} does not fit a {f.size}x{f.size} input"
        + (f" padded by {f.padding}" if f.padding else "")
        + f" (ceil_mode rounds {float(f.exact):.2f} up to {f.output + 1}: the last window "
        f"hangs over the edge). Strides that fit: {', '.join(map(str, strides)) or 'none'}. "
    )
    if pads:
        msg += (
            f"Paddings that fit stride {f.stride}: "
            + ", ".join(f"{p} (gives {o}x{o})" for p, o in pads)
            + "."
        )
    return msg


def moved(fields: tuple[Field, ...], sp: Spatial) -> Fields | None:
    """Fields after a window (:meth:`Field.then`) or an offset (crop, pad, stride) per axis."""
    if sp.kind == "window" and len(fields) == len(sp.windows):
        return Fields(tuple(f.then(w) for f, w in zip(fields, sp.windows, strict=True)))
    if sp.kind == "offset" and len(fields) == len(sp.offsets):
        return Fields(
            tuple(
                Field(size=f.size, jump=f.jump * step, start=f.start + first * f.jump)
                for f, (first, step) in zip(fields, sp.offsets, strict=True)
            )
        )
    return None


def globalize(info: Fields | None, t: torch.Tensor | None) -> Fields | None:
    """The field of a unit that sees every spatial cell of ``t``."""
    return globalized(info, None if t is None else tuple(t.shape[2:]))


def globalized(info: Fields | None, cells: tuple[int, ...] | None) -> Fields | None:
    """:func:`globalize` for a tensor whose spatial sizes are ``cells`` (its shape after the
    batch and channels; None: no tensor)."""
    if info is None or info.fields is None:
        return None
    if info.is_global or cells is None:
        return Fields(info.fields, True)
    sizes = cells
    if len(sizes) != len(info.fields):
        return Fields(info.fields, True)
    return Fields(
        tuple(
            Field(size=f.size + (n - 1) * f.jump, jump=f.jump * n, start=f.start)
            for f, n in zip(info.fields, sizes, strict=False)
        ),
        True,
    )


def merge(infos: list[Fields]) -> Fields | None:
    """The field of a unit that combines branches (an addition, a concatenation along
    channels): :meth:`Field.merge` per axis.  Branches that do not line up cell by cell have
    no common field, except after a global operation, where only the extent matters (the
    larger jump is kept)."""
    infos = [i for i in infos if i is not None and i.fields is not None]
    if not infos:
        return None
    if len(infos) == 1:
        return infos[0]
    n = len(infos[0].fields)
    if any(len(i.fields) != n for i in infos):
        return None
    is_global = any(i.is_global for i in infos)
    merged = []
    for axis in range(n):
        fs = [i.fields[axis] for i in infos]
        jump = max(f.jump for f in fs)
        if is_global:
            fs = [replace(f, jump=jump) for f in fs]
        try:
            merged.append(fs[0].merge(*fs[1:]))
        except GeometryError:
            return None  # branches that do not line up cell by cell
    return Fields(tuple(merged), is_global)


def derive(
    sp: Spatial,
    src: Fields | None,
    primary_cells: tuple[int, ...] | None,
    ins: list[tuple[Fields | None, tuple[int, ...]]],
    out_cells: tuple[int, ...] | None,
) -> Fields | None:
    """The field of a counted call's output, from what its inputs' fields are: ``src`` that of
    its primary input (spatial sizes ``primary_cells``; None: no tensor input), ``ins`` the
    (field, shape) of each traced input in argument order, ``out_cells`` the spatial sizes of
    its first output (None: no output).  An element-wise call (``same``) merges its inputs'
    fields, one broadcast over space (per-channel values, squeeze-excite) seeing everything
    its own producer saw; a window or an offset moves the primary's; a global one widens it."""
    if sp.kind == "same":
        infos = []
        for ti, shape in ins:
            if ti is None:
                continue
            cells = shape[2:]
            if (
                out_cells is not None
                and len(shape) >= 3
                and cells != out_cells
                and all(s == 1 for s in cells)
            ):
                ti = globalized(ti, cells)
            infos.append(ti)
        return merge(infos)
    if src is None or sp.kind == "unknown":
        return None
    if sp.kind == "global":
        return globalized(src, primary_cells)
    if src.is_global or src.fields is None:
        return None
    return moved(src.fields, sp)


def window_fits(sp: Spatial, shape: tuple[int, ...], tracer: Any, frame: Any) -> tuple:
    """The geometry fit of each window of ``sp`` over an input of this ``shape`` (cached by
    value in ``tracer.fit_cache``); with ``tracer.strict`` a window that does not fit raises
    :class:`~cnnlab.errors.GeometryError` naming ``frame``'s layer."""
    sizes = [int(s) for s in shape[-sp.dims :]] if sp.dims else []
    result = []
    cache = tracer.fit_cache
    for axis, (n, w) in enumerate(zip(sizes, sp.windows, strict=False)):
        key = (n, w.kernel, w.stride, w.padding, w.dilation)
        f = cache.get(key)
        if f is None:
            f = cache[key] = fit(*key)
        result.append(f)
        if tracer.strict and not f.fits:
            where = frame.path or "(model)"
            if len(sizes) > 1 and len(set(sizes)) > 1:
                where += f" ({axis_name(axis, len(sizes))})"
            if sp.ceil_mode:
                raise GeometryError(ceil_message(where, f))
            check_fit(n, w.kernel, w.stride, w.padding, w.dilation, where=where)
    return tuple(result)
