"""``cnnlab summary`` (a network as a table), ``cnnlab arith`` (one window's arithmetic) and
``cnnlab lecture`` (the lecture's tables regenerated from the zoo)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cnnlab.errors import CnnlabError

if TYPE_CHECKING:
    from cnnlab.viz.arithmetic import WindowArithmetic

_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32")  # ints: indices
_FORMATS = ("table", "markdown", "csv", "json", "lecture")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="shapes, parameters, memory, MACs and receptive fields, layer by layer",
        description="Analyze a network without running it on real data: every layer's output "
        "volume, parameters (weights and biases), activation memory, multiply-adds (MACs; "
        "FLOPs = 2 x MACs), receptive field and how its window fits, with totals and a "
        "training-memory estimate.  TARGET is a zoo model name, a network in the compact "
        "notation (e.g. 'conv3-64, relu, maxpool, fc-10'), path/to/file.py:factory, or a "
        "run folder of cnnlab train (the model it trained).",
    )
    p.add_argument(
        "target", metavar="TARGET", help="model name, spec text, file.py:factory or a run folder"
    )
    p.add_argument(
        "--input",
        action="append",
        metavar="SIZE",
        help="one example's size, CxHxW such as 3x224x224 (default: the model's); any rank "
        "for file.py:factory (2x20, 1x4x6x6), and once per input for a model with several",
    )
    p.add_argument("--depth", type=int, default=None, help="deepest nesting level to list")
    p.add_argument("--batch", type=int, default=1, help="images per batch (default 1)")
    p.add_argument(
        "--dtype",
        default="float32",
        metavar="DTYPE",
        help=f"input dtype ({', '.join(_DTYPES)}); one per --input, comma-separated, for "
        "several inputs (default float32)",
    )
    p.add_argument("--format", choices=_FORMATS, default="table")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first window that does not tile its input (the lecture's rule)",
    )
    p.add_argument("--classes", type=int, help="number of classes (default: the paper's)")
    p.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="builder option, e.g. variant=v1"
    )
    p.add_argument(
        "--width",
        type=int,
        default=None,
        metavar="W",
        help="table width in characters (default: the terminal's, or $COLUMNS, else 200)",
    )
    p.add_argument(
        "--columns",
        metavar="KEYS",
        help="the table's columns, e.g. name,output,params,macs (all: name, type, window, "
        "volume, output, params, macs, activations, rf, fit); without it, the least important "
        "are left out to fit the width",
    )
    p.set_defaults(func=_summary)

    p = sub.add_parser(
        "arith",
        help="output size of one convolution or pooling window, worked out",
        description="The lecture's output size (N - F + 2P)/S + 1, worked out; a window that "
        "does not tile its input exits with status 2, saying which strides and paddings fit.",
    )
    p.add_argument("--input", type=int, required=True, metavar="N", help="input width (cells)")
    p.add_argument("--filter", type=int, required=True, metavar="F", help="filter size")
    p.add_argument("--stride", type=int, default=None, metavar="S", help="(default 1; pool: F)")
    p.add_argument("--pad", type=int, default=0, metavar="P", help="zero padding per side")
    p.add_argument("--dilation", type=int, default=1, metavar="D")
    p.add_argument("--pool", action="store_true", help="a pooling window (no parameters)")
    p.add_argument("--ceil", action="store_true", help="round up as ceil_mode pooling does")
    p.add_argument("--same", action="store_true", help="print the padding that keeps the size")
    p.add_argument("--depth", type=int, metavar="D1", help="input depth (for the parameters)")
    p.add_argument("--filters", type=int, metavar="K", help="number of filters (parameters)")
    p.set_defaults(func=_arith)

    p = sub.add_parser(
        "lecture",
        help="the lecture's tables regenerated from the zoo, beside the lecture's numbers",
        description="Every table of the lecture (conv arithmetic, AlexNet, VGG-16, VGG A-E, "
        "GoogLeNet, ResNet, CIFAR ResNets) computed from cnnlab's models, side by side with "
        "the numbers the lecture prints; rows where the lecture itself is wrong are marked.",
    )
    p.add_argument("--table", default=None, help="one table by name (default: all)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.set_defaults(func=_lecture)


# ----------------------------------------------------------------------------------- summary


def build_for_analysis(
    text: str, input_text: str | None, classes: int | None, options, plan: bool = False
) -> Any:
    """Build TARGET for analysis: zoo and spec models on the meta device (no weights are
    allocated or initialised), user files as their code builds them.  A builder that cannot
    run on the meta device (one that computes with its own initial values) is built on the
    CPU instead.  ``plan=True``: a zoo model or spec that is one spec is not built at all
    (its Target has the plan, for :func:`~cnnlab.analysis.analyze_spec`)."""
    from cnnlab.analysis.meta import build_on_meta
    from cnnlab.zoo.target import load_target, parse_input_size, parse_options

    size = parse_input_size(input_text) if input_text else None
    if size is not None and len(size) == 2 and ".py" not in text:
        raise CnnlabError(
            f"--input {input_text!r}: {text} takes an image: expected CxHxW such as 3x224x224, "
            "or one number H for a square input with the model's channels"
        )
    opts = parse_options(options)
    if ".py" in text and classes is not None:
        raise CnnlabError(
            f"--classes {classes}: applies to zoo models and specs; {text} builds its own classes"
        )
    kwargs = {"input_size": size, "num_classes": classes, "options": opts}
    if ".py" in text:
        return load_target(text, **kwargs)
    if plan:
        target = load_target(text, **kwargs, plan=True)
        if target.plan is not None:
            return target
    try:
        return build_on_meta(load_target, text, **kwargs)
    except CnnlabError:
        raise
    except Exception:  # noqa: BLE001 - builders with value-dependent init: build for real
        return load_target(text, **kwargs)


def _dtypes(text: str, n: int) -> list:
    """``--dtype float32`` (for every input) or ``float32,int64`` (one per input)."""
    import torch

    names = [s.strip() for s in text.split(",")]
    for name in names:
        if name not in _DTYPES:
            raise CnnlabError(f"--dtype {name!r}: expected one of {', '.join(_DTYPES)}")
    if len(names) not in (1, n):
        raise CnnlabError(f"--dtype {text!r}: give one dtype, or one per --input ({n})")
    return [getattr(torch, name) for name in (names * n if len(names) == 1 else names)]


def _is_run(text: str) -> bool:
    """Whether TARGET names a folder (a run of ``cnnlab train``) rather than a model: a
    folder, unless a zoo model has its name (``resnet18`` beside a folder of that name)."""
    from pathlib import Path

    if not Path(text).is_dir():
        return False
    from cnnlab.zoo import model_info

    try:
        model_info(text)
    except CnnlabError:
        return True
    return False


def _run_target(args: argparse.Namespace) -> Any:
    """TARGET a run folder: the model it trained, as its weights' record rebuilds it, at its
    input size (which the run fixes, as it fixes the classes and the builder's options)."""
    from types import SimpleNamespace

    from cnnlab.train.run import open_run

    given = [f for f, v in (("--input", args.input), ("--classes", args.classes),
                            ("--option", args.option)) if v]  # fmt: skip
    if given:
        raise CnnlabError(
            f"{' and '.join(given)}: {args.target} is a run, whose model has its own input, "
            "classes and options; valid: cnnlab summary RUN, or the run's model by name"
        )
    run = open_run(args.target)
    model = run.build_model("final")
    label = f"{args.target} ({run.config.get('target') or type(model).__name__})"
    return SimpleNamespace(plan=None, model=model, input_size=run.input_shape, label=label)


def _summary(args: argparse.Namespace) -> int:
    from cnnlab.analysis import analyze, analyze_spec
    from cnnlab.analysis.render import _convention_lines, check_columns, render, rich_table
    from cnnlab.zoo.target import parse_input_size

    if args.batch < 1:
        raise CnnlabError(f"--batch {args.batch}: must be at least 1")
    if args.depth is not None and args.depth < 1:
        raise CnnlabError(f"--depth {args.depth}: must be at least 1")
    inputs = args.input or []
    if len(inputs) > 1 and ".py" not in args.target:
        raise CnnlabError(
            f"--input given {len(inputs)} times: only file.py:factory models take several inputs"
        )
    given = (args.target, inputs[0] if inputs else None, args.classes, args.option)
    if _is_run(args.target):
        target = _run_target(args)
    else:
        # A zoo model or spec is analysed from its spec, without building it (the spec path).
        target = build_for_analysis(*given, plan=len(inputs) <= 1)
    sizes = [target.input_size] + [parse_input_size(text) for text in inputs[1:]]
    dtypes = _dtypes(args.dtype, len(sizes))
    if target.plan is not None:
        result = analyze_spec(
            target.plan,
            batch=args.batch,
            dtype=dtypes[0],
            strict=args.strict,
            build=lambda: build_for_analysis(*given).model,
        )
    else:
        result = analyze(
            target.model,
            sizes if len(sizes) > 1 else sizes[0],
            batch=args.batch,
            dtype=dtypes if len(dtypes) > 1 else dtypes[0],
            strict=args.strict,
        )
    width = _table_width(args.width)
    columns = check_columns(args.columns.split(",")) if args.columns else None
    if args.format == "table" and sys.stdout.isatty():
        from rich.console import Console

        console = Console(width=width)
        title = f"{target.label}: {result.model}"
        console.print(rich_table(result, args.depth, title=title, width=width, columns=columns))
        console.print("[dim]" + "\n".join(_convention_lines(result, width)) + "[/dim]")
        return 0
    out = render(result, args.format, args.depth, width=width, columns=columns)
    sys.stdout.write(out)
    return 0


_MIN_WIDTH = 40


def _table_width(given: int | None) -> int:
    """--width, else the terminal's width ($COLUMNS first, as shells set it), else 200 when
    piped with no $COLUMNS (a log keeps whole rows)."""
    import os
    import shutil

    if given is not None:
        if given < _MIN_WIDTH:
            raise CnnlabError(f"--width {given}: expected at least {_MIN_WIDTH} characters")
        return given
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return max(shutil.get_terminal_size((200, 24)).columns, _MIN_WIDTH)
    return 200


# ------------------------------------------------------------------------------------- arith


def arith_lines(a: WindowArithmetic) -> list[str]:
    """The lines `cnnlab arith` prints for a worked window (see cnnlab.viz.arithmetic)."""
    what = "pool" if a.pool else "filter"
    lines = []
    if a.dilation != 1:
        lines.append(f"dilation {a.dilation}: a {a.kernel}-tap window spans {a.span} cells")
    if a.ceil:
        lines.append(
            f"output = ceil((N - F + 2P)/S) + 1 = {a.fit.formula()} -> {a.output} (ceil_mode)"
        )
    else:
        lines.append(f"output = (N - F + 2P)/S + 1 = {a.fit.formula()}")
    lines.append(
        f"{a.size}x{a.size} input, {a.kernel}x{a.kernel} {what}, stride {a.stride}, pad "
        f"{a.padding} -> {a.output}x{a.output} output" + (" (exact fit)" if a.exact else "")
    )
    if a.pool:
        lines.append("pooling: depth unchanged (D2 = D1), no parameters")
    p = a.params
    if p is not None:
        k = a.kernel
        lines.append(
            f"parameters: {k}*{k}*{p.depth} + 1 = {p.per_filter + 1} per filter, "
            f"({k}*{k}*{p.depth})*{p.filters} = {p.weights:,} weights + {p.filters} "
            f"biases = {p.total:,}"
        )
        lines.append(f"output volume: {a.output}x{a.output}x{p.filters}")
    if a.same is not None:
        lines.append(f"same size at stride 1: pad (F-1)/2 = {a.same} ({a.size} -> {a.same_output})")
    return lines


def _arith(args: argparse.Namespace) -> int:
    from cnnlab.viz.arithmetic import window_arithmetic

    if args.depth is not None or args.filters is not None:
        if args.pool:
            raise CnnlabError("--depth/--filters give a convolution's parameters; drop --pool")
        if args.depth is None or args.filters is None or args.depth < 1 or args.filters < 1:
            raise CnnlabError("give both --depth D1 and --filters K (positive) for parameters")
    worked = window_arithmetic(
        args.input,
        args.filter,
        args.stride,
        args.pad,
        args.dilation,
        pool=args.pool,
        ceil=args.ceil,
        same=args.same,
        depth=args.depth,
        filters=args.filters,
    )
    sys.stdout.write("\n".join(arith_lines(worked)) + "\n")
    return 0


# ----------------------------------------------------------------------------------- lecture


def _lecture(args: argparse.Namespace) -> int:
    from cnnlab.course import TABLES, lecture_tables, render_tables

    if args.table is not None and args.table not in TABLES:
        raise CnnlabError(f"--table {args.table!r}: one of {', '.join(TABLES)}")
    tables = lecture_tables(None if args.table is None else [args.table])
    if args.format == "json":
        sys.stdout.write(json.dumps([t.to_dict() for t in tables], indent=1) + "\n")
    else:
        sys.stdout.write(render_tables(tables, markdown=args.format == "markdown"))
    return 0
