"""The compact notation: parsing, errors, naming, shapes, building, formatting, VGG.

Oracles: PyTorch itself (forward shapes, ``sum(p.numel())``, module hyperparameters), the
published VGG numbers and hand-derived values.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError, GeometryError, SpecError
from cnnlab.layers import LocalResponseNorm, ScaledTanh
from cnnlab.notation import (
    FC,
    LRN,
    Activation,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Pool,
    Softmax,
    Spec,
    SpecNet,
    build_spec,
    format_spec,
    lecture_pattern,
    parse_spec,
)
from cnnlab.zoo import create_model, list_models, model_info


def vgg_spec(*args, **kwargs):
    # Imported here, after the zoo has loaded its families in its own order: importing one
    # family alone first would register it first and change the order the zoo lists models.
    list_models()
    from cnnlab.zoo.vgg import vgg_spec

    return vgg_spec(*args, **kwargs)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- parsing ------------------------------------------------------------------------------


def test_vgg_table_words_and_defaults():
    spec = parse_spec("conv3-64, maxpool, fc-4096, softmax")
    conv, pool, flat, fc, soft = spec.layers
    # conv3-64: 64 filters of 3x3, stride 1, the lecture's "same" padding (F-1)/2 = 1
    assert conv == Conv((3, 3), 64, stride=(1, 1), padding=(1, 1))
    assert pool == Pool("max", kernel=(2, 2), stride=(2, 2), padding=(0, 0), ceil=False)
    assert isinstance(flat, Flatten)  # implicit before the first fc that reads a volume
    assert fc == FC(4096) and isinstance(soft, Softmax)
    assert spec.ends_with_softmax


@pytest.mark.parametrize(
    "text",
    [
        "CONV3-64-RELU-POOL-FC-10,SOFTMAX",  # the lecture's capitals and separators
        "conv3-64 relu maxpool fc-10 softmax",  # whitespace separates
        "conv3-64, relu, maxpool, fc-10, softmax",
        "conv3 - 64 -> relu -> pool -> fc - 10 -> softmax",  # CS231n's arrows
        "conv3x3-64 → ReLU → max_pool → linear-10 → softmax",
        "input, convolution3-64, relu, maxpool2/2, flatten, dense-10, softmax",
        "\n  conv3-64(pad=1)\trelu\n  maxpool(stride=2)\n  fc-10(bias=true)\n  softmax\n",
    ],
)
def test_spellings_of_one_network(text):
    assert parse_spec(text) == parse_spec("conv3-64-relu-maxpool-fc-10,softmax")
    assert format_spec(text) == "conv3-64-relu-maxpool-fc-10,softmax"


def test_dash_before_a_number_is_a_parameter_otherwise_a_separator():
    spec = parse_spec("fc-4096-relu-dropout-0.4-fc-10")
    assert [type(x) for x in spec.layers] == [Flatten, FC, Activation, Dropout, FC]
    assert spec.layers[1].out == 4096 and spec.layers[3].p == 0.4 and spec.layers[4].out == 10


@pytest.mark.parametrize(
    "text, kernel, stride, padding",
    [
        ("conv7/2-64", (7, 7), (2, 2), (3, 3)),  # GoogLeNet's "7x7/2"
        ("conv7x7/2-64", (7, 7), (2, 2), (3, 3)),
        ("conv7-64/2", (7, 7), (2, 2), (3, 3)),
        ("conv7-64(stride=2)", (7, 7), (2, 2), (3, 3)),
        ("conv1x7-64", (1, 7), (1, 1), (0, 3)),  # same padding per axis
        ("conv11/4-96(pad=0)", (11, 11), (4, 4), (0, 0)),  # AlexNet conv1
        ("conv11/4-96(padding=valid)", (11, 11), (4, 4), (0, 0)),
        ("conv5-6(pad=same)", (5, 5), (1, 1), (2, 2)),
        ("conv3-8(pad=1x0)", (3, 3), (1, 1), (1, 0)),
        ("conv2-8(pad=0)", (2, 2), (1, 1), (0, 0)),
    ],
)
def test_conv_kernel_stride_padding(text, kernel, stride, padding):
    (conv,) = parse_spec(text).layers
    assert (conv.kernel, conv.stride, conv.padding) == (kernel, stride, padding)


def test_conv_dilation_groups_bias():
    (conv,) = parse_spec("conv3-64(dilation=2, groups=4, bias=false)").layers
    assert conv.dilation == (2, 2) and conv.groups == 4 and conv.bias is False
    assert conv.padding == (2, 2)  # "same" for the dilated 5-cell window


@pytest.mark.parametrize(
    "text, op, kernel, stride, padding, ceil",
    [
        ("maxpool", "max", 2, 2, 0, False),  # VGG's and the lecture's 2x2/2
        ("pool", "max", 2, 2, 0, False),
        ("maxpool3/2", "max", 3, 2, 0, False),  # AlexNet's overlapping pooling
        ("maxpool3", "max", 3, 3, 0, False),  # stride = kernel, as PyTorch
        ("maxpool3/1(pad=1)", "max", 3, 1, 1, False),
        ("maxpool3/2(ceil=true)", "max", 3, 2, 0, True),
        ("avgpool7/1", "avg", 7, 1, 0, False),  # GoogLeNet's "avg pool 7x7/1"
        ("avgpool3/1(pad=same)", "avg", 3, 1, 1, False),
    ],
)
def test_pooling(text, op, kernel, stride, padding, ceil):
    (pool,) = parse_spec(text).layers
    assert pool == Pool(op, (kernel, kernel), (stride, stride), (padding, padding), ceil)


def test_other_layers_and_their_defaults():
    spec = parse_spec("bn tanh sigmoid stanh lrn gap dropout bn(eps=0.001, momentum=0.01)")
    assert spec.layers == (
        BatchNorm(),
        Activation("tanh"),
        Activation("sigmoid"),
        Activation("stanh"),
        LRN(size=5, alpha=1e-4, beta=0.75, k=2.0),  # AlexNet's values
        GlobalAvgPool(),
        Dropout(0.5),
        BatchNorm(eps=0.001, momentum=0.01),
    )
    assert parse_spec("norm(size=3, alpha=5e-05, beta=1, k=1)").layers == (LRN(3, 5e-5, 1.0, 1.0),)
    assert parse_spec("dropout-0.4") == parse_spec("dropout(p=0.4)") == parse_spec("drop-.4")


def test_repetition_and_nesting():
    expanded = "conv3-8-relu-conv3-8-relu-maxpool-" * 3 + "fc-10"
    for text in (
        "[(conv3-8-relu)*2-maxpool]*3-fc-10",
        "((conv3-8-relu)*2-maxpool)*3-fc-10",
        "[[conv3-8 relu]×2 maxpool]×3 fc-10",
        "[(conv3-8-relu)*2*1-maxpool]*3-fc-10",
        "[(conv3-8-relu)*N-maxpool]*M-(fc-99-relu)*K-fc-10",
    ):
        assert parse_spec(text, N=2, M=3, K=0) == parse_spec(expanded)
    assert len(parse_spec("relu*0-relu*5-(tanh)*0").layers) == 5
    assert parse_spec("(((relu)))") == parse_spec("relu")


def test_lecture_pattern_written_with_letters():
    line = "[(CONV3-32-RELU)*N-POOL]*M-(FC-64-RELU)*K-FC-10,SOFTMAX"
    spec = parse_spec(line, n=2, m=3, k=1)  # counts are case-insensitive like the notation
    assert format_spec(spec) == "[(conv3-32-relu)*2-maxpool]*3-fc-64-relu-fc-10,softmax"
    net = build_spec(line, in_channels=1, input_size=28, N=2, M=3, K=1)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lecture_pattern_function():
    text = lecture_pattern(n=2, m=3, k=1, widths=(32, 64, 128), fc_width=256, num_classes=10)
    assert text == (
        "(conv3-32-relu)*2-maxpool-(conv3-64-relu)*2-maxpool-(conv3-128-relu)*2-maxpool-"
        "fc-256-relu-fc-10,softmax"
    )
    assert lecture_pattern(n=2, m=3, k=2, widths=32, fc_width=64) == (
        "[(conv3-32-relu)*2-maxpool]*3-(fc-64-relu)*2-fc-10,softmax"
    )
    assert lecture_pattern(n=1, m=2, k=0, widths=8, pool=None) == "(conv3-8-relu)*2-fc-10,softmax"
    assert lecture_pattern(m=0, k=1, widths=()) == "fc-256-relu-fc-10,softmax"  # an MLP
    net = build_spec(lecture_pattern(kernel=5, pool="avg"), in_channels=1, input_size=28)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert isinstance(net.pool1, nn.AvgPool2d) and net.conv1_1.padding == (2, 2)
    for bad in (dict(n=0), dict(k=-1), dict(widths=(8, 8)), dict(kernel=4), dict(pool="min")):
        with pytest.raises(SpecError):
            lecture_pattern(**bad)


# --- errors -------------------------------------------------------------------------------

# (text, words the message must contain, position of the caret)
BAD_SPECS = [
    ("cnov3-64", ["unknown layer 'cnov3'", "did you mean 'conv3'"], 0),
    ("conv3-64-relu-maxpol", ["unknown layer 'maxpol'", "did you mean 'maxpool'"], 14),
    ("conv3-64-", ["expected a layer", "after '-'"], 9),
    ("conv3-64 - , relu", ["expected a layer", "after '-'", "got ','"], 11),
    ("conv3-64-128", ["got a number", "one parameter"], 9),
    ("conv-64", ["conv needs a kernel size", "conv3-64"], 4),
    ("conv3", ["conv needs its width", "conv3-64"], 5),
    ("fc", ["fc needs its width", "fc-4096"], 2),
    ("fc3-10", ["fc takes no kernel size"], 2),
    ("relu-64", ["relu takes no parameter"], 5),
    ("maxpool-2", ["takes no parameter", "maxpool3/2"], 8),
    ("conv2-64", ["no symmetric 'same' padding", "pad=0"], 4),
    ("conv3-64(strid=2)", ["no option 'strid'", "did you mean 'stride'"], 9),
    ("conv3-64(stride=2, stride=1)", ["given twice"], 19),
    ("conv3/2-64(stride=2)", ["stride is given twice"], 18),
    ("conv3-64(groups=3)", ["groups=3 must divide the 64 filters"], 16),
    ("conv3-6.5", ["whole number"], 6),
    ("conv3-0", ["width (filters) must be between 1"], 6),
    ("maxpool3/2(pad=2)", ["more than half"], 15),
    ("maxpool2(pad=same)", ["even window"], 13),
    ("dropout-1.5", ["dropout probability must be >= 0 and <= 1"], 8),
    ("lrn(alpha=-1)", ["expected a value for 'alpha'"], 10),
    ("bn(affine=maybe)", ["affine must be true or false"], 10),
    ("relu(p=1)", ["relu has no option 'p'"], 5),
    ("softmax(name=x)", ["softmax takes no options"], 8),
    ("fc-10 conv3-64", ["needs a C x H x W volume", "flat vector"], 6),
    ("fc-10 maxpool", ["needs a C x H x W volume"], 6),
    ("softmax relu", ["softmax marks the end", "must come last"], 0),
    ("(fc-10 softmax)*2", ["must come last"], 7),
    ("conv3-64)", ["closes nothing"], 8),
    ("(conv3-64]", ["does not match the '('", "expected ')'"], 9),
    ("(conv3-64", ["'(' is never closed"], 0),
    ("()", ["empty group"], 1),
    ("", ["empty spec"], 0),
    ("  ", ["empty spec"], 2),
    ("relu*0", ["needs at least one layer"], 0),
    ("conv3-64 relu POOL?", ["'?' marks an optional layer"], 18),
    ("conv3-64*N", ["the count 'N' has no value", "N=2"], 9),
    ("conv3-64 *", ["expected a repetition count"], 10),
    ("conv3-64*2.5", ["whole number"], 9),
    ("(relu)*99*99*99", ["more than 10,000 layers"], 12),
    ("relu*999999999999", ["more than 10,000 layers"], 4),  # refused before allocating
    ("conv3-64 ,, relu", ["after ','", "got ','"], 10),
    ("conv3-64()", ["options go right after a layer"], 8),
    ("conv3-64/x", ["expected a stride after '/'"], 9),
    ("conv3-" + "9" * 40, ["too long"], 6),
    ("relu input", ["'input' can only come first"], 5),
    ("conv3-64(name=a) relu(name=a)", ["the name 'a' is used twice"], 17),
    ("conv3-64(name=a.b)", ["expected ',' or ')'"], 15),
    ("conv3-64 ¿", ["expected a separator", "'¿'"], 9),
    ("relu/2", ["relu takes no stride"], 5),
]


@pytest.mark.parametrize("text, words, pos", BAD_SPECS)
def test_bad_specs_explain_where_and_what(text, words, pos):
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    exc = err.value
    assert isinstance(exc, CnnlabError) and isinstance(exc, ValueError)
    for word in words:
        assert word in exc.reason, exc.reason
    assert exc.text == text and exc.pos == pos, (exc.pos, str(exc))
    if text.strip():  # the message shows the text with a caret under the position
        lines = str(exc).split("\n")
        assert lines[1] == "  " + text and lines[2] == "  " + " " * pos + "^"


def test_count_arguments_are_checked():
    with pytest.raises(SpecError, match="must be a whole number >= 0"):
        parse_spec("relu*N", N=-1)
    with pytest.raises(SpecError, match="a spec is text"):
        parse_spec(42)  # type: ignore[arg-type]


def test_layer_nodes_check_their_fields():
    with pytest.raises(SpecError, match="kernel must be between 1"):
        Conv((0, 3), 8)
    with pytest.raises(SpecError, match="stride must be a whole number"):
        Conv(3, 8, stride=1.5)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="name must be letters"):
        FC(10, name="fc.6")
    with pytest.raises(SpecError, match="a Spec holds layer nodes"):
        Spec(("conv3-64",))  # type: ignore[arg-type]
    assert Conv(3, 8) == Conv((3, 3), 8, padding=(1, 1))  # ints are pairs, padding resolved


# --- names --------------------------------------------------------------------------------


def test_vgg16_names_are_caffes():
    names = vgg_spec("D").names()
    convs = [
        f"conv{b}_{i}"
        for b, n in zip(range(1, 6), (2, 2, 3, 3, 3), strict=True)
        for i in range(1, n + 1)
    ]
    assert [n for n in names if n and n.startswith("conv")] == convs
    assert [n for n in names if n and n.startswith("pool")] == [f"pool{i}" for i in range(1, 6)]
    assert names[-9:] == (
        "flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", None,
    )  # fmt: skip
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")


@pytest.mark.parametrize(
    "text, names",
    [
        # AlexNet-like: the layer after a pool takes the pool's number (Caffe's norm1)
        ("conv11/4-96(pad=0) relu maxpool3/2 lrn", ["conv1_1", "relu1_1", "pool1", "norm1"]),
        # an input normalisation before any weight layer
        ("bn conv3-8", ["bn0", "conv1_1"]),
        # an MLP: fully connected layers count from 1
        ("fc-100 bn relu fc-10", ["flatten", "fc1", "bn1", "relu1", "fc2"]),
        # convs without a pool before the fc: the fc starts the next stage
        ("conv3-8 relu fc-10", ["conv1_1", "relu1_1", "flatten", "fc2"]),
        ("conv3-8 gap fc-10", ["conv1_1", "pool1", "flatten", "fc2"]),
        # a second layer of the same kind after one conv gets a letter
        ("conv3-8 relu relu relu", ["conv1_1", "relu1_1", "relu1_1b", "relu1_1c"]),
        # explicit names win; the rule still counts the layer
        ("conv3-8(name=stem) relu conv3-8", ["stem", "relu1_1", "conv1_2"]),
        # an explicit name that the rule would give another layer pushes that one aside
        ("conv3-8(name=relu1_1) relu", ["relu1_1", "relu1_1b"]),
    ],
)
def test_naming_rule(text, names):
    spec = parse_spec(text)
    assert list(spec.names()) == names
    assert list(build_spec(spec, input_size=64)._modules) == names


def test_explicit_names_equal_to_the_rule_are_canonical():
    assert parse_spec("conv3-8(name=conv1_1) relu(name=relu1_1)") == parse_spec("conv3-8 relu")
    # ... but kept where dropping them would change another layer's name
    spec = parse_spec("relu relu(name=relu0)")
    assert spec.names() == ("relu0b", "relu0") and spec.layers[1].name == "relu0"
    assert parse_spec(format_spec(spec)) == spec


def test_a_name_nn_module_reserves_is_refused():
    with pytest.raises(SpecError, match="taken by nn.Module") as err:
        build_spec("conv3-8(name=training)")
    assert err.value.pos == 0


# --- shapes, parameters, building -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, in_channels, size",
    [
        ("conv11/4-96(pad=0) relu lrn maxpool3/2 conv5-256(groups=2) relu", 3, 67),
        ("conv3-8(dilation=3, bias=false) bn tanh avgpool3/2(ceil=true, pad=1) gap fc-5", 2, 19),
        ("conv1x7-4 conv7x1/2-6(pad=0x3) maxpool3/2(ceil=true) dropout-0.2 fc-7 sigmoid", 1, 20),
        ("conv5-6(pad=0) stanh avgpool conv5-16(pad=0) stanh avgpool fc-120 stanh fc-10", 1, 32),
        ("bn conv3-4(groups=2) flatten dropout bn fc-3 softmax", 2, 5),
    ],
)
def test_inferred_shapes_and_params_match_torch(text, in_channels, size):
    spec = parse_spec(text)
    steps = spec.infer(in_channels, (size, size + 3))
    net = build_spec(spec, in_channels=in_channels, input_size=(size, size + 3)).eval()
    x = torch.randn(2, in_channels, size, size + 3)
    modules = dict(net.named_children())
    for step in steps:
        if step.name is None:  # softmax: no module
            continue
        assert tuple(x.shape[1:]) == step.input, step.name
        x = modules[step.name](x)
        assert tuple(x.shape[1:]) == step.output, step.name
        assert _params(modules[step.name]) == step.params, step.name
    assert spec.num_params(in_channels, (size, size + 3)) == _params(net)


def test_built_modules_carry_the_hyperparameters():
    net = build_spec(
        "conv5/2-16(pad=1, dilation=2, groups=2, bias=false) bn(eps=0.001) stanh lrn(size=3) "
        "maxpool3/2(ceil=true) avgpool(pad=1) gap dropout-0.3 fc-10(bias=false) bn",
        in_channels=4,
        input_size=32,
        init="torch",
    )
    conv = net.conv1_1
    assert type(conv) is nn.Conv2d and conv.in_channels == 4 and conv.out_channels == 16
    assert (conv.kernel_size, conv.stride) == ((5, 5), (2, 2))
    assert (conv.padding, conv.dilation) == ((1, 1), (2, 2))
    assert conv.groups == 2 and conv.bias is None
    assert type(net.bn1_1) is nn.BatchNorm2d and net.bn1_1.eps == 0.001
    assert type(net.stanh1_1) is ScaledTanh
    assert type(net.norm1_1) is LocalResponseNorm and net.norm1_1.size == 3
    assert net.pool1.ceil_mode and net.pool1.kernel_size == (3, 3) and net.pool1.stride == (2, 2)
    assert type(net.pool2) is nn.AvgPool2d and net.pool2.padding == (1, 1)
    assert type(net.pool3) is nn.AdaptiveAvgPool2d
    assert net.drop3.p == 0.3 and net.fc4.bias is None and net.fc4.in_features == 16
    assert type(net.bn4) is nn.BatchNorm1d and net.bn4.num_features == 10
    assert not net.ends_with_softmax
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in net.parameters())


def test_activations_are_not_in_place():
    # In-place ReLUs would overwrite the conv outputs that forward hooks keep.
    net = build_spec("conv3-4 relu", in_channels=1)
    seen = []
    net.conv1_1.register_forward_hook(lambda m, i, o: seen.append(o))
    net(-torch.ones(1, 1, 4, 4) * 5)
    assert (seen[0] < 0).any()


def test_num_classes_replaces_the_last_fc():
    net = build_spec("conv3-8 maxpool fc-64 relu fc-1000,softmax", input_size=8, num_classes=7)
    assert net.fc2.out_features == 64 and net.fc3.out_features == 7
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 7)
    with pytest.raises(SpecError, match="has no fc"):
        build_spec("conv3-8 gap", num_classes=7)
    with pytest.raises(SpecError, match="num_classes must be"):
        build_spec("fc-3", input_size=2, num_classes=0)


def test_input_size_rules():
    # A gap before the fc: no input size needed, any input works
    net = build_spec("conv3-8 relu gap fc-10")
    assert net(torch.zeros(1, 3, 5, 9)).shape == (1, 10)
    with pytest.raises(SpecError, match="pass input_size") as err:
        build_spec("conv3-8 fc-10")
    assert err.value.pos == 8  # the fc that needs it
    with pytest.raises(SpecError, match="input_size must be"):
        build_spec("conv3-8", input_size=(0, 4))
    with pytest.raises(SpecError, match="in_channels must be"):
        build_spec("conv3-8", in_channels=0)
    with pytest.raises(SpecError, match=r"groups=2 must divide its 3 input channels") as err:
        build_spec("relu conv3-8(groups=2)")
    assert err.value.pos == 5


def test_a_vanishing_volume_names_the_layer_and_the_smallest_input():
    with pytest.raises(GeometryError) as err:
        build_spec("conv3-8 maxpool maxpool maxpool fc-10", input_size=(6, 40))
    msg = str(err.value)
    assert msg.startswith(
        "pool3 (maxpool): (1 - 2 + 2*0)/2 + 1 = 0.50 < 1: a window of 2 does not fit 1 row(s) "
        "padded by 0, so the volume vanishes; the network needs an input of at least 8 row(s)"
    )
    with pytest.raises(GeometryError, match="no input size gets through: after gap"):
        build_spec("conv3-8 gap maxpool", input_size=100)
    assert msg.endswith("conv3-8 maxpool maxpool maxpool fc-10\n                          ^")


def test_init_schemes():
    torch.manual_seed(0)
    net = build_spec("conv3-64 relu fc-512 relu fc-10", input_size=8)
    w = net.conv1_1.weight
    assert abs(w.std().item() - (2 / (64 * 9)) ** 0.5) < 0.01  # He, fan_out = 64*3*3
    assert net.fc2.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert all((m.bias == 0).all() for m in (net.conv1_1, net.fc2, net.fc3))
    plain = build_spec("conv3-64 relu fc-512 relu fc-10", input_size=8, init="torch")
    assert (plain.fc2.bias != 0).any()
    with pytest.raises(SpecError, match="init must be one of"):
        build_spec("relu", init="glorot")


def test_build_rejects_other_things():
    with pytest.raises(SpecError, match="build_spec takes spec text or a Spec"):
        build_spec(nn.ReLU())  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="pass them to parse_spec"):
        build_spec(parse_spec("relu"), N=2)


# --- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("conv3x3/1-64(pad=1, dilation=1, groups=1, bias=true)", "conv3-64"),
        ("CONV7x7/2-64(pad=3)", "conv7/2-64"),
        ("conv3-8(pad=0)", "conv3-8(pad=0)"),
        ("maxpool2/2(pad=0, ceil=false)", "maxpool"),
        ("maxpool3", "maxpool3/3"),
        ("maxpool(ceil=true)", "maxpool(ceil=true)"),
        ("dropout(p=0.5)", "dropout"),
        ("dropout(p=0.25)", "dropout-0.25"),
        ("lrn(size=5, alpha=0.0001, beta=0.75, k=2)", "lrn"),
        ("lrn(alpha=2e-05, k=1)", "lrn(alpha=2e-05,k=1.0)"),
        ("bn(eps=1e-3, affine=false)", "bn(eps=0.001,affine=false)"),
        ("gap flatten fc-10", "gap-fc-10"),  # the flatten before an fc is implicit
        ("gap flatten dropout fc-10", "gap-flatten-dropout-fc-10"),
        ("relu relu relu relu", "(relu)*4"),
        ("conv3-8 relu conv3-8 relu maxpool " * 2, "[(conv3-8-relu)*2-maxpool]*2"),
        ("fc-10, softmax", "fc-10,softmax"),
    ],
)
def test_canonical_text(text, canonical):
    assert format_spec(parse_spec(text)) == canonical
    assert format_spec(canonical) == canonical


def test_uncompact_text_writes_every_layer():
    text = format_spec("[(conv3-8-relu)*2-maxpool]*2", compact=False)
    assert text == "conv3-8-relu-conv3-8-relu-maxpool-conv3-8-relu-conv3-8-relu-maxpool"


def test_formatting_a_built_model_reads_its_modules():
    text = (
        "conv5/2-16(pad=1, groups=2, bias=false) bn lrn maxpool3/2 gap dropout-0.3 fc-10, softmax"
    )
    net = build_spec(text, in_channels=4, input_size=32)
    assert format_spec(net) == format_spec(text)
    # change a module: the text follows the module, not a stored string
    net.pool1 = nn.MaxPool2d(5, 1, padding=2)
    net.ends_with_softmax = False
    assert format_spec(net) == (
        "conv5/2-16(pad=1,groups=2,bias=false)-bn-lrn-maxpool5/1(pad=2)-gap-dropout-0.3-fc-10"
    )


def test_a_plain_sequential_round_trips_with_its_names():
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding="same"),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 14 * 14, 10),
    )
    text = format_spec(model)
    assert text == ("conv5-6(name=0)-tanh(name=1)-avgpool(name=2)-flatten(name=3)-fc-10(name=4)")
    rebuilt = build_spec(text, in_channels=1, input_size=28)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize(
    "module, words",
    [
        (nn.Conv2d(3, 8, 3, padding_mode="reflect"), "padding_mode='reflect'"),
        (nn.Conv2d(3, 8, 2, padding="same"), "no symmetric 'same' padding"),
        (nn.AdaptiveAvgPool2d((None, 7)), "keeps a side of the input"),
        (nn.LeakyReLU(), "has no compact notation"),
        (nn.LocalResponseNorm(5), "has no compact notation"),  # torch's alpha/n formula
        (nn.AvgPool2d(2, count_include_pad=False), "count_include_pad"),
        (ScaledTanh(1.0, 1.0), "amplitude/slope"),
        (nn.Flatten(2), "start_dim"),
    ],
)
def test_modules_without_notation_are_named(module, words):
    with pytest.raises(SpecError) as err:
        format_spec(nn.Sequential(nn.Identity(), module)[1:])
    assert "module '1'" in str(err.value) and words in str(err.value)


def test_only_sequentials_are_read():
    with pytest.raises(SpecError, match="reads an nn.Sequential"):
        format_spec(nn.Conv2d(1, 1, 1))
    with pytest.raises(SpecError, match="no layers"):
        format_spec(nn.Sequential())


def test_a_shared_module_is_not_lost():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu, nn.Conv2d(2, 2, 3, padding=1))
    model.add_module("again", relu)
    assert format_spec(model).endswith("-relu(name=again)")


# --- VGG ----------------------------------------------------------------------------------

VGG = {
    # name: (config, batch_norm, parameters at 224x224x3 and 1000 classes, conv+fc MACs)
    "vgg_a": ("A", False, 132_863_336, 7_609_090_048),
    "vgg_a_lrn": ("A-LRN", False, 132_863_336, 7_609_090_048),
    "vgg_b": ("B", False, 133_047_848, 11_308_466_176),
    "vgg_c": ("C", False, 133_638_952, 11_770_888_192),
    "vgg_d": ("D", False, 138_357_544, 15_470_264_320),
    "vgg_e": ("E", False, 143_667_240, 19_632_062_464),
    "vgg_a_bn": ("A", True, 132_868_840, 7_609_090_048),
    "vgg_b_bn": ("B", True, 133_053_736, 11_308_466_176),
    "vgg_c_bn": ("C", True, 133_647_400, 11_770_888_192),
    "vgg_d_bn": ("D", True, 138_365_992, 15_470_264_320),
    "vgg_e_bn": ("E", True, 143_678_248, 19_632_062_464),
}


def test_vgg_registry_entries():
    assert list_models("vgg*") == list(VGG)
    aliases = {"vgg11": "vgg_a", "vgg13": "vgg_b", "vgg16": "vgg_d", "vgg19": "vgg_e"}
    for alias, name in aliases.items():
        assert model_info(alias).name == name
        assert model_info(alias + "_bn").name == name + "_bn"
    for name in VGG:
        info = model_info(name)
        assert info.input_size == (3, 224, 224) and info.num_classes == 1000
        assert "1409.1556" in info.paper
    assert model_info("vgg_d").top5.startswith("8.8%")  # Table 3, D at scale 256
    assert model_info("vgg_d_bn").top5 is None  # the paper has no BatchNorm numbers


@pytest.mark.parametrize("name", list(VGG))
def test_vgg_counts_from_the_spec_and_from_torch(name):
    config, bn, params, macs = VGG[name]
    spec = vgg_spec(config, batch_norm=bn)
    steps = spec.infer(3, 224)
    assert sum(s.params for s in steps) == params == model_info(name).params
    assert sum(s.macs for s in steps) == macs == model_info(name).macs
    with torch.device("meta"):  # the real modules, without allocating 0.5 GB of weights
        model = create_model(name)
    assert _params(model) == params
    assert model.fc6.in_features == 7 * 7 * 512 and model.fc8.out_features == 1000


def test_vgg_layout_follows_table_1():
    weight_layers = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    for config, count in weight_layers.items():
        spec = vgg_spec(config)
        convs = [x for x in spec.layers if isinstance(x, Conv)]
        assert len(convs) + sum(isinstance(x, FC) for x in spec.layers) == count
        pools = [x for x in spec.layers if isinstance(x, Pool)]
        assert len(pools) == 5 and all(p == Pool("max", (2, 2), (2, 2)) for p in pools)
        assert all(c.stride == (1, 1) and c.padding == ((c.kernel[0] - 1) // 2,) * 2 for c in convs)
        assert sum(isinstance(x, Dropout) and x.p == 0.5 for x in spec.layers) == 2
        # a ReLU after every conv and hidden fc
        for i, layer in enumerate(spec.layers[:-3]):
            if isinstance(layer, Conv | FC):
                assert spec.layers[i + 1] == Activation("relu")
    one_by_one = [c.out for c in vgg_spec("C").layers if isinstance(c, Conv) and c.kernel == (1, 1)]
    assert one_by_one == [256, 512, 512]
    lrn = vgg_spec("A-LRN")
    assert lrn.layers[2] == LRN() and lrn.names()[2] == "norm1_1"  # after relu1_1
    bn = vgg_spec("D", batch_norm=True).names()
    assert bn[:4] == ("conv1_1", "bn1_1", "relu1_1", "conv1_2")


def test_vgg_formats_to_the_text_it_was_built_from():
    list_models()
    from cnnlab.zoo.vgg import VGG_CONFIGS

    for config in VGG_CONFIGS:
        assert parse_spec(format_spec(vgg_spec(config))) == vgg_spec(config)
    with torch.device("meta"):
        model = create_model("vgg16")
    assert format_spec(model) == (
        "(conv3-64-relu)*2-maxpool-(conv3-128-relu)*2-maxpool-(conv3-256-relu)*3-maxpool-"
        "[(conv3-512-relu)*3-maxpool]*2-(fc-4096-relu-dropout)*2-fc-1000,softmax"
    )


def test_vgg_other_inputs_and_too_small_inputs():
    torch.manual_seed(0)
    model = create_model("vgg_a", num_classes=10, in_channels=1, input_size=32)
    assert isinstance(model, SpecNet) and model.fc6.in_features == 512
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    with pytest.raises(GeometryError, match=r"^pool5 \(maxpool\).*at least 32 row") as err:
        create_model("vgg16", input_size=31)
    assert "vanishes" in str(err.value)
    with torch.device("meta"):
        assert create_model("vgg16", input_size=None).fc6.in_features == 7 * 7 * 512
    with pytest.raises(CnnlabError, match="batch_norm=.yes.: expected true or false"):
        create_model("vgg16", batch_norm="yes")


def test_public_api():
    assert cnnlab.notation.parse_spec is parse_spec
    for name in ("Spec", "parse_spec", "format_spec", "build_spec", "lecture_pattern"):
        assert name in cnnlab.notation.__all__
