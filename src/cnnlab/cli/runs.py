"""Commands that use a finished run: ``eval``, ``predict``, ``ensemble``, ``export``, ``runs``.

RUN is the folder ``cnnlab train`` wrote.  Each option's value is checked here, so that a
wrong one is one ``error:`` line (exit status 2) naming the option and the valid values.
Tables fit 80 columns.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from cnnlab.cli._format import pct
from cnnlab.errors import CnnlabError

_WIDTH = 80
_WEIGHTS = ("best", "final")
_SPLITS = ("test", "val", "train")
_TABLE_FORMATS = ("table", "json")
_EXPORT_FORMATS = ("onnx", "torchscript", "safetensors")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a run: loss, top-1/top-5 error, per-class accuracy, confusion matrix",
        description="Evaluate a run's weights on a split: loss, top-1 and top-5 error, "
        "accuracy per class and the confusion matrix. 'val' is exactly the validation "
        "images the run held out (its seed and val_split), 'train' the images it trained on.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (cnnlab train --out)")
    _data_options(p)
    p.add_argument("--split", default="test", metavar="|".join(_SPLITS), help="default: test")
    _weights_option(p)
    _format_option(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "predict",
        help="classify PNG/JPEG files with a run",
        description="Class names with probabilities for image files. Images of another size "
        "or colour mode are converted as image folders are: colour to grey by ITU-R 601 luma "
        "(or grey to RGB), scaled to cover the run's input and centre-cropped; --strict "
        "refuses them instead.",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="PNG, JPEG, BMP, GIF or WEBP file")
    p.add_argument("--top", default="5", metavar="K", help="classes shown (default 5)")
    p.add_argument("--strict", action="store_true", help="refuse images needing conversion")
    _weights_option(p)
    _format_option(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "ensemble",
        help="average the softmax outputs of several runs; each model's test error beside it",
        description="Average the softmax outputs of several runs (same classes and input "
        "shape) on the test split and print each model's error beside the ensemble's, as "
        "Krizhevsky et al. (2012) did with 5 and 7 AlexNets.",
    )
    p.add_argument("runs", metavar="RUN", nargs="+", help="two or more run folders")
    _data_options(p)
    _weights_option(p)
    _format_option(p)
    p.set_defaults(func=_ensemble)

    p = sub.add_parser(
        "export",
        help="export a run's model to ONNX, TorchScript or safetensors",
        description="Export a run's model. ONNX has a dynamic batch dimension and is checked "
        "by onnx.checker and against PyTorch with onnxruntime before it is written (needs "
        "pip install 'cnnlab[export]').",
    )
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--format", required=True, metavar="|".join(_EXPORT_FORMATS))
    p.add_argument("--out", metavar="FILE", help="default: RUN/export/<weights>.<suffix>")
    _weights_option(p)
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "runs",
        help="a table of the runs in a folder",
        description="Model, dataset, recipe, epochs, best validation and test accuracy and "
        "training time of each run in a folder; other folders are counted and skipped.",
    )
    p.add_argument("folder", metavar="DIR", nargs="?", default="runs", help="default: runs")
    _format_option(p)
    p.set_defaults(func=_runs)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="D", help="dataset (default: the run's own)")
    p.add_argument("--data-dir", metavar="DIR", help="look for the dataset here first")


def _weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="best", metavar="|".join(_WEIGHTS), help="default: best")


def _format_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", metavar="|".join(_TABLE_FORMATS))


def _count(option: str, text: str) -> int:
    """A whole number >= 1 (checked here: an argparse type error would print two lines)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise CnnlabError(f"{option} {text!r}: expected a whole number >= 1")
    return value


def _choice(option: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise CnnlabError(f"{option} {value!r}: expected one of {', '.join(valid)}")
    return value


def _open(path: str) -> Any:
    from cnnlab.train.run import open_run

    return open_run(path)


# ---- rendering helpers -----------------------------------------------------------------------
def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[int] = (),
    shrink: dict[int, str] | None = None,
) -> str:
    """Plain text columns, two spaces apart; ``right`` columns right-aligned.  ``shrink``
    (column -> "start" or "end", the side to cut) names columns that may be cut, widest
    first, until the table fits 80 columns; a cut is marked with "~"."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    shrink = shrink or {}
    while sum(widths) + 2 * (len(widths) - 1) > _WIDTH:
        cuttable = [i for i in shrink if widths[i] > max(8, len(headers[i]))]
        if not cuttable:
            break
        widths[max(cuttable, key=lambda i: widths[i])] -= 1

    def cell(i: int, text: str) -> str:
        w = widths[i]
        if len(text) > w:
            text = "~" + text[len(text) - w + 1 :] if shrink.get(i) == "start" else _clip(text, w)
        return text.rjust(w) if i in right else text.ljust(w)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell(i, c) for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


# ---- eval -------------------------------------------------------------------------------------
def _eval(args: argparse.Namespace) -> int:
    from cnnlab.train.runs import evaluate_run

    split = _choice("--split", args.split, _SPLITS)
    weights = _choice("--weights", args.weights, _WEIGHTS)
    fmt = _choice("--format", args.format, _TABLE_FORMATS)
    run = _open(args.run)
    result = evaluate_run(run, split, weights=weights, data=args.data, data_dir=args.data_dir)
    dataset = args.data or run.dataset
    if fmt == "json":
        doc = {
            "run": str(run.path),
            "dataset": dataset,
            "split": split,
            "weights": weights,
            **result.to_dict(),
            "top1_error": 1 - result.top1,
            "top5_error": 1 - result.top5,
        }
        print(json.dumps(doc, indent=1))
        return 0
    print(run.path)
    print(f"{run.record.get('target')}, {weights} weights")
    print(f"{dataset}, {split} split, {result.n:,} images")
    print(
        f"loss {result.loss:.4f}   top-1 error {pct(1 - result.top1)}   "
        f"top-5 error {pct(1 - result.top5)}"
    )
    print()
    labels = [f"{i} {_clip(name, 18)}" for i, name in enumerate(result.classes)]
    counts = [sum(row) for row in result.confusion]
    rows = [
        [label, "-" if acc != acc else f"{100 * acc:.1f}%", f"{n:,}"]
        for label, acc, n in zip(labels, result.per_class, counts, strict=True)
    ]
    print(_table(["class", "accuracy", "images"], rows, right=(1, 2)))
    print()
    print(_confusion(result.confusion, labels))
    return 0


def _confusion(matrix: list[list[int]], labels: list[str]) -> str:
    """The confusion matrix as rows of counts within 80 columns, or, when the classes do not
    fit, its largest off-diagonal cells."""
    k = len(matrix)
    label_w = max(len(s) for s in labels)
    cell = max(len(str(max(max(r) for r in matrix))), len(str(k - 1))) + 1
    if label_w + 2 + k * cell <= _WIDTH:
        head = " " * (label_w + 2) + "".join(str(j).rjust(cell) for j in range(k))
        lines = ["confusion matrix (rows: true class, columns: predicted class)", head.rstrip()]
        for label, row in zip(labels, matrix, strict=True):
            lines.append(label.ljust(label_w + 2) + "".join(str(v).rjust(cell) for v in row))
        return "\n".join(lines)
    pairs = sorted(
        ((matrix[i][j], i, j) for i in range(k) for j in range(k) if i != j and matrix[i][j]),
        reverse=True,
    )[:10]
    lines = [
        f"confusion matrix: {k} classes do not fit {_WIDTH} columns (--format json has it "
        "all); the most frequent confusions:"
    ]
    rows = [[f"{n:,}", labels[i], labels[j]] for n, i, j in pairs]
    lines.append(_table(["images", "true class", "predicted as"], rows, right=(0,)))
    return "\n".join(lines)


# ---- predict ----------------------------------------------------------------------------------
def _predict(args: argparse.Namespace) -> int:
    from cnnlab.train.predict import predict_files

    weights = _choice("--weights", args.weights, _WEIGHTS)
    fmt = _choice("--format", args.format, _TABLE_FORMATS)
    top = _count("--top", args.top)
    run = _open(args.run)
    results = predict_files(run, args.images, top=top, weights=weights, strict=args.strict)
    if fmt == "json":
        print(json.dumps([r.to_dict() for r in results], indent=1))
        return 0
    for n, r in enumerate(results):
        if n:
            print()
        print(f"{r.path}" + (f"  (converted: {r.converted})" if r.converted else ""))
        name_w = max(len(c) for c, _ in r.top)
        for cls, p in r.top:
            print(f"  {cls.ljust(name_w)}  {100 * p:6.2f}%")
    return 0


# ---- ensemble ---------------------------------------------------------------------------------
def _ensemble(args: argparse.Namespace) -> int:
    from cnnlab.train.ensemble import ensemble_runs

    weights = _choice("--weights", args.weights, _WEIGHTS)
    fmt = _choice("--format", args.format, _TABLE_FORMATS)
    if len(args.runs) < 2:
        raise CnnlabError(f"an ensemble needs at least 2 runs, got {len(args.runs)}")
    runs = [_open(p) for p in args.runs]
    result = ensemble_runs(runs, data=args.data, data_dir=args.data_dir, weights=weights)
    m = len(result.members)
    mean_top1 = sum(s.top1 for s in result.members) / m
    mean_top5 = sum(s.top5 for s in result.members) / m
    if fmt == "json":
        doc = result.to_dict()
        doc["mean_member"] = {"top1": mean_top1, "top5": mean_top5}
        print(json.dumps(doc, indent=1))
        return 0
    n = result.ensemble.n
    print(f"{m} models ({weights} weights), their softmax outputs averaged")
    print(f"{result.dataset}, {result.split} split, {n:,} images")
    rows = [
        [str(p), pct(1 - s.top1), pct(1 - s.top5), f"{s.loss:.4f}"]
        for p, s in zip(result.runs, result.members, strict=True)
    ]
    rows.append([f"mean of the {m} models", pct(1 - mean_top1), pct(1 - mean_top5), ""])
    e = result.ensemble
    rows.append([f"ensemble of {m}", pct(1 - e.top1), pct(1 - e.top5), f"{e.loss:.4f}"])
    headers = ["model", "top-1 error", "top-5 error", "loss"]
    print(_table(headers, rows, right=(1, 2, 3), shrink={0: "start"}))
    return 0


# ---- export -----------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from cnnlab.train.export import export_run

    fmt = _choice("--format", args.format, _EXPORT_FORMATS)
    weights = _choice("--weights", args.weights, _WEIGHTS)
    run = _open(args.run)
    result = export_run(run, fmt, args.out, weights=weights)
    size = result.bytes / 1e6
    print(f"wrote {result.path} ({fmt}, {size:.2f} MB, {weights} weights): {result.checked}")
    return 0


# ---- runs -------------------------------------------------------------------------------------
def _runs(args: argparse.Namespace) -> int:
    from cnnlab.train.runs import list_runs

    fmt = _choice("--format", args.format, _TABLE_FORMATS)
    table = list_runs(args.folder)
    if fmt == "json":
        doc = {
            "runs": [r.to_dict() for r in table.rows],
            "skipped": [{"path": str(p), "why": why} for p, why in table.skipped],
        }
        print(json.dumps(doc, indent=1))
        return 0
    datasets = {r.dataset for r in table.rows}
    one_dataset = len(datasets) == 1  # then said once above the table, leaving room
    headers = ["run", "model", "dataset", "recipe", "epochs", "best val", "test", "time"]
    rows = [
        [
            r.path.name,
            r.model,
            r.dataset,
            r.recipe,
            str(r.epochs) + ("*" if r.stopped else ""),
            pct(r.best_val_top1),
            pct(r.test_top1),
            _duration(r.seconds),
        ]
        for r in table.rows
    ]
    if one_dataset:
        headers.pop(2)
        rows = [r[:2] + r[3:] for r in rows]
    n = len(rows)
    where = f"{n} run{'s' if n != 1 else ''} in {table.folder}"
    if rows:
        print(where + (f", all on {next(iter(datasets))}" if one_dataset else ""))
        shrink = {0: "start", 1: "end"} if one_dataset else {0: "start", 1: "end", 2: "end"}
        right = range(len(headers) - 4, len(headers))
        print(_table(headers, rows, right=tuple(right), shrink=shrink))
    else:
        print(f"no runs in {table.folder}")
    if any(r.stopped for r in table.rows):
        print("* stopped early: " + ", ".join(sorted({r.stopped for r in table.rows if r.stopped})))
    if table.skipped:
        names = ", ".join(p.name for p, _ in table.skipped[:5])
        more = ", ..." if len(table.skipped) > 5 else ""
        print(f"{len(table.skipped)} folder(s) skipped, not runs: {names}{more}")
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
