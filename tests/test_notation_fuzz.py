"""Fuzzing the compact notation (as reliability practice for parsers asks).

- Any text: ``parse_spec`` raises nothing but ``SpecError`` (10,000 random strings, plus
  strings over the notation's own characters and near-valid token soups), never a
  RecursionError, even at 10,000 levels of brackets.
- Round trip: ``format(parse(s))`` is a fixed point, and for generated valid specs
  ``parse(format(spec)) == spec``, also through a built model.
- Shapes: for generated valid specs the output shape (and parameter count) that the spec
  infers equals what the built PyTorch model produces; where the spec says the volume
  vanishes, PyTorch refuses the same input.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnlab.errors import GeometryError, SpecError
from cnnlab.notation import (
    FC,
    LRN,
    MAX_LAYERS,
    Activation,
    AdaptiveAvgPool,
    BatchNorm,
    Branch,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Group,
    Identity,
    Inception,
    Pool,
    Residual,
    Softmax,
    Spec,
    SpecNet,
    Subsample,
    build_spec,
    format_spec,
    parse_spec,
)

DEPTH = 10_000


def _parse_or_spec_error(text: str, **counts):
    """Parse; a SpecError must be well formed.  Anything else escapes and fails the test."""
    try:
        spec = parse_spec(text, **counts)
    except SpecError as exc:
        assert exc.text == text
        assert exc.pos is None or 0 <= exc.pos <= len(text)
        str(exc)  # renders
        return None
    again = format_spec(spec)
    assert format_spec(parse_spec(again)) == again  # fixed point
    assert parse_spec(again) == spec
    return spec


# --- any text -----------------------------------------------------------------------------


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_random_text_raises_only_spec_error(text):
    _parse_or_spec_error(text)


_ALPHABET = list("conv3-64relumaxpolfcgapbdtsnhikx()[]{}|*/=,.? \n\t×→>0123456789_ECONVRLU+")


@settings(max_examples=3_000, deadline=None)
@given(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=50))
def test_text_over_the_notations_characters(text):
    _parse_or_spec_error(text, N=2)


_PIECES = [
    "conv3-64", "CONV5/2-8", "conv1x7-4(pad=0x3)", "conv3-8(groups=2,bias=false)", "conv2-4",
    "maxpool", "pool3/2", "avgpool(ceil=true)", "maxpool3/2(pad=1)", "gap", "relu", "TANH",
    "stanh", "sigmoid", "bn(eps=1e-3)", "lrn", "lrn(size=3,alpha=2e-5)", "dropout-0.3",
    "dropout", "flatten", "fc-10", "fc-4096", "softmax", "input", "(name=a)", "(name=b)",
    "(", ")", "[", "]", "*2", "*0", "*N", "*", "×3", "-", ",", " ", "->", "→", "?", "=", "x",
    "/2", "64", "-0.5", "conv", "cnov3-8", "fc-", "(stride=2)", "(pad=same)", "e-5", ".",
    "subsample", "subsample3/2", "SUBSAMPLING", "adaptavg6", "adaptavg2x3", "adaptavg",
    "conv5-16(table=lenet5)", "conv3-2(table=0+1/1)", "(table=0+1)", "(table=x)", "+", "/",
    "table=", "0+", "+1/", "{", "}", "|", "}cat", "}add", "id", "{relu|id}add",
    "{conv3-8|conv1-4}cat", "{conv3/2-8|id}add(name=r)", "cat", "add",
    "inception(1,2,3,1,2,3)", "inception(", "inception", "inception(4,4", "basic-8", "basic3-8",
    "bottleneck-4/2(variant=v1)", "basic-8/2", "(shortcut=A)", "(shortcut=c)", "(variant=v1.5)",
    "(variant=", "v1", ")(name=layer1)", "](name=g)", "(basic-4)*2(name=s)", "bottleneck",
]  # fmt: skip


@settings(max_examples=3_000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24), st.sampled_from(["", " ", "-", ","]))
def test_near_valid_token_soup(pieces, glue):
    _parse_or_spec_error(glue.join(pieces), N=3)


# --- deep nesting -------------------------------------------------------------------------


def _shallow(fn):
    """Run ``fn`` with little recursion room: a recursive parser would fail here."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 100)
    try:
        return fn()
    finally:
        sys.setrecursionlimit(old)


def test_ten_thousand_levels_of_branches_parse():
    text = "{" * 16 + "relu" + "|id}add" * 16
    spec = parse_spec(text)
    assert len(spec) == 1 and format_spec(spec) == text
    assert build_spec(spec)(torch.ones(1, 1, 1, 1)).item() == 17.0  # relu(1) + 16 shortcuts
    with pytest.raises(SpecError, match="branches nest at most 16 deep"):
        parse_spec("{" * DEPTH + "relu" + "|id}add" * DEPTH)
    with pytest.raises(SpecError, match="more than 10,000"):
        parse_spec("({relu|id}add)*5000")


def test_ten_thousand_levels_of_brackets_parse():
    text = "(" * DEPTH + "relu" + ")" * DEPTH
    assert _shallow(lambda: parse_spec(text)) == parse_spec("relu")
    mixed = "([" * (DEPTH // 2) + "conv3-8 relu" + "])" * (DEPTH // 2)
    assert _shallow(lambda: format_spec(parse_spec(mixed))) == "conv3-8-relu"


@pytest.mark.parametrize(
    "text, words",
    [
        ("(" * DEPTH, "after '('"),
        ("[" * DEPTH + "relu", "never closed"),
        (")" * DEPTH, "expected a layer"),
        ("(" * DEPTH + "relu" + ")*2" * DEPTH, "more than 10,000 layers"),
        ("(" * DEPTH + "relu" + "]" * DEPTH, "does not match"),
        ("(relu-" * (DEPTH - 1) + "relu" + ")" * (DEPTH - 2), "never closed"),
        ("(relu-" * DEPTH + ")" * DEPTH, "after '-', got ')'"),
        ("(" * DEPTH + ")" * DEPTH, "empty group"),
    ],
)
def test_deep_nesting_errors_are_spec_errors(text, words):
    with pytest.raises(SpecError) as err:
        _shallow(lambda: parse_spec(text))
    assert words in err.value.reason


def test_the_layer_cap_is_exact():
    nested = "(relu-" * (MAX_LAYERS - 1) + "relu" + ")" * (MAX_LAYERS - 1)
    spec = _shallow(lambda: parse_spec(nested))
    assert len(spec) == MAX_LAYERS
    assert _shallow(lambda: format_spec(spec)) == f"(relu)*{MAX_LAYERS}"
    with pytest.raises(SpecError, match="more than 10,000"):
        parse_spec(f"(relu)*{MAX_LAYERS}-relu")


# --- generated valid specs ----------------------------------------------------------------


@st.composite
def _specs(draw):
    """A valid spec as layer nodes, with the input channels it was drawn for."""
    in_channels = draw(st.integers(1, 4))
    channels = in_channels
    layers = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(
            st.sampled_from(
                [
                    "conv",
                    "conv",
                    "pool",
                    "act",
                    "bn",
                    "lrn",
                    "drop",
                    "gap",
                    "sub",
                    "adapt",
                    "table",
                    "branch",
                    "inception",
                    "block",
                    "group",
                ]
            )
        )
        if kind == "conv":
            out = draw(st.integers(1, 8))
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == out % g == 0]))
            kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
            dilation = draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
            odd = all((d * (k - 1) + 1) % 2 for k, d in zip(kernel, dilation, strict=True))
            padding = None  # "same", where the window is odd along both axes
            if not odd or draw(st.booleans()):
                padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
            layers.append(
                Conv(
                    kernel,
                    out,
                    stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                    padding=padding,
                    dilation=dilation,
                    groups=groups,
                    bias=draw(st.booleans()),
                )
            )
            channels = out
        elif kind == "pool":
            k = draw(st.integers(1, 3))
            layers.append(
                Pool(
                    draw(st.sampled_from(["max", "avg"])),
                    kernel=(k, k),
                    stride=(draw(st.integers(1, 3)),) * 2,
                    padding=(draw(st.integers(0, k // 2)),) * 2,
                    ceil=draw(st.booleans()),
                )
            )
        elif kind == "lrn":
            layers.append(LRN(size=draw(st.integers(1, 5)), k=draw(st.sampled_from([1.0, 2.0]))))
        elif kind == "gap":
            layers.append(GlobalAvgPool())
        elif kind == "sub":
            k = draw(st.integers(1, 3))
            layers.append(Subsample(kernel=k, stride=draw(st.integers(1, 3))))
        elif kind == "adapt":
            sizes = st.tuples(st.integers(1, 4), st.integers(1, 4))
            size = draw(sizes.filter(lambda s: s != (1, 1)))
            layers.append(AdaptiveAvgPool(size))
        elif kind == "branch":  # shapes that agree at the merge: 'same' convs, stride 1
            merge = draw(st.sampled_from(["cat", "add"]))
            widths = [channels] * 2 if merge == "add" else [draw(st.integers(1, 4)) for _ in "ab"]
            paths = []
            for width in widths:
                k = draw(st.sampled_from([1, 3]))
                path = [Conv(k, width), _pointwise(draw, draw(st.sampled_from(["act", "bn"])))]
                if merge == "add" and draw(st.booleans()):
                    path = [Identity()]
                paths.append(tuple(path))
            layers.append(Branch(tuple(paths), merge))
            channels = sum(widths) if merge == "cat" else channels
        elif kind == "inception":
            widths = [draw(st.integers(1, 3)) for _ in range(6)]
            layers.append(Inception(*widths))
            channels = widths[0] + widths[2] + widths[4] + widths[5]
        elif kind in ("block", "group"):
            blocks = []
            for _ in range(draw(st.integers(1, 2)) if kind == "group" else 1):
                block = _block(draw, channels)
                blocks.append(block)
                channels = block.out
            if kind == "group":
                blocks.append(_pointwise(draw, draw(st.sampled_from(["act", "bn", "drop"]))))
                layers.append(Group(tuple(blocks), name=f"Stage{len(layers)}"))
            else:
                layers.extend(blocks)
        elif kind == "table":
            maps = st.lists(st.integers(0, channels - 1), min_size=1, max_size=4, unique=True)
            table = tuple(tuple(row) for row in draw(st.lists(maps, min_size=1, max_size=5)))
            k = draw(st.sampled_from([1, 3]))
            padding = draw(st.sampled_from([None, 0]))
            layers.append(
                Conv(k, len(table), stride=draw(st.integers(1, 2)), padding=padding, table=table)
            )
            channels = len(table)
        else:
            layers.append(_pointwise(draw, kind))
    if draw(st.booleans()):
        layers.append(Flatten())
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["fc", "fc", "act", "bn", "drop"]))
        if kind == "fc":
            layers.append(FC(draw(st.integers(1, 12)), bias=draw(st.booleans())))
        else:
            layers.append(_pointwise(draw, kind))
    if not layers:
        layers.append(Activation("relu"))
    if draw(st.booleans()):
        layers.append(Softmax())
    # Some explicit names (unique), as a model with its own names would have.
    words = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
    names = iter(draw(st.lists(words, min_size=len(layers), max_size=len(layers), unique=True)))
    named = []
    for layer in layers:
        name = next(names)
        if (
            not isinstance(layer, Softmax)
            and name not in _TAKEN
            and draw(st.integers(0, 9).map(lambda v: v == 0))
        ):
            layer = type(layer)(**{**_fields(layer), "name": name})
        named.append(layer)
    return in_channels, Spec(tuple(named))


_TAKEN = set(dir(SpecNet()))  # forward, training, ...: names nn.Module keeps for itself


def _block(draw, channels):
    """A residual block, with a shortcut that reads back as itself (C where the shape changes
    is B's projection; A where it does not is B's identity)."""
    bottleneck = draw(st.booleans())
    planes = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 2))
    out = planes * (4 if bottleneck else 1)
    changes = stride != 1 or channels != out
    shortcuts = ["B", "C"] if not changes else ["B"] + (["A"] if channels <= out else [])
    variant = draw(st.sampled_from(["v1", "v1.5"])) if bottleneck and stride > 1 else "v1.5"
    return Residual(planes, stride, draw(st.sampled_from(shortcuts)), variant, bottleneck)


def _pointwise(draw, kind):
    if kind == "act":
        return Activation(draw(st.sampled_from(["relu", "tanh", "sigmoid", "stanh"])))
    if kind == "bn":
        return BatchNorm(eps=draw(st.sampled_from([1e-5, 1e-3])), affine=draw(st.booleans()))
    return Dropout(draw(st.sampled_from([0.0, 0.25, 0.5])))


def _fields(layer):
    from dataclasses import fields

    return {f.name: getattr(layer, f.name) for f in fields(layer) if f.init and f.name != "pos"}


@settings(max_examples=1_000, deadline=None)
@given(_specs())
def test_format_parse_round_trip(drawn):
    _, spec = drawn
    text = format_spec(spec)
    assert parse_spec(text) == spec
    assert parse_spec(text).names() == spec.names()
    assert format_spec(parse_spec(text)) == text
    assert parse_spec(format_spec(spec, compact=False)) == spec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_specs(), st.integers(1, 20), st.integers(1, 20))
def test_inferred_shape_is_the_forward_shape(drawn, height, width):
    in_channels, spec = drawn
    try:
        steps = spec.infer(in_channels, (height, width))
    except GeometryError:
        _torch_refuses_too(spec, in_channels, height, width)
        return
    net = build_spec(spec, in_channels=in_channels, input_size=(height, width)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, in_channels, height, width))
    assert tuple(out.shape[1:]) == steps[-1].output
    assert sum(s.params for s in steps) == sum(p.numel() for p in net.parameters())
    # ... and the model formats back to the same spec, names included
    again = parse_spec(format_spec(net))
    assert again == spec and again.names() == spec.names()
    rebuilt = build_spec(again, in_channels=in_channels, input_size=(height, width))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }
    assert [type(m) for m in rebuilt.children()] == [type(m) for m in net.children()]


def _torch_refuses_too(spec: Spec, in_channels: int, height: int, width: int) -> None:
    """The spec says the volume vanishes: PyTorch must refuse that input as well."""
    spatial = []
    for layer in spec.layers:
        if isinstance(layer, Flatten | FC):
            break
        if not isinstance(layer, Softmax):
            spatial.append(layer)
    assume(spatial)
    # One layer at a time, with no input size: nothing checks the geometry but PyTorch.
    modules, channels = [], in_channels
    for layer in spatial:
        alone = layer if layer.keeps_name else dataclasses.replace(layer, name=None)
        net = build_spec(Spec((alone,)), in_channels=channels)
        modules.extend(net.eval().children())
        channels = Spec((layer,)).output_shape(channels)[0]  # a conv's or a branch's width
    x = torch.randn(2, in_channels, height, width)
    with pytest.raises(RuntimeError), torch.no_grad():
        for module in modules:
            x = module(x)
