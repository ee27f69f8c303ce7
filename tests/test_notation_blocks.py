"""The notation's modules of the recent architectures: GoogLeNet's Inception module
(``inception(64,96,128,16,32,32)``), ResNet's blocks (``basic-64``, ``bottleneck-128/2``) with
the shortcut options and v1/v1.5 strides, and named groups (``[...](name=layer1)``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import layers
from cnnlab.errors import SpecError
from cnnlab.notation import Group, Inception, Residual, build_spec, format_spec, parse_spec


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_inception_is_a_row_of_table_1():
    spec = parse_spec("inception(64,96,128,16,32,32)")
    assert spec.layers[0] == Inception(64, 96, 128, 16, 32, 32)
    step = spec.infer(192, 28)[0]  # inception 3a reads conv2's 192 maps at 28x28
    assert step.output == (256, 28, 28)
    # Table 1's row: 159K parameters (K = 1024) and 128M multiply-adds.
    assert step.params == 163_696 and step.params // 1024 == 159
    assert step.macs == 128_049_152
    net = build_spec(spec, in_channels=192, input_size=28, init="torch")
    block = net.inception1_1
    assert type(block) is layers.Inception and block.branch5x5.conv.kernel_size == (5, 5)
    assert _params(net) == step.params
    assert net(torch.randn(1, 192, 28, 28)).shape == (1, 256, 28, 28)
    assert format_spec(net) == "inception(64,96,128,16,32,32)"
    assert "inception1_1.branch3x3.reduce.weight" in net.state_dict()


@pytest.mark.parametrize(
    "text, c, out, params",
    [
        ("basic-64", 64, (64, 8, 8), 2 * 9 * 64 * 64 + 4 * 64),  # identity shortcut
        ("basic-128/2", 64, (128, 4, 4), 9 * 64 * 128 + 9 * 128 * 128 + 4 * 128 + 64 * 128 + 256),
        ("basic-128/2(shortcut=A)", 64, (128, 4, 4), 9 * 64 * 128 + 9 * 128 * 128 + 4 * 128),
        ("basic-64(shortcut=C)", 64, (64, 8, 8), 2 * 9 * 64 * 64 + 4 * 64 + 64 * 64 + 128),
        (
            "bottleneck-64",
            64,
            (256, 8, 8),
            64 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * 384 + 64 * 256 + 512,
        ),  # fmt: skip
        (
            "bottleneck-64/2(variant=v1)",
            256,
            (256, 4, 4),
            256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * 384 + 256 * 256 + 512,
        ),  # fmt: skip
    ],
)
def test_residual_blocks_shapes_parameters_and_modules(text, c, out, params):
    spec = parse_spec(text)
    step = spec.infer(c, 8)[0]
    assert step.output == out and step.params == params
    net = build_spec(spec, in_channels=c, input_size=8, init="torch").eval()
    assert _params(net) == params
    assert net(torch.randn(2, c, 8, 8)).shape == (2, *out)
    assert type(net.block1_1) is (layers.Bottleneck if "bottleneck" in text else layers.BasicBlock)
    assert format_spec(net) == format_spec(spec) == text


def test_the_block_options_are_the_layers_options():
    from cnnlab.notation import blocks

    assert blocks.SHORTCUTS == layers.SHORTCUTS and blocks.VARIANTS == layers.VARIANTS


def test_v1_and_v1_5_stride_in_different_places():
    v15, v1 = parse_spec("bottleneck-128/2"), parse_spec("bottleneck-128/2(variant=V1)")
    (a,), (b,) = v15.infer(256, 56), v1.infer(256, 56)
    assert a.params == b.params and a.output == b.output == (512, 28, 28)
    assert a.macs - b.macs == (56 * 56 - 28 * 28) * 256 * 128  # v1.5's 1x1 reads the full map
    net = build_spec(v1, in_channels=256, input_size=56)
    assert net.block1_1.conv1.stride == (2, 2) and net.block1_1.conv2.stride == (1, 1)
    # Unstrided, the two variants are one block: the text leaves the variant out.
    assert parse_spec("bottleneck-64(variant=v1)") == parse_spec("bottleneck-64")


def test_a_shortcut_reads_back_as_the_module_it_is():
    # C where the shape changes is B's projection; A where it does not is B's identity.
    net = build_spec("conv1-8-basic-16/2(shortcut=C)-basic-16(shortcut=A)", input_size=8)
    assert format_spec(net) == "conv1-8-basic-16/2-basic-16"
    assert format_spec(build_spec(format_spec(net), input_size=8)) == format_spec(net)


def test_named_groups_are_modules_with_numbered_layers():
    text = "conv3-16-[(basic-16)*2](name=layer1)-(basic-32/2)(name=layer2)-gap-fc-10"
    spec = parse_spec(text)
    assert isinstance(spec.layers[1], Group) and spec.names()[1:3] == ("layer1", "layer2")
    net = build_spec(spec, input_size=16)
    assert type(net.layer1) is nn.Sequential and [n for n, _ in net.layer1.named_children()] == [
        "0",
        "1",
    ]
    keys = net.state_dict()
    assert "layer1.1.conv2.weight" in keys and "layer2.0.downsample.0.weight" in keys
    assert format_spec(net) == format_spec(spec) == text
    assert spec.num_params(3, 16) == _params(net)
    # Without a name the brackets only repeat: the same layers, flat.
    assert [type(x) for x in parse_spec("conv3-16-(basic-16)*2").layers] == [
        type(spec.layers[0]),
        Residual,
        Residual,
    ]


def test_a_resnet_in_one_line():
    text = "conv3-16-bn-relu-(basic-16)*3-(basic-32/2)*3-gap-fc-10"
    net = build_spec(text, input_size=32)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert format_spec(net) == text
    assert parse_spec(text).output_shape(3, 32) == (10,)


@pytest.mark.parametrize(
    "text, words, caret",
    [
        ("inception", "inception needs its 6 widths in brackets", 9),
        ("inception(64,96)", "inception takes 6 widths, got 2", 9),
        ("inception(64,96,128,16,32,x)", "expected width 6 of 6 of inception (pool_proj)", 26),
        ("inception(64,96,128,16,32,0.5)", "the widths of inception are whole numbers", 26),
        ("inception(64,96,128,16,32,32", "is never closed", 9),
        ("inception(64,96,128,16,0,32)", "width n5x5 must be between 1", 23),
        ("basic3-64", "basic takes no kernel size (its stride is written basic-64/2)", 5),
        ("basic", "basic needs its width (number of planes) after '-'", 5),
        ("basic-64(shortcut=D)", "shortcut must be one of A, B, C, got 'D'", 18),
        ("basic-64/2(variant=v1)", "variant is a bottleneck's", 19),
        ("bottleneck-64(variant=v2)", "variant must be one of v1.5, v1, got 'v2'", 22),
        ("basic-64/1x2", "a residual block takes a square stride, got 1x2", 9),
        ("conv3-32 basic-16(shortcut=A)", "cannot reduce 32 maps to 16; use shortcut=B", 9),
        ("(conv3-8)(kind=a)", "a group takes one option, name=", 10),
        ("(conv3-8 fc-2)(name=g)", "keep a C x H x W volume", 9),
        ("(conv3-8(name=c))(name=g)", "they take no name=, got name=c", 1),
        ("(conv3-8)(name=g)*2", "the name 'g' is used twice", 0),
        ("((conv3-8)(name=g))(name=h)", "cannot hold another named group", 1),
        ("(" + "{" * 16 + "relu" + "|id}add" * 16 + ")(name=g)", "nest at most 16 deep", 0),
    ],
)
def test_mistakes_in_the_blocks_are_spec_errors_with_a_caret(text, words, caret):
    with pytest.raises(SpecError) as err:
        parse_spec(text).infer(3, 16)
    assert words in err.value.reason and err.value.pos == caret
