"""The notation's kinds for the zoo's layers (LeNet-5's subsampling, connection table and zero
padding, adaptive average pooling) and the round trip of every zoo model (all of the registry).

A zoo model's text must parse back to a network with the same modules in the same order, the
same parameter count (the published one), the same state_dict keys and shapes and the same
output shape; the small ones also compute the same function with the zoo's weights.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from cnnlab.errors import GeometryError, SpecError
from cnnlab.layers import LENET5_C3_TABLE, ConnectionTableConv2d, Subsampling
from cnnlab.notation import (
    AdaptiveAvgPool,
    Conv,
    GlobalAvgPool,
    Subsample,
    ZeroPad,
    build_spec,
    format_spec,
    parse_spec,
)
from cnnlab.zoo import create_model, list_models, model_info
from cnnlab.zoo.alexnet import alexnet_text
from cnnlab.zoo.googlenet import googlenet_text
from cnnlab.zoo.lenet import lenet5_text
from cnnlab.zoo.resnet import resnet_cifar_text, resnet_text
from cnnlab.zoo.zfnet import zfnet_text

_LENET5 = (
    "conv5-6(pad=0) stanh subsample stanh conv5-16(pad=0, table=lenet5) stanh subsample stanh "
    "conv5-120(pad=0) stanh fc-84 stanh fc-10"
)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the kinds ----------------------------------------------------------------------------


def test_subsample_words_defaults_shapes_and_module():
    spec = parse_spec("conv3-4 subsample subsampling3/2 SUBSAMP(stride=1)")
    _, s2, s3, s4 = spec.layers
    assert s2 == Subsample() == Subsample(kernel=2, stride=2)
    assert s3 == Subsample(kernel=(3, 3), stride=(2, 2))
    assert s4 == Subsample(kernel=(2, 2), stride=(1, 1))
    assert format_spec(spec) == "conv3-4-subsample-subsample3/2-subsample2/1"
    assert spec.names() == ("conv1_1", "pool1", "pool2", "pool3")  # each ends a stage
    steps = spec.infer(1, 28)
    assert [s.output for s in steps] == [(4, 28, 28), (4, 14, 14), (4, 6, 6), (4, 5, 5)]
    assert [s.params for s in steps[1:]] == [8, 8, 8]  # a coefficient and a bias per map
    net = build_spec(spec, in_channels=1, input_size=28)
    assert type(net.pool2) is Subsampling and (net.pool2.kernel_size, net.pool2.stride) == (3, 2)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 4, 5, 5)
    assert _params(net) == spec.num_params(1, 28)
    assert format_spec(net) == format_spec(spec)


def test_connection_table_lenet5_and_given():
    spec = parse_spec("conv5-6 conv5-16(pad=0, table=lenet5)")
    c3 = spec.layers[1]
    assert c3.table == LENET5_C3_TABLE and c3.padding == (0, 0)
    step = spec.infer(6, 14)[1]
    assert step.params == 60 * 25 + 16 == 1_516  # the paper's count: connected pairs only
    assert step.macs == 10 * 10 * 60 * 25
    rows = "/".join("+".join(map(str, row)) for row in LENET5_C3_TABLE)
    assert parse_spec(f"conv5-6 conv5-16(pad=0, table={rows})") == spec  # two spellings, one layer
    given = parse_spec("conv1-3 conv3-3(table=0+2/1/2+1+0, bias=false)")
    assert given.layers[1].table == ((0, 2), (1,), (2, 1, 0))
    assert format_spec(given) == "conv1-3-conv3-3(bias=false,table=0+2/1/2+1+0)"
    net = build_spec(given, in_channels=2, input_size=8)
    conv = net.conv1_2
    assert type(conv) is ConnectionTableConv2d and conv.table == ((0, 2), (1,), (2, 1, 0))
    assert _params(net) == given.num_params(2, 8) == (2 * 3 + 3) + 6 * 9
    assert format_spec(net) == format_spec(given)


def test_adaptive_average_pooling_to_a_size():
    spec = parse_spec("conv3-8 maxpool adaptavg6 adaptive_avgpool3x2 fc-10")
    assert spec.layers[2] == AdaptiveAvgPool((6, 6)) and spec.layers[3] == AdaptiveAvgPool((3, 2))
    assert format_spec(spec) == "conv3-8-maxpool-adaptavg6-adaptavg3x2-fc-10"
    assert spec.names()[2:4] == ("avgpool1", "avgpool1b")  # it does not end a stage: fc2 next
    # The size is the point: the fc's width needs no input size, any input works.
    assert spec.infer(3)[3].output == (8, 3, 2)
    net = build_spec(spec)
    assert net.fc2.in_features == 48
    for size in (5, 40):
        assert net(torch.randn(1, 3, size, size)).shape == (1, 10)
    assert format_spec(net) == format_spec(spec)
    assert type(parse_spec("conv3-8 gap").layers[1]) is GlobalAvgPool
    pools = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool2d((2, 3)))
    assert format_spec(pools) == "gap(name=0)-adaptavg2x3(name=1)"


def test_zeropad_words_sides_shapes_and_module():
    spec = parse_spec("zeropad2 zero_pad1x3 zeropad(top=1, right=2) conv3-4")
    a, b, c, _ = spec.layers
    assert a == ZeroPad(top=2, bottom=2, left=2, right=2) == ZeroPad((2, 2))
    assert b == ZeroPad((1, 3)) and c == ZeroPad(top=1, right=2)
    assert format_spec(spec) == "zeropad2-zeropad1x3-zeropad(top=1,right=2)-conv3-4"
    steps = spec.infer(1, 28)
    assert [s.output for s in steps] == [(1, 32, 32), (1, 34, 38), (1, 35, 40), (4, 35, 40)]
    assert spec.infer(1)[2].output == (1, None, None) and steps[0].params == 0
    net = build_spec(spec, in_channels=1, input_size=28)
    assert spec.names()[:3] == ("zeropad0", "zeropad0b", "zeropad0c")
    assert type(net.zeropad0c) is nn.ZeroPad2d and net.zeropad0c.padding == (0, 2, 1, 0)
    assert net(torch.randn(1, 1, 28, 28)).shape == (1, 4, 35, 40)
    assert format_spec(net) == format_spec(spec)
    # A zero padding lets a smaller input through: the smallest input counts it.
    with pytest.raises(GeometryError, match="needs an input of at least 3 row"):
        build_spec("zeropad1 conv5-2(pad=0)", in_channels=1, input_size=(2, 9))


@pytest.mark.parametrize(
    "text, words, caret",
    [
        ("conv3-4(table=lenet)", "unknown connection table 'lenet'", 14),
        ("conv3-4(table=0+1/2)", "has 2 rows, one per output map, but the conv has 4", 14),
        ("conv3-2(table=0+0/1)", "row 0 of the connection table repeats a map", 14),
        ("conv3-2(table=0+1/1.5)", "an input map is a whole number", 18),
        ("conv3-2(table=)", "rows of input maps such as 0+1+2/1+2+3", 14),
        ("conv3-2(table=0/1, groups=2)", "no groups or dilation", 14),
        ("conv1-2 conv3-2(table=0+1/2)", "reads input map 2, but the input has 2 maps", 8),
        ("adaptavg", "adaptavg needs an output size: adaptavg6", 8),
        ("adaptavg1", "global average pooling: write gap", 8),
        ("adaptavg6/2", "adaptavg takes no stride", 10),
        ("adaptavg-6", "takes no parameter after '-'", 9),
        ("subsample3x2", "square kernel, got 3x2", 9),
        ("subsample(stride=1x2)", "square stride, got 1x2", 17),
        ("subsample-6", "takes no parameter after '-'", 10),
        ("zeropad", "zeropad adds no cells", 0),
        ("zeropad2(top=1)", "the padding is given twice", 7),
        ("zeropad2/2", "zeropad takes no stride", 9),
        ("zeropad(top=1.5)", "top must be a whole number", 12),
    ],
)
def test_mistakes_in_the_new_kinds_are_spec_errors_with_a_caret(text, words, caret):
    with pytest.raises(SpecError) as err:
        parse_spec(text).infer(1, 16)
    assert words in err.value.reason and err.value.pos == caret


def test_a_table_refused_by_the_module_is_not_read():
    with pytest.raises(SpecError, match="no groups or dilation"):
        Conv(3, 2, table=((0,), (0,)), dilation=2)


# --- the zoo ------------------------------------------------------------------------------


def test_lenet5_written_in_the_notation_is_the_papers():
    spec = parse_spec(_LENET5)
    assert spec.num_params(1, 32) == model_info("lenet5").params == 60_850
    assert sum(s.macs for s in spec.infer(1, 32)) == model_info("lenet5").macs


def _types(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.children()]


def _small(name: str) -> bool:
    """Cheap enough to build with real weights and run (on "meta" the many small tensors of
    resnet1202 cost more than real ones)."""
    info = model_info(name)
    return info.params < 30_000_000 and info.macs < 3_000_000_000


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_formats_to_text_that_builds_it_again(name):
    info = model_info(name)
    c, h, w = info.input_size
    # The large ones as real modules without allocating their weights.
    with torch.device("cpu" if _small(name) else "meta"):
        model = create_model(name)
        text = format_spec(model)
        spec = parse_spec(text)
        rebuilt = build_spec(spec, in_channels=c, input_size=(h, w), init="torch")
        x = torch.randn(2, c, h, w) if _small(name) else torch.empty(2, c, h, w)
        assert rebuilt(x).shape == model(x).shape
    assert format_spec(rebuilt) == text
    assert _types(rebuilt) == _types(model)
    assert spec.num_params(c, (h, w)) == _params(rebuilt) == _params(model) == info.params
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    if _small(name):  # with the zoo's weights, the text's network computes the zoo's function
        rebuilt.load_state_dict(model.state_dict())
        with torch.no_grad():
            torch.manual_seed(0)  # the same dropout masks; BN on batch statistics (train mode)
            want = model.train()(x)
            torch.manual_seed(0)
            torch.testing.assert_close(rebuilt.train()(x), want)


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])
def test_lenets_from_their_text_compute_the_zoos_function(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    rebuilt = build_spec(format_spec(model), in_channels=1, input_size=32).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize(
    "name, options, text",
    [
        ("resnet50", {"variant": "v1"}, resnet_text(50, variant="v1")),
        ("resnet34", {"shortcut": "A"}, resnet_text(34, shortcut="A")),
        ("resnet20", {}, resnet_cifar_text(20)),
        ("googlenet", {}, googlenet_text()),
        ("alexnet", {}, alexnet_text()),
        ("alexnet", {"groups": 1, "norm_before_pool": True}, alexnet_text("paper", 1, True)),
        ("alexnet_onetower", {"input_size": (90, 120)}, alexnet_text("onetower")),
        ("zfnet", {"conv345": (512, 1024, 512)}, zfnet_text((512, 1024, 512))),
        ("lenet5", {}, lenet5_text()),
        ("lenet5_modern", {"input_size": 28}, lenet5_text(True, (28, 28))),
        ("lenet5", {"input_size": (29, 40)}, lenet5_text(False, (29, 40))),
    ],
)
def test_the_zoos_text_is_the_models(name, options, text):
    """Every family is written in the notation in the zoo; the model built is the text's
    network, for the options and other input sizes too (v1 strides, shortcut A, one tower,
    LeNet-5's zero padding to its 32x32 field)."""
    info = model_info(name)
    c, hw = info.input_size[0], options.get("input_size", info.input_size[1:])
    with torch.device("meta"):
        model = create_model(name, **options)
        from_text = build_spec(text, in_channels=c, input_size=hw, init="torch")
    assert format_spec(model) == format_spec(from_text)
    assert parse_spec(text).num_params(c, hw) == _params(model)


def test_googlenet_with_auxiliary_heads_has_no_one_line_form():
    # The heads branch off the trunk and return extra outputs in training: not a chain, and
    # not a branch that merges.  The trunk alone is the plain googlenet's text.
    with torch.device("meta"):
        model = create_model("googlenet", aux_logits=True)
        with pytest.raises(SpecError, match="reads an nn.Sequential.*got GoogLeNet"):
            format_spec(model)
        trunk = nn.Sequential(
            OrderedDict((n, m) for n, m in model.named_children() if not n.startswith("aux"))
        )
        assert format_spec(trunk) == format_spec(create_model("googlenet"))
