"""`cnnlab models` (the zoo with its published numbers) and `cnnlab show` (its layers)."""

from __future__ import annotations

import argparse
import json
import re
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the architecture zoo with the papers' numbers",
        description="List registered models: parameters at the native input, the input, the "
        "paper and its published top-5 error.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="glob, e.g. 'resnet*' (default: all)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.set_defaults(func=_models)

    p = sub.add_parser(
        "show",
        help="print a network's layers",
        description="Print the layers of a zoo model (by name), of a network written in the "
        "compact notation (e.g. 'conv3-64, relu, maxpool, fc-10'), or of path/to/file.py:factory.",
    )
    p.add_argument("target", help="model name, spec text, or file.py:factory")
    p.add_argument("--input", help="input size CxHxW (or H) to build for (default: native)")
    p.add_argument("--classes", type=int, help="number of classes (default: the paper's)")
    p.add_argument(
        "--option", action="append", metavar="KEY=VALUE", help="builder option, e.g. variant=v1"
    )
    p.add_argument("--depth", type=int, default=None, help="deepest nesting level to list")
    p.set_defaults(func=_show)


# ------------------------------------------------------------------------------------ models


def _model_rows(pattern: str) -> list[dict]:
    # the stored facts: listing the zoo imports no torch and builds nothing
    from cnnlab.zoo._facts import facts

    rows = []
    for f in facts(pattern):
        c, h, w = f["input_size"]
        rows.append(
            {
                "name": f["name"],
                "aliases": list(f["aliases"]),
                "params": f["params"],
                "macs": f["macs"],
                "input": f"{w}x{h}x{c}",
                "classes": f["num_classes"],
                "paper": f["paper"],
                "top5": f["top5"],
            }
        )
    return rows


def _models(args: argparse.Namespace) -> int:
    from cnnlab.errors import UnknownModelError
    from cnnlab.zoo._facts import FACTS

    rows = _model_rows(args.pattern)
    if not rows:
        names = ", ".join(f["name"] for f in FACTS[:6])
        raise UnknownModelError(f"no model matches {args.pattern!r}; names look like {names}...")
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    headers = ["model", "params", "MACs", "input WxHxD", "paper", "published top-5 error"]
    full = args.format == "markdown"  # a document has room for the citation and protocol
    body = [
        [
            r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else ""),
            f"{r['params']:,}",
            _giga(r["macs"]),
            r["input"] + ("" if r["classes"] == 1000 else f", {r['classes']} classes"),
            r["paper"] if full else _short_paper(r["paper"]),
            (r["top5"] or "") if full else (r["top5"] or "").split(" (")[0],
        ]
        for r in rows
    ]
    if args.format == "markdown":
        print(_markdown(headers, body))
    else:
        _rich_table(headers, body, right=(1, 2), caption=_MACS_NOTE)
    return 0


_MACS_NOTE = (
    "params: exact count at the native input. MACs: multiply-adds of convolutions and linear "
    "layers at that input (FLOPs = 2 x MACs). Top-5: the paper's headline result; "
    "`--format markdown` or `json` gives its protocol and source."
)


def _short_paper(citation: str) -> str:
    """'LeCun, Bottou, Bengio & Haffner 1998, Gradient-...' -> 'LeCun et al. 1998'."""
    match = re.match(r"^(.*?)\b(\d{4})\b", citation)
    if not match:
        return citation
    authors, year = match.group(1).strip(" ,"), match.group(2)
    names = re.split(r",\s*|\s+&\s+|\s+and\s+", authors)
    if authors.endswith("et al."):
        return f"{authors} {year}"
    if len(names) > 2:
        return f"{names[0]} et al. {year}"
    return f"{' & '.join(names)} {year}"


def _giga(macs: int | None) -> str:
    if macs is None:
        return ""
    return f"{macs / 1e9:.3f} G" if macs >= 1e8 else f"{macs / 1e6:.2f} M"


# ------------------------------------------------------------------------------------ show


def _show(args: argparse.Namespace) -> int:
    from cnnlab.cli.analysis import build_for_analysis

    # on the meta device, as `summary` builds: `show vgg16 --input 3x8192x8192` allocates nothing
    target = build_for_analysis(args.target, args.input, args.classes, args.option)
    model = target.model
    c, h, w = target.input_size
    total = sum(p.numel() for p in model.parameters())
    if target.info is not None:
        heading = f"{target.label}: {target.info.paper}"
    elif target.spec_text is not None:
        heading = f"spec: {target.spec_text}"
    else:
        heading = target.label
    print(heading)
    print(f"input {w}x{h}x{c}, {total:,} parameters")
    rows = []
    for path, module in model.named_modules():
        if not path:
            continue
        depth = path.count(".")
        if args.depth is not None and depth >= args.depth:
            continue
        own = sum(p.numel() for p in module.parameters())
        name = "  " * depth + path.rsplit(".", 1)[-1]
        rows.append([name, type(module).__name__, module.extra_repr(), f"{own:,}" if own else ""])
    _rich_table(["layer", "type", "hyperparameters", "params"], rows, right=(3,))
    return 0


# ------------------------------------------------------------------------------------ render


def _rich_table(headers, rows, right=(), caption=None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(caption=caption, caption_justify="left", show_lines=False)
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if i in right else "left", overflow="fold")
    for r in rows:
        table.add_row(*r)
    # Piped output (logs, `| less`) has no width to fit; keep rows on one line there.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _markdown(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)
