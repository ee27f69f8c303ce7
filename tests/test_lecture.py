"""Every number of the lecture that is a property of a layer or a network, computed by the
analysis of cnnlab's models; the lecture's own slips are asserted as slips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis import analyze
from cnnlab.analysis.render import lecture_lines, lecture_number
from cnnlab.course import lecture_tables
from cnnlab.errors import GeometryError


def _meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return cnnlab.create_model(name, **options)


def _conv(c_in, c_out, k, stride=1, padding=0) -> nn.Module:
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(c_in, c_out, k, stride, padding))
    return net


@pytest.mark.parametrize("stride,out", [(1, 5), (2, 3)])
def test_7x7_input_3x3_filter(stride, out):
    a = analyze(_conv(1, 1, 3, stride), (1, 7, 7))
    assert a.row("conv").output_shape[2:] == (out, out)
    assert a.row("conv").fit == "exact"


def test_7x7_stride_3_does_not_fit():
    with pytest.raises(GeometryError, match=r"\(7 - 3 \+ 2\*0\)/3 \+ 1 = 2.33 is not a whole"):
        analyze(_conv(1, 1, 3, 3), (1, 7, 7), strict=True)


def test_7x7_padded_by_1_keeps_7x7():
    a = analyze(_conv(1, 1, 3, 1, 1), (1, 7, 7))
    assert a.row("conv").output_shape[2:] == (7, 7)


@pytest.mark.parametrize("k,p", [(3, 1), (5, 2), (7, 3)])
def test_same_padding_keeps_the_size(k, p):
    assert analyze(_conv(1, 1, k, 1, p), (1, 32, 32)).row("conv").output_shape[2:] == (32, 32)


def test_32x32x3_ten_5x5_filters_pad_2():
    a = analyze(_conv(3, 10, 5, 1, 2), (3, 32, 32))
    row = a.row("conv")
    assert row.volume == "32x32x10"
    assert (row.params, row.weights, row.biases) == (760, 750, 10)


def test_unpadded_5x5_convs_shrink_32_28_24():
    net = nn.Sequential(nn.Conv2d(3, 6, 5), nn.Conv2d(6, 6, 5))
    a = analyze(net, (3, 32, 32))
    assert [a.row(p).output_shape[-1] for p in ("0", "1")] == [28, 24]
    assert a.row("0").volume == "28x28x6"  # 6 filters 5x5 on 32x32x3


def test_max_pool_example():
    x = torch.tensor([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]).view(1, 1, 4, 4)
    net = nn.Sequential(nn.MaxPool2d(2, 2))
    a = analyze(net, (1, 4, 4))
    assert a.row("0").output_shape == (1, 1, 2, 2) and a.row("0").params == 0
    assert F.max_pool2d(x, 2, 2).view(2, 2).tolist() == [[6, 8], [3, 4]]


_ALEXNET = [
    ("conv1", "55x55x96"), ("pool1", "27x27x96"), ("norm1", "27x27x96"),
    ("conv2", "27x27x256"), ("pool2", "13x13x256"), ("norm2", "13x13x256"),
    ("conv3", "13x13x384"), ("conv4", "13x13x384"), ("conv5", "13x13x256"),
    ("pool5", "6x6x256"), ("fc6", "4096"), ("fc7", "4096"), ("fc8", "1000"),
]  # fmt: skip


def test_alexnet_shapes_and_conv1_weights():
    a = analyze(_meta("alexnet"), (3, 227, 227))
    assert [(p, a.row(p).volume) for p, _ in _ALEXNET] == _ALEXNET
    assert a.row("conv1").weights == 34_848  # (11*11*3)*96, the slide's "35K"
    assert a.row("pool1").params == 0
    assert a.totals.params == 60_965_224


_VGG16 = [  # the slide's rows: W x H x D, memory (values), params without biases
    ("224x224x64", "3.2M", 1_728), ("224x224x64", "3.2M", 36_864), ("112x112x64", "800K", 0),
    ("112x112x128", "1.6M", 73_728), ("112x112x128", "1.6M", 147_456), ("56x56x128", "400K", 0),
    ("56x56x256", "800K", 294_912), ("56x56x256", "800K", 589_824),
    ("56x56x256", "800K", 589_824), ("28x28x256", "200K", 0),
    ("28x28x512", "400K", 1_179_648), ("28x28x512", "400K", 2_359_296),
    ("28x28x512", "400K", 2_359_296), ("14x14x512", "100K", 0),
    ("14x14x512", "100K", 2_359_296), ("14x14x512", "100K", 2_359_296),
    ("14x14x512", "100K", 2_359_296), ("7x7x512", "25K", 0),
    ("4096", "4096", 102_760_448), ("4096", "4096", 16_777_216), ("1000", "1000", 4_096_000),
]  # fmt: skip


def test_every_vgg16_row_and_the_true_total_memory():
    a = analyze(_meta("vgg16"), (3, 224, 224))
    lines, total = lecture_lines(a)
    rows = [r for r, _ in lines if r is not None]
    got = [(r.volume, lecture_number(r.activations), r.weights) for r in rows]
    assert got == _VGG16
    assert lecture_number(a.totals.input_values) == "150K"
    assert lines[1][1] == (
        "CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*3)*64 = 1,728 (+64 biases)"
    )
    assert lines[-3][1].startswith("FC: [1x1x4096] memory: 4096 params: 7*7*512*4096")
    # The slide's per-layer entries add up to 15.2M values, not the "24M" it prints.
    assert total == 15_237_608
    assert round(a.totals.params / 1e6) == 138


@pytest.mark.parametrize(
    "name,millions", [("vgg_a", 133), ("vgg_a_lrn", 133), ("vgg_b", 133), ("vgg_c", 134),
                      ("vgg_d", 138), ("vgg_e", 144)],
)  # fmt: skip
def test_vgg_configuration_totals(name, millions):
    a = analyze(_meta(name), (3, 224, 224))
    assert round(a.totals.params / 1e6) == millions


# GoogLeNet Table 1 recomputed for the faithful model:
# row -> layers, params with bias, MACs.
_GOOGLENET = {
    "conv 7x7/2": (("conv1",), 9_472, 118_013_952),
    "conv 3x3/1": (("conv2_reduce", "conv2"), 114_944, 359_661_568),
    "3a": (("inception3a",), 163_696, 128_049_152),
    "3b": (("inception3b",), 388_736, 304_267_264),
    "4a": (("inception4a",), 376_176, 73_608_192),
    "4b": (("inception4b",), 449_160, 87_908_352),
    "4c": (("inception4c",), 510_104, 99_850_240),
    "4d": (("inception4d",), 605_376, 118_515_712),
    "4e": (("inception4e",), 868_352, 169_996_288),
    "5a": (("inception5a",), 1_043_456, 51_079_168),
    "5b": (("inception5b",), 1_444_080, 70_697_984),
    "linear": (("fc",), 1_025_000, 1_024_000),
}


def test_googlenet_rows():
    a = analyze(_meta("googlenet"), (3, 224, 224))
    for row, (paths, params, macs) in _GOOGLENET.items():
        assert sum(a.row(p).params for p in paths) == params, row
        assert sum(a.row(p).macs for p in paths) == macs, row
    assert [a.row(f"inception{n}").volume for n in ("3a", "3b", "4e", "5b")] == [
        "28x28x256", "28x28x480", "14x14x832", "7x7x1024"]  # fmt: skip
    assert a.totals.params == 6_998_552


def test_googlenet_table_rows_that_contradict_their_filter_counts_are_flagged():
    (table,) = lecture_tables(["googlenet"])
    wrong = {(r.label, r.quantity) for r in table.wrong()}
    assert wrong == {
        ("convolution 7x7/2", "params"), ("convolution 7x7/2", "MACs"),
        ("inception (4c)", "params"), ("inception (5a)", "params"), ("inception (5a)", "MACs"),
    }  # fmt: skip
    assert not [r for r in table.rows if r.status == "differs"]


@pytest.mark.parametrize(
    "depth,giga,exact",
    [(18, 1.8, 1_814_073_344), (34, 3.6, 3_663_761_408), (50, 3.8, 3_857_973_248),
     (101, 7.6, 7_570_194_432), (152, 11.3, 11_282_415_616)],
)  # fmt: skip
def test_resnet_macs_paper_layout(depth, giga, exact):
    options = {"variant": "v1"} if depth >= 50 else {}
    a = analyze(_meta(f"resnet{depth}", **options), (3, 224, 224))
    assert a.totals.macs == exact  # v1 (the paper's layout)
    g = a.totals.macs / 1e9
    # The paper rounds some (7.57 -> 7.6) and truncates others (3.66 -> 3.6).
    assert giga in (round(g, 1), int(g * 10) / 10)
    if depth == 50:
        assert analyze(_meta("resnet50"), (3, 224, 224)).totals.macs == 4_089_184_256  # v1.5


@pytest.mark.parametrize(
    "depth,params", [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018),
                     (110, 1_727_962)],
)  # fmt: skip
def test_cifar_resnet_params(depth, params):
    a = analyze(_meta(f"resnet{depth}"), (3, 32, 32))
    assert a.totals.params == params


def test_lecture_tables_mark_only_the_known_slips():
    tables = lecture_tables([n for n in ("arithmetic", "alexnet", "vgg16", "vgg_totals",
                                         "googlenet", "resnet")])  # fmt: skip
    statuses = {(t.name, r.label, r.quantity): r.status for t in tables for r in t.rows}
    assert statuses[("vgg16", "TOTAL", "memory")] == "lecture wrong"
    assert [k for k, v in statuses.items() if v == "differs"] == []
    wrong = sorted(k[0] for k, v in statuses.items() if v == "lecture wrong")
    assert wrong == ["googlenet"] * 5 + ["vgg16"]
