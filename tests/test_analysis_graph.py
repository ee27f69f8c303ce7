"""The analysis result as a contract: typed windows on each row, the graph (which rows feed
which) on an inception and a residual block, and per-analysis rule overrides that do not leak."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis import (
    DEFAULT_RULES,
    INPUT,
    Effect,
    Kind,
    ModuleCount,
    analyze,
    op_rule,
)
from cnnlab.errors import CnnlabError
from cnnlab.geometry import Window
from cnnlab.layers import BasicBlock, Inception


def _inception_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), Inception(8, 4, 2, 4, 2, 4, 4), nn.Flatten()
    )


def test_rows_carry_typed_windows():
    a = analyze(nn.Sequential(nn.Conv2d(3, 4, (3, 5), stride=2, padding=(1, 2)), nn.MaxPool2d(2)),
                (3, 16, 16))  # fmt: skip
    conv, pool = a.row("0"), a.row("1")
    assert conv.layer.kind is Kind.CONV and conv.layer.out_channels == 4
    assert conv.layer.windows == (Window(3, 2, 1, 1), Window(5, 2, 2, 1))
    assert pool.layer.kind is Kind.MAX_POOL and pool.layer.windows == (Window(2, 2),) * 2
    assert a.to_dict()["rows"][0]["layer"]["windows"][1] == {
        "kernel": 5, "stride": 2, "padding": 2, "dilation": 1
    }  # fmt: skip


def test_inception_graph_branches_read_the_input_and_the_concatenation_reads_each_branch():
    a = analyze(_inception_net(), (3, 8, 8))
    assert a.row("0").producers == (INPUT,)
    stem = ("0", 1)
    for branch in ("branch1x1", "branch3x3", "branch5x5", "branch_pool"):
        assert a.row(f"1.{branch}").producers == (stem,), branch
    assert a.row("1").producers == (stem,)
    assert a.row("1.branch3x3.reduce").producers == (stem,)
    assert a.row("1.branch3x3.conv").producers == (("1.branch3x3.relu_reduce", 1),)
    assert a.row("1.branch_pool.proj").producers == (("1.branch_pool.pool", 1),)
    cat = a.row("1.<cat>")
    assert cat.producers == (
        ("1.branch1x1.relu", 1),
        ("1.branch3x3.relu", 1),
        ("1.branch5x5.relu", 1),
        ("1.branch_pool.relu", 1),
    )
    assert a.row("2").producers == (("1.<cat>", 1),)
    assert [r.path for r in a.consumers(a.row("0"))] == [
        "1.branch1x1.conv", "1.branch3x3.reduce", "1.branch5x5.reduce", "1.branch_pool.pool"
    ]  # fmt: skip
    assert a.producers(a.row("2")) == [cat] and a.producers(a.row("0")) == [None]


@pytest.mark.parametrize("stride", [1, 2])
def test_residual_graph_the_addition_reads_the_last_layer_and_the_shortcut(stride):
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BasicBlock(8, 8 * stride, stride))
    a = analyze(net, (3, 8, 8))
    shortcut = ("0", 1) if stride == 1 else ("1.downsample.1", 1)
    assert a.row("1.<add>").producers == (("1.bn2", 1), shortcut)
    assert a.row("1.relu2").producers == (("1.<add>", 1),)
    assert a.row("1.conv1").producers == (("0", 1),)
    assert a.row("1").layer.kind is Kind.BLOCK  # from the block's rule, not its name


def test_an_in_place_op_becomes_the_producer_of_what_it_wrote():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            y = self.conv(x)
            y += 1
            return F.relu(y)

    a = analyze(Net(), (1, 6, 6))
    assert a.row("<add_>").producers == (("conv", 1),)
    assert a.row("<relu>").producers == (("<add_>", 1),)


def test_a_rule_override_applies_to_one_analysis_only():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    before = analyze(net, (3, 8, 8)).totals.macs
    default = DEFAULT_RULES.op(F.conv2d)

    def zero_macs(call):
        effect = default(call)
        return Effect(effect.output, macs=0, spatial=effect.spatial, layer=effect.layer)

    assert analyze(net, (3, 8, 8), rules={F.conv2d: zero_macs}).totals.macs == 0
    assert analyze(net, (3, 8, 8)).totals.macs == before > 0  # nothing leaked
    assert DEFAULT_RULES.op(F.conv2d) is default
    gone = analyze(net, (3, 8, 8), rules={F.relu: None})  # no rule: listed as uncounted
    assert gone.totals.uncounted == {"relu": 1} and not analyze(net, (3, 8, 8)).totals.uncounted


def test_module_and_new_op_rules_per_analysis():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.erf(x)  # no default rule

    @op_rule("erf", ("input",))
    def erf(call):
        x = call["input"]
        return Effect(torch.empty_like(x), other_ops=x.numel())

    net = nn.Sequential(nn.Conv2d(1, 1, 1), Odd())
    assert analyze(net, (1, 4, 4)).totals.uncounted == {"special_erf": 1}
    counted = analyze(net, (1, 4, 4), rules={torch.special.erf: erf})
    assert not counted.totals.uncounted and counted.row("1").other_ops == 16
    block = analyze(net, (1, 4, 4), rules={Odd: lambda m, i, o: ModuleCount(macs=7)})
    assert block.row("1").macs == 7 and not block.totals.uncounted
    assert analyze(net, (1, 4, 4)).row("1").macs == 0


def test_override_mistakes_are_named():
    with pytest.raises(CnnlabError, match="no default rule"):
        analyze(nn.ReLU(), (1, 2, 2), rules={torch.special.erf: lambda c: None})
    with pytest.raises(CnnlabError, match="neither a torch function nor an nn.Module type"):
        analyze(nn.ReLU(), (1, 2, 2), rules={"conv2d": lambda c: None})
