"""Branch and merge in the notation: ``{a | b}cat`` and ``{a | b}add``, shapes checked at the
merge, the built module's function, its read-back, and the analysis seeing the paths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.analysis import analyze
from cnnlab.errors import SpecError
from cnnlab.notation import Branch, Identity, build_spec, format_spec, parse_spec

INCEPTION = "conv3-16 {conv1-8 | conv3-12 | maxpool3/1(pad=1)-conv1-4}cat relu"
RESIDUAL = "conv3-8 ({conv3-8-bn-relu-conv3-8-bn | id}add-relu)*2 gap fc-10"


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_cat_concatenates_the_paths_channels():
    spec = parse_spec(INCEPTION)
    assert format_spec(spec) == "conv3-16-{conv1-8|conv3-12|maxpool3/1(pad=1)-conv1-4}cat-relu"
    branch = spec.layers[1]
    assert isinstance(branch, Branch) and branch.merge == "cat" and len(branch.paths) == 3
    assert spec.names() == ("conv1_1", "branch1_2", "relu1_2")
    step = spec.infer(3, 10)[1]
    assert step.output == (8 + 12 + 4, 10, 10)
    assert step.params == (16 * 8 + 8) + (16 * 9 * 12 + 12) + (16 * 4 + 4)
    torch.manual_seed(0)
    net = build_spec(spec, input_size=10)
    x = torch.randn(2, 3, 10, 10)
    b = net.branch1_2
    h = net.conv1_1(x)
    torch.testing.assert_close(b(h), torch.cat([b.path1(h), b.path2(h), b.path3(h)], dim=1))
    assert net(x).shape == (2, 24, 10, 10) and _params(net) == spec.num_params(3, 10)
    assert "branch1_2.path2.conv1_1.weight" in net.state_dict()


def test_add_sums_the_paths_and_repeats_as_any_layer():
    spec = parse_spec(RESIDUAL)
    assert format_spec(spec) == ("conv3-8-({conv3-8-bn-relu-conv3-8-bn|id}add-relu)*2-gap-fc-10")
    assert spec.layers[1].paths[1].layers == (Identity(),)
    assert spec.names()[1:5] == ("branch1_2", "relu1_2", "branch1_3", "relu1_3")
    torch.manual_seed(0)
    net = build_spec(spec).eval()
    x = torch.randn(2, 3, 12, 12)
    h = net.conv1_1(x)
    b = net.branch1_2
    torch.testing.assert_close(b(h), b.path1(h) + h)
    assert net(x).shape == (2, 10)
    assert _params(net) == spec.num_params(3, 12)


def test_a_built_branch_reads_back_to_the_same_spec():
    for text in (INCEPTION, RESIDUAL, "conv3-4 {{relu | id}add | conv1/1-2}cat(name=mix)"):
        spec = parse_spec(text)
        net = build_spec(spec, input_size=8)
        again = format_spec(net)
        assert again == format_spec(spec) and parse_spec(again) == spec
        assert list(build_spec(again, input_size=8).state_dict()) == list(net.state_dict())


@pytest.mark.parametrize(
    "text, size, words, caret",
    [
        ("conv3-8 {conv3-16 | conv3/2-16}cat", 8, "path 1 gives 16x8x8, path 2 gives 16x4x4", 30),
        ("conv3-8 {conv3-16 | id}add", 8, "path 1 gives 16x8x8, path 2 gives 8x8x8; add", 22),
        ("conv3-8 {conv3-16 | conv3/2-16}add", None, "16x7x7, path 2 gives 16x4x4", 30),
        ("conv3-8 {conv3-16 | id}add", None, "path 1 gives 16x?x?, path 2 gives 8x?x?", 22),
        ("{relu}cat", 8, "two or more paths separated by '|'", 0),
        ("{relu|}cat", 8, "an empty path: write id", 6),
        ("{|id}add", 8, "an empty path: write id", 1),
        ("{relu|id}", 8, "ends with its merge right after '}': cat", 8),
        ("{relu|id}mul", 8, "got 'mul'", 9),
        ("relu|id", 8, "'|' separates the paths of a branch", 4),
        ("{relu|fc-10}cat", 8, "no flatten or fc inside a branch", 6),
        ("{relu|id", 8, "'{' is never closed", 0),
        ("{relu|id)cat", 8, "expected '}'", 8),
        ("{relu|id}cat(foo=2)", 8, "a branch takes one option, name=", 13),
    ],
)
def test_branch_mistakes_are_spec_errors_with_a_caret(text, size, words, caret):
    with pytest.raises(SpecError) as err:
        parse_spec(text).infer(3, size)
    assert words in err.value.reason and err.value.pos == caret and err.value.text == text


def test_the_analysis_sees_the_paths():
    net = build_spec("conv3-4 {conv3-4 | conv1-4}add relu gap fc-2")
    report = analyze(net, (3, 16, 16))
    paths = {r.path for r in report.rows}
    assert {"branch1_2.path1.conv1_1", "branch1_2.path2.conv1_1"} <= paths
    merge = next(r for r in report.rows if r.kind == "op" and r.parent == "branch1_2")
    assert {key[0] for key in merge.producers} == {
        "branch1_2.path1.conv1_1",
        "branch1_2.path2.conv1_1",
    }
    assert report.row("branch1_2").params == (4 * 9 * 4 + 4) + (4 * 4 + 4)


def test_repeated_blocks_fold_as_the_lecture_writes_them():
    block = "{conv3-16-bn-relu-conv3-16-bn|id}add-relu"
    down = "{conv3/2-32-bn-relu-conv3-32-bn|conv1/2-32-bn}add-relu"
    text = f"conv3-16-bn-relu-({block})*3-{down}-({block.replace('16', '32')})*2-gap-fc-10"
    # each block ends with its relu: not (relu-{...}add)*3-relu
    assert format_spec(text) == text
    assert format_spec(f"conv3-16-bn-relu-{block}-{block}-{block}-gap-fc-10") == (
        f"conv3-16-bn-relu-({block})*3-gap-fc-10"
    )
