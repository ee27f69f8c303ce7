"""Renderers: an :class:`~cnnlab.analysis.result.Analysis` as a terminal table, Markdown, CSV,
JSON or the lecture's lines.  They only format; every number comes from the analysis.

Each text renderer returns a string (the CLI prints it); :func:`rich_table` returns a rich
``Table`` for terminals.  Every format states its conventions (MACs vs FLOPs, what is counted,
bytes per element).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from cnnlab.analysis.result import Analysis, Kind, Row

__all__ = [
    "FORMATS",
    "COLUMNS",
    "check_columns",
    "fit_columns",
    "human",
    "render",
    "render_csv",
    "render_json",
    "render_lecture",
    "render_markdown",
    "render_table",
    "rich_table",
    "lecture_lines",
]

FORMATS = ("table", "markdown", "csv", "json", "lecture")


def human(value: float, unit: str = "") -> str:
    """1,234,567 -> '1.23M' (decimal prefixes; bytes use MB = 10^6 bytes)."""
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.2f}{suffix}{unit}"
    return f"{value:.0f}{unit}" if float(value).is_integer() else f"{value:.2f}{unit}"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def _inputs(a: Analysis) -> str:
    """The input's shape, or every input's (``1x3x32x32, 1x10``) for a model with several."""
    return ", ".join(_shape(s) for s in a.input_shapes) if a.input_shapes else _shape(a.input_shape)


def _hyper(row: Row) -> str:
    layer = row.layer
    if layer is None:
        return ""
    if layer.windows:
        parts = [f"{_ax(layer.kernel)}/{_ax(layer.stride)}"]
        if any(layer.padding):
            parts.append(f"p{_ax(layer.padding)}")
        if any(d != 1 for d in layer.dilation):
            parts.append(f"d{_ax(layer.dilation)}")
        if layer.groups != 1:
            parts.append(f"g{layer.groups}")
        if layer.ceil_mode:
            parts.append("ceil")
        return " ".join(parts)
    if layer.out_features is not None:
        return f"{layer.in_features}->{layer.out_features}"
    if layer.output_size is not None:
        return f"->{_ax(layer.output_size)}"
    return ""


def _ax(values: Any) -> str:
    if isinstance(values, int):
        return str(values)
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _rf(row: Row) -> str:
    if row.field is None:
        return "-" if row.kind == "uncalled" else "?"
    if row.field.is_global:
        return f"{row.field.text()} (all)"
    return f"{row.field.text()}/{row.field.jump_text()}"


def _macs(row: Row) -> str:
    if row.uncounted:
        return f"{row.macs:,}+?"
    return f"{row.macs:,}" if row.macs else "-"


def _label(row: Row, indent: bool = True) -> str:
    pad = "  " * (row.depth - 1) if indent else ""
    name = row.path.rsplit(".", 1)[-1] if indent and row.kind != "op" else row.path
    if indent and row.kind == "op":
        name = row.path.rsplit(".", 1)[-1] if "." in row.path else row.path
    if row.call > 1:
        name += f" (call {row.call})"
    return pad + name


# The table's columns: key -> header.  Order is the table's; COLUMN_KEYS_BY_IMPORTANCE says
# which go first when the table must fit a narrow terminal.
COLUMNS: dict[str, str] = {
    "name": "Layer",
    "type": "Type",
    "window": "Filter/stride",
    "volume": "Volume WxHxD",
    "output": "Output NxCxHxW",
    "params": "Params",
    "macs": "MACs",
    "activations": "Act. values",
    "rf": "RF/jump",
    "fit": "Fit",
}
_NUMERIC = ("params", "macs", "activations", "rf")
# dropped first .. never dropped (name, output, params and macs always stay)
_DROP_ORDER = ("fit", "activations", "rf", "volume", "window", "type")
_BORDER = 3  # a cell's padding (1 + 1) and its left rule


def _columns() -> list[str]:
    return list(COLUMNS.values())


def _cells(row: Row, indent: bool = True) -> list[str]:
    kind = row.type if row.kind != "uncalled" else f"{row.type} (not called)"
    return [
        _label(row, indent),
        kind,
        _hyper(row),
        row.volume if row.output_shapes else "-",
        _shape(row.output_shape),
        f"{row.params:,}" if row.params else "-",
        _macs(row),
        f"{row.activations:,}" if row.activations else "-",
        _rf(row),
        row.fit or "",
    ]


def check_columns(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Column keys as a user gives them (``name,output,params,macs``), checked; a
    :class:`~cnnlab.errors.CnnlabError` names an unknown one and the valid keys."""
    from cnnlab._typed import did_you_mean
    from cnnlab.errors import CnnlabError

    keys = tuple(n.strip().lower() for n in names if n.strip())
    for key in keys:
        if key not in COLUMNS:
            raise CnnlabError(
                f"column {key!r}{did_you_mean(key, COLUMNS)}; valid: {', '.join(COLUMNS)}"
            )
    if not keys:
        raise CnnlabError(f"no column given; valid: {', '.join(COLUMNS)}")
    return keys


def fit_columns(
    a: Analysis, depth: int | None, width: int | None, columns: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the columns shown, the columns left out) so that the table fits ``width`` characters
    without cutting a number: the least important columns go first (:data:`_DROP_ORDER`).
    Columns the user chose (``columns``) are never dropped."""
    chosen = columns or tuple(COLUMNS)
    if width is None or columns:
        return chosen, ()
    keys = list(COLUMNS)
    rows = [_cells(r) for r in a.visible(depth)]
    need = {
        k: max([len(COLUMNS[k])] + [len(r[i]) for r in rows]) + _BORDER for i, k in enumerate(keys)
    }
    shown = list(chosen)
    dropped = []
    for key in _DROP_ORDER:
        if sum(need[k] for k in shown) + 1 <= width:
            break
        if key in shown:
            shown.remove(key)
            dropped.append(key)
    return tuple(shown), tuple(dropped)


# Bytes per value of the dtypes an analysis can run in (the renderers do not import torch).
_ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
    "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16,
}  # fmt: skip


def _itemsize(a: Analysis) -> float:
    """Bytes per value of the analysis dtype (activations of other dtypes, such as boolean
    masks or integer indices, are counted at their own size)."""
    size = _ITEMSIZE.get(a.dtype)
    return (
        size if size is not None else a.totals.activation_bytes / max(a.totals.activation_values, 1)
    )


def _uncounted(a: Analysis) -> str:
    """``+?`` when some op had no counting rule: the MACs shown are a lower bound."""
    return "+?" if a.totals.uncounted else ""


def _totals_lines(a: Analysis) -> list[str]:
    t = a.totals
    per = "image" if t.batch == 1 else f"batch of {t.batch}"
    itemsize = _itemsize(a)
    mixed = t.activation_bytes != t.activation_values * itemsize
    q = _uncounted(a)
    macs = f"MACs: {t.macs:,}{q} ({human(t.macs)}{q}) per {per}"
    if q:
        macs += f", not counting {', '.join(sorted(t.uncounted))}"
    lines = [
        f"Input: {_inputs(a)} ({a.dtype}, {itemsize:g} bytes per value"
        + ("; other dtypes (masks, indices) at their own size" if mixed else "")
        + ")",
        f"Parameters: {t.params:,} ({t.trainable:,} trainable, {t.frozen:,} frozen; "
        f"{t.weights:,} weights + {t.biases:,} biases) = {human(t.param_bytes, 'B')}",
        f"{macs}; FLOPs = 2 x MACs = {human(t.flops)}{q}",
        f"Other element ops (not in MACs): {human(t.other_ops)}",
        f"Forward activations: {t.activation_values:,} values = "
        f"{human(t.activation_bytes, 'B')} per {per} (input included)",
        f"Training step memory (estimate): SGD+momentum {human(t.training.sgd_momentum, 'B')}, "
        f"Adam {human(t.training.adam, 'B')} (kept for backward "
        f"{human(t.training.saved_activations, 'B')} + parameters "
        f"{human(t.training.parameters, 'B')} + gradients {human(t.training.gradients, 'B')} "
        f"+ optimizer state)",
    ]
    if t.uncounted:
        shown = ", ".join(f"{k} x{v}" for k, v in sorted(t.uncounted.items()))
        lines.append(f"UNCOUNTED ops (no counting rule; MACs above exclude them): {shown}")
    return lines


def _convention_lines(a: Analysis, width: int | None = None) -> list[str]:
    """The conventions, one per key, wrapped to ``width`` (indented continuation lines)."""
    import textwrap

    lines = []
    for key, text in a.conventions.items():
        line = f"{key}: {text}"
        if width is None:
            lines.append(line)
        else:
            lines += textwrap.wrap(line, width=max(width, 40), subsequent_indent="  ")
    return lines


# ------------------------------------------------------------------------------------- table


def rich_table(
    a: Analysis,
    depth: int | None = None,
    title: str | None = None,
    width: int | None = None,
    columns: tuple[str, ...] | None = None,
):
    """The analysis as a ``rich.table.Table`` (rows to ``depth``), totals in the caption.

    ``columns`` (keys of :data:`COLUMNS`) chooses the columns; otherwise, given a ``width``,
    the least important columns are left out until the table fits, and the caption says
    which.  Numbers are never cut or wrapped."""
    from rich.table import Table

    shown, dropped = fit_columns(a, depth, width, columns)
    caption = _totals_lines(a)
    if dropped:
        caption.append(
            f"Columns left out to fit {width} characters: {', '.join(dropped)} "
            f"(--width, or --columns {','.join(shown + dropped)})"
        )
    table = Table(
        title=title or f"{a.model} on {_inputs(a)}",
        caption="\n".join(caption),
        caption_justify="left",
        show_lines=False,
        header_style="bold",
    )
    keys = list(COLUMNS)
    index = [keys.index(k) for k in shown]
    for k in shown:
        numeric = k in _NUMERIC
        table.add_column(
            COLUMNS[k],
            justify="right" if numeric else "left",
            no_wrap=numeric or k in ("output", "volume"),
            overflow="fold",
        )
    for row in a.visible(depth):
        style = "dim" if row.kind == "uncalled" else ("bold" if not row.leaf else None)
        cells = _cells(row)
        table.add_row(*(cells[i] for i in index), style=style)
    return table


def render_table(
    a: Analysis,
    depth: int | None = None,
    width: int = 160,
    columns: tuple[str, ...] | None = None,
) -> str:
    """The rich table as plain text (no colour) at most ``width`` wide where the chosen
    columns allow it, with the conventions wrapped to that width; for pipes, files, tests."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    console.print(rich_table(a, depth, width=width, columns=columns))
    console.print("\n".join(_convention_lines(a, width)), soft_wrap=True)
    return buf.getvalue()


# ---------------------------------------------------------------------------------- markdown


def render_markdown(a: Analysis, depth: int | None = None) -> str:
    cols = _columns()
    out = [f"### {a.model} on {_inputs(a)}", ""]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "|".join("---:" if 5 <= i <= 8 else "---" for i in range(len(cols))) + "|")
    for row in a.visible(depth):
        cells = _cells(row, indent=False)
        cells = [c.replace("|", "\\|") for c in cells]
        cells[0] = f"`{cells[0]}`"
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.extend(f"- {line}" for line in _totals_lines(a))
    out.append("")
    out.append("Conventions:")
    out.extend(f"- {line}" for line in _convention_lines(a))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------- csv

CSV_FIELDS = [
    "path",
    "type",
    "kind",
    "depth",
    "call",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "output_shape",
    "volume",
    "params",
    "weights",
    "biases",
    "trainable",
    "activations",
    "activation_bytes",
    "macs",
    "flops",
    "other_ops",
    "rf_size",
    "rf_jump",
    "rf_start",
    "fit",
    "uncounted",
    "notes",
]


_WINDOW_FIELDS = ("kernel", "stride", "padding", "dilation")


def render_csv(a: Analysis, depth: int | None = None) -> str:
    """One line per row; shapes as 1x64x112x112; MACs per batch (FLOPs = 2 x MACs)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in a.visible(depth):
        win = r.layer.windows if r.layer is not None else ()
        conv = r.layer is not None and r.layer.kind in (Kind.CONV, Kind.CONV_TRANSPOSE)
        writer.writerow(
            [
                r.path,
                r.type,
                r.kind,
                r.depth,
                r.call,
                *(_ax(tuple(getattr(w, f) for w in win)) if win else "" for f in _WINDOW_FIELDS),
                r.layer.groups if conv else "",
                _shape(r.output_shape),
                r.volume,
                r.params,
                r.weights,
                r.biases,
                r.trainable,
                r.activations,
                r.activation_bytes,
                r.macs,
                r.flops,
                r.other_ops,
                r.field.text() if r.field else "",
                r.field.jump_text() if r.field else "",
                _ax(r.field.start) if r.field else "",
                r.fit,
                ";".join(r.uncounted),
                ";".join(r.notes),
            ]
        )
    return buf.getvalue()


def render_json(a: Analysis, depth: int | None = None) -> str:
    data = a.to_dict()
    if depth is not None:
        data["rows"] = [r.to_dict() for r in a.visible(depth)]
    return json.dumps(data, indent=1) + "\n"


# ----------------------------------------------------------------------------------- lecture


def lecture_number(n: int, digits: int = 2) -> str:
    """The lecture's rounding of a value count: 3,211,264 -> 3.2M; 150,528 -> 150K; 4096.

    The lecture keeps two significant digits (802,816 -> 800K, 25,088 -> 25K)."""
    if n >= 1_000_000:
        return f"{float(f'{n / 1e6:.{digits}g}'):g}M"
    if n >= 10_000:
        return f"{float(f'{n / 1e3:.{digits}g}'):g}K"
    return str(n)


# The layer kinds a lecture table lists, and how it labels each (a block: by its type name).
_LECTURE_LABELS = {
    Kind.CONV: lambda r: f"CONV{_ax(r.layer.kernel)}-{r.output_shape[1]}",
    Kind.MAX_POOL: lambda r: f"POOL{_ax(r.layer.kernel)}",
    Kind.AVG_POOL: lambda r: f"POOL{_ax(r.layer.kernel)}",
    Kind.ADAPTIVE_AVG_POOL: lambda r: "AVGPOOL",
    Kind.ADAPTIVE_MAX_POOL: lambda r: "POOL",
    Kind.LINEAR: lambda r: "FC",
    Kind.LRN: lambda r: "NORM",
    Kind.SUBSAMPLE: lambda r: f"SUBSAMPLE{_ax(r.layer.kernel or (2,))}",
    Kind.BLOCK: lambda r: r.type.upper(),
}


def _lecture_rows(a: Analysis) -> list[Row]:
    """The rows a lecture table lists: convolutions, pools, norms, FC (and whole blocks), as
    their rules name them."""
    rows: list[Row] = []
    inside: list[str] = []
    for r in a.rows:
        kind = r.layer.kind if r.layer is not None else None
        if r.kind == "uncalled" or kind not in _LECTURE_LABELS:
            continue
        if any(r.path.startswith(p + ".") for p in inside):
            continue
        if kind is Kind.BLOCK:
            inside.append(r.path)
            rows.append(r)
        elif r.leaf:
            rows.append(r)
    return rows


def lecture_lines(a: Analysis) -> tuple[list[tuple[Row | None, str]], int]:
    """(row, line) pairs in the lecture's style, and the lecture-style total memory (values).

    Memory is per image (values of the output volume); params are the weights without biases,
    written as the lecture writes them, ``(F*F*D1)*K``; biases are mentioned after.
    """
    c, *spatial = a.input_shape[1:]
    vol = "x".join(map(str, [*reversed(spatial), c]))
    n_in = a.totals.input_values // a.totals.batch
    formula = "*".join(map(str, [*reversed(spatial), c]))
    lines: list[tuple[Row | None, str]] = [
        (None, f"INPUT: [{vol}] memory: {formula}={lecture_number(n_in)} params: 0")
    ]
    total = n_in
    last_volume: tuple[int, ...] = tuple(a.input_shape[1:])
    for r in _lecture_rows(a):
        shape = r.output_shape
        per_image = r.activations // a.totals.batch if a.totals.batch else r.activations
        total += per_image
        if len(shape) >= 3:
            dims = [*reversed(shape[2:]), shape[1]]
            mem = f"{'*'.join(map(str, dims))}={lecture_number(per_image)}"
            vol = "x".join(map(str, dims))
        else:
            mem = f"{per_image}"
            vol = "1x1x" + "x".join(map(str, shape[1:]))
        layer = r.layer
        if layer.kind is Kind.CONV and r.weights:
            k = "*".join(map(str, layer.kernel))
            c_in = r.input_shapes[0][1] // layer.groups if r.input_shapes else "?"
            if layer.connections is not None:
                params = f"{layer.connections}*{k} = {r.weights:,} (connection table)"
            else:
                params = f"({k}*{c_in})*{layer.out_channels} = {r.weights:,}"
        elif layer.kind is Kind.LINEAR and r.weights:
            fin = layer.in_features
            src = fin
            if len(last_volume) >= 3 and _prod(last_volume) == fin:
                src = "*".join(map(str, [*reversed(last_volume[1:]), last_volume[0]]))
            params = f"{src}*{layer.out_features} = {r.weights:,}"
        else:
            params = f"{r.weights:,}"
        if r.biases:
            params += f" (+{r.biases:,} biases)"
        if len(shape) >= 3:
            last_volume = tuple(shape[1:])
        label = _LECTURE_LABELS[layer.kind](r)
        lines.append((r, f"{label}: [{vol}] memory: {mem} params: {params}"))
    return lines, total


def _prod(values) -> int:
    n = 1
    for v in values:
        n *= v
    return n


def render_lecture(a: Analysis) -> str:
    lines, total = lecture_lines(a)
    itemsize = _itemsize(a)
    out = [line for _, line in lines]
    out.append(
        f"TOTAL memory: {lecture_number(total, 3)} * {itemsize:g} bytes ~= "
        f"{total * itemsize / 2**20:.0f} MB / image (the rows above, forward only; ~x2 for "
        f"backward)"
    )
    out.append(
        f"TOTAL params: {human(a.totals.params)} parameters ({a.totals.params:,}, "
        f"{a.totals.biases:,} of them biases)"
    )
    q = _uncounted(a)
    out.append(
        f"TOTAL MACs: {human(a.totals.macs)}{q} ({a.totals.macs:,}{q}; FLOPs = 2 x MACs)"
        + (f"; not counting {', '.join(sorted(a.totals.uncounted))}" if q else "")
    )
    return "\n".join(out) + "\n"


def render(
    a: Analysis,
    fmt: str,
    depth: int | None = None,
    width: int = 160,
    columns: tuple[str, ...] | None = None,
) -> str:
    """Dispatch on ``fmt`` (one of :data:`FORMATS`); ``width`` and ``columns`` shape the
    table (see :func:`rich_table`)."""
    if fmt == "table":
        return render_table(a, depth, width, columns)
    if fmt == "markdown":
        return render_markdown(a, depth)
    if fmt == "csv":
        return render_csv(a, depth)
    if fmt == "json":
        return render_json(a, depth)
    if fmt == "lecture":
        return render_lecture(a)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
