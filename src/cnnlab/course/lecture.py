"""The lecture's tables, regenerated from cnnlab's zoo and set beside the lecture's numbers.

Each table compares what cnnlab computes (the analysis of the zoo's models) with what the
lecture (the course digest, and the papers' tables it quotes) prints.  Each row
gets a status:

* ``ok``: equal as the lecture writes it (its rounding: "3.2M", "35K", "138M");
* ``rounded``: the lecture's figure is a rounding of ours within its own precision;
* ``lecture wrong``: the lecture's figure does not follow from its own layer definitions
  (VGG-16's 24M total memory; GoogLeNet Table 1's conv1, 4c and 5a rows), with why.

It builds every model of the zoo on the meta device and analyzes it; the analysis itself
knows nothing of the zoo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis.core import analyze
from cnnlab.analysis.meta import build_on_meta
from cnnlab.analysis.render import lecture_lines, lecture_number
from cnnlab.analysis.result import Analysis
from cnnlab.analysis.specpath import analyze_spec
from cnnlab.errors import CnnlabError, GeometryError
from cnnlab.geometry import check_fit, fit, same_padding
from cnnlab.zoo import create_model, model_info, model_spec

__all__ = ["TABLES", "LectureRow", "LectureTable", "lecture_tables", "render_tables"]

OK, ROUNDED, WRONG, DIFFERS = "ok", "rounded", "lecture wrong", "differs"


@dataclass(frozen=True)
class LectureRow:
    label: str  # the lecture's row name
    quantity: str  # what is compared ("output", "memory", "params", "MACs")
    ours: str
    lecture: str
    status: str
    note: str = ""


@dataclass(frozen=True)
class LectureTable:
    name: str
    title: str
    source: str
    rows: tuple[LectureRow, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}

    def wrong(self) -> list[LectureRow]:
        return [r for r in self.rows if r.status == WRONG]


def _build(name: str, **options: Any) -> nn.Module:
    try:
        return build_on_meta(create_model, name, **options)
    except CnnlabError:
        raise
    except Exception:  # noqa: BLE001 - a builder that computes with its initial values
        return create_model(name, **options)


def _analyze(name: str, **options: Any) -> Analysis:
    """The analysis of a zoo model: from its spec (not built), as ``cnnlab summary``."""
    plan = model_spec(name, **options)
    if plan is None:
        return analyze(_build(name, **options), model_info(name).input_size)
    return analyze_spec(plan, build=lambda: _build(name, **options))


def _status(ours: str, lecture: str) -> str:
    return OK if ours == lecture else DIFFERS


# ---------------------------------------------------------------------------- arithmetic


def _arithmetic() -> LectureTable:
    rows = []
    for stride, expect in ((1, "5x5"), (2, "3x3")):
        f = fit(7, 3, stride)
        ours = f"{f.output}x{f.output}"
        rows.append(
            LectureRow(
                f"7x7 input, 3x3 filter, stride {stride}",
                "output",
                ours,
                expect,
                _status(ours, expect),
                f.formula(),
            )
        )
    try:
        check_fit(7, 3, 3, where="7x7, 3x3, stride 3")
        ours = "fits"
    except GeometryError as exc:
        ours = "does not fit"
        note = str(exc)
    rows.append(
        LectureRow(
            "7x7 input, 3x3 filter, stride 3",
            "output",
            ours,
            "does not fit",
            _status(ours, "does not fit"),
            note,
        )
    )
    f = fit(7, 3, 1, 1)
    ours = f"{f.output}x{f.output}"
    rows.append(
        LectureRow(
            "7x7 input, 3x3 filter, stride 1, pad 1",
            "output",
            ours,
            "7x7",
            _status(ours, "7x7"),
            f.formula(),
        )
    )
    for k, p in ((3, 1), (5, 2), (7, 3)):
        ours = str(same_padding(k))
        rows.append(
            LectureRow(
                f"same padding for F={k}", "padding", ours, str(p), _status(ours, str(p)), "(F-1)/2"
            )
        )
    # 32x32x3 input, ten 5x5 filters, stride 1, pad 2 (the lecture's worked example).
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(3, 10, 5, padding=2))
    a = analyze(net, (3, 32, 32))
    conv = a.row("conv")
    rows.append(
        LectureRow(
            "32x32x3, ten 5x5 filters, pad 2",
            "output",
            conv.volume,
            "32x32x10",
            _status(conv.volume, "32x32x10"),
        )
    )
    rows.append(
        LectureRow(
            "32x32x3, ten 5x5 filters, pad 2",
            "params",
            f"{conv.params}",
            "760",
            _status(str(conv.params), "760"),
            "(5*5*3 + 1) * 10",
        )
    )
    # Max pooling 2x2 stride 2 on the lecture's 4x4 example (values: a real 16-value pooling).
    x = torch.tensor([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    pooled = F.max_pool2d(x.view(1, 1, 4, 4), 2, 2).view(2, 2).int().tolist()
    rows.append(
        LectureRow(
            "max pool 2x2/2 of the 4x4 example",
            "values",
            str(pooled),
            "[[6, 8], [3, 4]]",
            _status(str(pooled), "[[6, 8], [3, 4]]"),
        )
    )
    return LectureTable(
        "arithmetic", "Spatial arithmetic of a conv layer", "lecture section 3-4", tuple(rows)
    )


# ------------------------------------------------------------------------------- AlexNet

_ALEXNET = (  # (lecture label, cnnlab layer, output W x H x D)
    ("CONV1 96 11x11/4 pad 0", "conv1", "55x55x96"),
    ("MAX POOL1 3x3/2", "pool1", "27x27x96"),
    ("NORM1", "norm1", "27x27x96"),
    ("CONV2 256 5x5/1 pad 2", "conv2", "27x27x256"),
    ("MAX POOL2 3x3/2", "pool2", "13x13x256"),
    ("NORM2", "norm2", "13x13x256"),
    ("CONV3 384 3x3/1 pad 1", "conv3", "13x13x384"),
    ("CONV4 384 3x3/1 pad 1", "conv4", "13x13x384"),
    ("CONV5 256 3x3/1 pad 1", "conv5", "13x13x256"),
    ("MAX POOL3 3x3/2", "pool5", "6x6x256"),
    ("FC6", "fc6", "4096"),
    ("FC7", "fc7", "4096"),
    ("FC8", "fc8", "1000"),
)


def _alexnet() -> LectureTable:
    a = _analyze("alexnet")
    rows = [
        LectureRow(
            "INPUT", "output", _input_volume(a), "227x227x3", _status(_input_volume(a), "227x227x3")
        )
    ]
    for label, path, vol in _ALEXNET:
        r = a.row(path)
        rows.append(LectureRow(label, "output", r.volume, vol, _status(r.volume, vol)))
    conv1 = a.row("conv1")
    rows.append(
        LectureRow(
            "CONV1",
            "params (weights)",
            f"{conv1.weights:,}",
            "35K",
            ROUNDED if round(conv1.weights / 1000) == 35 else DIFFERS,
            "(11*11*3)*96 = 34,848; with the 96 biases 34,944",
        )
    )
    rows.append(
        LectureRow(
            "POOL1",
            "params",
            str(a.row("pool1").params),
            "0",
            _status(str(a.row("pool1").params), "0"),
        )
    )
    return LectureTable(
        "alexnet",
        "AlexNet (227x227x3 input, the paper's two-GPU grouping)",
        "lecture 6; Krizhevsky et al. 2012",
        tuple(rows),
        (f"total: {a.totals.params:,} parameters, {a.totals.macs:,} MACs (paper: '60 million')",),
    )


def _input_volume(a: Analysis) -> str:
    c, *spatial = a.input_shape[1:]
    return "x".join(map(str, [*reversed(spatial), c]))


# -------------------------------------------------------------------------------- VGG-16

_VGG16 = (  # lecture row: (label, W x H x D, memory, params without biases)
    ("CONV3-64", "224x224x64", "3.2M", 1728),
    ("CONV3-64", "224x224x64", "3.2M", 36864),
    ("POOL2", "112x112x64", "800K", 0),
    ("CONV3-128", "112x112x128", "1.6M", 73728),
    ("CONV3-128", "112x112x128", "1.6M", 147456),
    ("POOL2", "56x56x128", "400K", 0),
    ("CONV3-256", "56x56x256", "800K", 294912),
    ("CONV3-256", "56x56x256", "800K", 589824),
    ("CONV3-256", "56x56x256", "800K", 589824),
    ("POOL2", "28x28x256", "200K", 0),
    ("CONV3-512", "28x28x512", "400K", 1179648),
    ("CONV3-512", "28x28x512", "400K", 2359296),
    ("CONV3-512", "28x28x512", "400K", 2359296),
    ("POOL2", "14x14x512", "100K", 0),
    ("CONV3-512", "14x14x512", "100K", 2359296),
    ("CONV3-512", "14x14x512", "100K", 2359296),
    ("CONV3-512", "14x14x512", "100K", 2359296),
    ("POOL2", "7x7x512", "25K", 0),
    ("FC", "1x1x4096", "4096", 102760448),
    ("FC", "1x1x4096", "4096", 16777216),
    ("FC", "1x1x1000", "1000", 4096000),
)
VGG16_SLIDE_TOTAL_MEMORY = "24M"  # the slide's total, see the module docstring


def _vgg16() -> LectureTable:
    a = _analyze("vgg16")
    lines, total = lecture_lines(a)
    rows = [
        LectureRow(
            "INPUT",
            "memory",
            lecture_number(a.totals.input_values),
            "150K",
            _status(lecture_number(a.totals.input_values), "150K"),
        )
    ]
    ours_rows = [r for r, _ in lines if r is not None]
    if len(ours_rows) != len(_VGG16):
        raise CnnlabError(f"vgg16 lists {len(ours_rows)} lecture rows, the lecture {len(_VGG16)}")
    for (label, vol, mem, params), r in zip(_VGG16, ours_rows, strict=True):
        v = r.volume if len(r.output_shape) > 2 else "1x1x" + str(r.output_shape[-1])
        m = lecture_number(r.activations)
        rows.append(LectureRow(label, "output", v, vol, _status(v, vol)))
        rows.append(LectureRow(label, "memory", m, mem, _status(m, mem), f"{r.activations:,}"))
        rows.append(
            LectureRow(
                label,
                "params",
                f"{r.weights:,}",
                f"{params:,}",
                _status(f"{r.weights:,}", f"{params:,}"),
                "without biases",
            )
        )
    rows.append(
        LectureRow(
            "TOTAL",
            "memory",
            f"{lecture_number(total, 3)} ({total:,})",
            VGG16_SLIDE_TOTAL_MEMORY,
            WRONG,
            "the slide's own per-layer entries add up to about 15.2M values (~58 MiB at 4 "
            "bytes), not 24M (~93 MB); a known slip of the widely copied slide",
        )
    )
    params = f"{round(a.totals.params / 1e6)}M"
    rows.append(
        LectureRow(
            "TOTAL",
            "params",
            f"{params} ({a.totals.params:,})",
            "138M",
            OK if params == "138M" else DIFFERS,
            "with biases",
        )
    )
    return LectureTable(
        "vgg16",
        "VGG-16 (configuration D) layer by layer",
        "lecture 6 (CS231n's slide)",
        tuple(rows),
        (
            "memory = values of the layer's output per image; params = weights (no biases), as "
            "the slide counts them",
        ),
    )


# ------------------------------------------------------------------------------- VGG A-E

_VGG_TOTALS = (
    ("A", "vgg_a", 133),
    ("A-LRN", "vgg_a_lrn", 133),
    ("B", "vgg_b", 133),
    ("C", "vgg_c", 134),
    ("D", "vgg_d", 138),
    ("E", "vgg_e", 144),
)


def _vgg_totals() -> LectureTable:
    rows = []
    for label, name, paper in _VGG_TOTALS:
        a = _analyze(name)
        ours = round(a.totals.params / 1e6)
        rows.append(
            LectureRow(
                f"VGG {label}",
                "params (millions)",
                f"{ours} ({a.totals.params:,})",
                str(paper),
                OK if ours == paper else DIFFERS,
            )
        )
    return LectureTable(
        "vgg_totals",
        "VGG configurations A-E: parameters",
        "lecture 6; Simonyan & Zisserman 2014, Table 2",
        tuple(rows),
    )


# ----------------------------------------------------------------------------- GoogLeNet

# GoogLeNet Table 1 (Szegedy et al. 2014): row -> (cnnlab layers, output, params K, ops M).
# The paper's K is 1024 weights (biases left out): 112K = 114,688/1024.
_GOOGLENET = (
    ("convolution 7x7/2", ("conv1",), "112x112x64", 2.7, 34),
    ("max pool 3x3/2", ("pool1",), "56x56x64", None, None),
    ("convolution 3x3/1", ("conv2_reduce", "conv2"), "56x56x192", 112, 360),
    ("max pool 3x3/2", ("pool2",), "28x28x192", None, None),
    ("inception (3a)", ("inception3a",), "28x28x256", 159, 128),
    ("inception (3b)", ("inception3b",), "28x28x480", 380, 304),
    ("max pool 3x3/2", ("pool3",), "14x14x480", None, None),
    ("inception (4a)", ("inception4a",), "14x14x512", 364, 73),
    ("inception (4b)", ("inception4b",), "14x14x512", 437, 88),
    ("inception (4c)", ("inception4c",), "14x14x512", 463, 100),
    ("inception (4d)", ("inception4d",), "14x14x528", 580, 119),
    ("inception (4e)", ("inception4e",), "14x14x832", 840, 170),
    ("max pool 3x3/2", ("pool4",), "7x7x832", None, None),
    ("inception (5a)", ("inception5a",), "7x7x832", 1072, 54),
    ("inception (5b)", ("inception5b",), "7x7x1024", 1388, 71),
    ("avg pool 7x7/1", ("avgpool",), "1x1x1024", None, None),
    ("linear", ("fc",), "1000", 1000, 1),
)
# Rows of Table 1 that do not follow from their own filter counts.
_GOOGLENET_WRONG = {
    ("convolution 7x7/2", "params"): "7*7*3*64 = 9,408 weights = 9.2K, not 2.7K",
    ("convolution 7x7/2", "MACs"): "112*112*64*7*7*3 = 118M multiply-adds, not 34M",
    ("inception (4c)", "params"): "its own filter counts give 509,440 weights = 497.5K",
    ("inception (5a)", "params"): "its own filter counts give 1,042,432 weights = 1018K",
    ("inception (5a)", "MACs"): "its own filter counts give 51.1M multiply-adds",
}


def _googlenet() -> LectureTable:
    a = _analyze("googlenet")
    rows = []
    for label, paths, out, paper_k, paper_m in _GOOGLENET:
        last = a.row(paths[-1])
        rows.append(LectureRow(label, "output", last.volume, out, _status(last.volume, out)))
        if paper_k is None:
            continue
        weights = sum(a.row(p).weights for p in paths)
        macs = sum(a.row(p).macs for p in paths)
        for quantity, ours_value, paper, unit in (
            ("params", weights / 1024, paper_k, "K"),
            ("MACs", macs / 1e6, paper_m, "M"),
        ):
            wrong = _GOOGLENET_WRONG.get((label, quantity))
            close = abs(ours_value - paper) <= max(0.025 * paper, 1.0)
            status = WRONG if wrong else (OK if close else DIFFERS)
            if status == OK and f"{ours_value:.0f}" != f"{paper:g}":
                status = ROUNDED
            rows.append(
                LectureRow(
                    label,
                    quantity,
                    f"{ours_value:.1f}{unit}",
                    f"{paper:g}{unit}",
                    status,
                    wrong or "",
                )
            )
    return LectureTable(
        "googlenet",
        "GoogLeNet Table 1 (params in K = 1024 weights; ops = multiply-adds)",
        "lecture 6; Szegedy et al. 2014, Table 1",
        tuple(rows),
        (
            f"total: {a.totals.params:,} parameters, {a.totals.macs:,} MACs (paper: about 5 "
            f"million parameters, 1.5 billion multiply-adds)",
        ),
    )


# -------------------------------------------------------------------------------- ResNet

_RESNET = ((18, 1.8), (34, 3.6), (50, 3.8), (101, 7.6), (152, 11.3))


def _resnet() -> LectureTable:
    rows = []
    notes = []
    for depth, paper in _RESNET:
        a = _analyze(f"resnet{depth}", variant="v1") if depth >= 50 else _analyze(f"resnet{depth}")
        ours = a.totals.macs / 1e9
        # The paper truncates: 3.66 G is printed as 3.6 and 3.86 G as 3.8.
        status = (
            OK
            if f"{ours:.1f}" == f"{paper}"
            else (ROUNDED if int(ours * 10) == round(paper * 10) else DIFFERS)
        )
        rows.append(
            LectureRow(
                f"ResNet-{depth}",
                "MACs (10^9)",
                f"{ours:.2f}",
                f"{paper}",
                status,
                f"{a.totals.macs:,} (paper layout v1: stride on the first 1x1)",
            )
        )
        if depth >= 50:
            b = _analyze(f"resnet{depth}")
            notes.append(
                f"ResNet-{depth} v1.5 (torchvision's stride on the 3x3): {b.totals.macs:,} MACs"
            )
    return LectureTable(
        "resnet",
        "ResNet multiply-adds at 224x224 (the paper's 'FLOPs')",
        "lecture 6; He et al. 2015, Table 1",
        tuple(rows),
        tuple(notes),
    )


_CIFAR = (
    (20, "0.27M"),
    (32, "0.46M"),
    (44, "0.66M"),
    (56, "0.85M"),
    (110, "1.7M"),
    (1202, "19.4M"),
)


def _cifar_resnet() -> LectureTable:
    rows = []
    for depth, paper in _CIFAR:
        a = _analyze(f"resnet{depth}")
        digits = len(paper.rstrip("M").split(".")[1])
        ours = f"{a.totals.params / 1e6:.{digits}f}M"
        rows.append(
            LectureRow(
                f"ResNet-{depth} (CIFAR-10)",
                "params",
                f"{ours} ({a.totals.params:,})",
                paper,
                OK if ours == paper else DIFFERS,
                "option A shortcuts",
            )
        )
    return LectureTable(
        "cifar_resnet", "CIFAR-10 ResNets: parameters", "He et al. 2015, Table 6", tuple(rows)
    )


TABLES = {
    "arithmetic": _arithmetic,
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "vgg_totals": _vgg_totals,
    "googlenet": _googlenet,
    "resnet": _resnet,
    "cifar_resnet": _cifar_resnet,
}


def lecture_tables(names: list[str] | None = None) -> list[LectureTable]:
    """The named tables (default: all, in lecture order)."""
    chosen = names or list(TABLES)
    unknown = [n for n in chosen if n not in TABLES]
    if unknown:
        raise CnnlabError(f"unknown lecture table(s) {unknown}; one of {', '.join(TABLES)}")
    return [TABLES[n]() for n in chosen]


_MARK = {OK: "ok", ROUNDED: "~ rounded", WRONG: "LECTURE WRONG", DIFFERS: "DIFFERS"}


def render_tables(tables: list[LectureTable], markdown: bool = False) -> str:
    out: list[str] = []
    for t in tables:
        if markdown:
            out += [f"### {t.title}", "", f"Source: {t.source}", ""]
            out += [
                "| row | quantity | cnnlab | lecture | status | note |",
                "|---|---|---:|---:|---|---|",
            ]
            out += [
                f"| {r.label} | {r.quantity} | {r.ours} | {r.lecture} | {_MARK[r.status]} "
                f"| {r.note.replace('|', '/')} |"
                for r in t.rows
            ]
            out += [""] + [f"- {n}" for n in t.notes] + [""]
            continue
        out += [f"== {t.title} ({t.source})"]
        w1 = max(len(r.label) for r in t.rows)
        w2 = max(len(r.quantity) for r in t.rows)
        w3 = max(len(r.ours) for r in t.rows)
        w4 = max(len(r.lecture) for r in t.rows)
        for r in t.rows:
            line = (
                f"  {r.label:<{w1}}  {r.quantity:<{w2}}  {r.ours:>{w3}}  {r.lecture:>{w4}}  "
                f"{_MARK[r.status]}"
            )
            if r.note and r.status != OK:
                line += f"  ({r.note})"
            out.append(line)
        out += [f"  {n}" for n in t.notes] + [""]
    return "\n".join(out) + "\n"
