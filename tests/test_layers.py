"""cnnlab.layers: every layer against an independent reference and under gradcheck (float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck

from cnnlab.errors import CnnlabError
from cnnlab.layers import (
    LENET5_C3_TABLE,
    BasicBlock,
    Bottleneck,
    ConnectionTableConv2d,
    Inception,
    LocalResponseNorm,
    ScaledTanh,
    Subsampling,
    ZeroPadShortcut,
)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _double_input(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


def _conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Conv multiply-adds per image, counted from the shapes a real forward produces."""
    total = 0

    def hook(m, _inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.shape[2] * out.shape[3] * m.out_channels * m.in_channels * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


# --- local response normalisation -----------------------------------------------------------


def _lrn_loop(x, n, alpha, beta, k):
    """The paper's formula, written out map by map (Krizhevsky et al. 2012, section 3.3)."""
    out = torch.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - n // 2), min(channels - 1, c + (n - 1) // 2)
        s = sum(x[:, j] ** 2 for j in range(lo, hi + 1))
        out[:, c] = x[:, c] / (k + alpha * s) ** beta
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("channels", [1, 4, 11])
def test_lrn_matches_the_papers_formula_written_out(n, channels):
    # Large activations, so that the alpha term matters (with x ~ 1 it is 1e-4 of k).
    x = torch.randn(2, channels, 3, 4, dtype=torch.float64) * 30
    layer = LocalResponseNorm(n, 1e-4, 0.75, 2.0)
    torch.testing.assert_close(layer(x), _lrn_loop(x, n, 1e-4, 0.75, 2.0))
    assert _params(layer) == 0


def test_lrn_alpha_is_not_divided_by_size_unlike_torch():
    x = torch.randn(2, 9, 5, 5, dtype=torch.float64) * 30
    ours = LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x)
    # torch divides alpha by n: the same layer needs n times the alpha there...
    torch.testing.assert_close(ours, nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x))
    # ...and torch with the paper's alpha is a different (weaker) normalisation.
    assert not torch.allclose(ours, nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x))


def test_lrn_by_hand_for_one_position():
    # Three maps with activities 10, 20, 30, n=5 covers all three for the middle map:
    # 20 / (2 + 1e-4 * (100 + 400 + 900))^0.75
    x = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64).view(1, 3, 1, 1)
    y = LocalResponseNorm()(x)
    assert y[0, 1, 0, 0].item() == pytest.approx(20 / (2 + 1e-4 * 1400) ** 0.75, rel=1e-12)


def test_lrn_gradcheck():
    x = _double_input(2, 7, 3, 3) * 5
    layer = LocalResponseNorm(5, 1e-2, 0.75, 2.0)  # larger alpha: a non-trivial Jacobian
    assert gradcheck(layer, (x.detach().requires_grad_(),))


def test_lrn_rejects_a_bad_size():
    with pytest.raises(CnnlabError, match="size"):
        LocalResponseNorm(0)


# --- LeNet-5 pieces ---------------------------------------------------------------------------


def test_scaled_tanh_maps_plus_minus_one_to_plus_minus_one():
    f = ScaledTanh()
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(f(x), torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64),
                               atol=1e-4, rtol=0)  # fmt: skip
    torch.testing.assert_close(f(x * 50), 1.7159 * torch.sign(x))  # saturates at +-A
    assert gradcheck(f, (_double_input(3, 4),))


def test_subsampling_is_a_window_sum_times_a_coefficient_plus_a_bias():
    layer = Subsampling(3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -2.0, 3.0]))
        layer.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)  # odd height: the last row is dropped
    window_sum = x[:, :, 0:6:2, 0::2] + x[:, :, 1:6:2, 0::2] + x[:, :, 0:6:2, 1::2]
    window_sum = window_sum + x[:, :, 1:6:2, 1::2]
    expected = window_sum * layer.weight.view(1, 3, 1, 1) + layer.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (2, 3, 3, 3)
    assert _params(Subsampling(6)) == 12 and _params(Subsampling(16)) == 32  # S2, S4
    assert gradcheck(layer, (_double_input(2, 3, 4, 4),))


# The paper's Table I by rows, transcribed from the paper (S2 map -> C3 maps, X = connected):
# an independent transcription to hold LENET5_C3_TABLE (by columns) against.
_TABLE_I = """
X . . . X X X . . X X X X . X X
X X . . . X X X . . X X X X . X
X X X . . . X X X . . X . X X X
. X X X . . X X X X . . X . X X
. . X X X . . X X X X . X X . X
. . . X X X . . X X X X . X X X
"""


def test_c3_table_is_the_papers_table_one():
    rows = [line.split() for line in _TABLE_I.strip().splitlines()]
    expected = torch.tensor([[c == "X" for c in row] for row in rows]).T  # (C3 map, S2 map)
    c3 = ConnectionTableConv2d(6, LENET5_C3_TABLE, 5)
    assert torch.equal(c3.mask(), expected)
    assert [len(r) for r in LENET5_C3_TABLE] == [3] * 6 + [4] * 9 + [6]


def test_c3_parameters_only_for_connected_pairs():
    c3 = ConnectionTableConv2d(6, LENET5_C3_TABLE, 5)
    assert c3.connections == 60 and c3.out_channels == 16
    assert _params(c3) == 1_516  # 60*25 + 16, the paper's count (a full conv has 2,416)
    assert c3.weight.shape == (60, 5, 5)
    # The paper's MACs: 10x10 outputs, 60 connected 5x5 kernels (151,600 connections - biases)
    assert 10 * 10 * c3.connections * 25 == 150_000
    # Initialised like nn.Conv2d, with each map's fan-in counting only its connected inputs.
    start = 0
    for row in LENET5_C3_TABLE:
        bound = 1 / math.sqrt(len(row) * 25)
        assert c3.weight[start : start + len(row)].abs().max() <= bound
        start += len(row)


def test_c3_equals_a_full_conv_with_a_masked_weight_forward_and_backward():
    torch.manual_seed(0)
    c3 = ConnectionTableConv2d(6, LENET5_C3_TABLE, 5).double()
    mask = c3.mask()
    full = nn.Conv2d(6, 16, 5).double()
    with torch.no_grad():
        full.weight.copy_(torch.randn(16, 6, 5, 5) * mask[:, :, None, None])
        full.bias.copy_(torch.randn(16))
        # Copy the connected kernels into the table layer, in the table's order.
        c3.weight.copy_(torch.stack([full.weight[o, i] for o, row in
                                     enumerate(LENET5_C3_TABLE) for i in row]))  # fmt: skip
        c3.bias.copy_(full.bias)
    x = torch.randn(2, 6, 14, 14, dtype=torch.float64)
    y, y_full = c3(x), full(x)
    torch.testing.assert_close(y, y_full)
    assert y.shape == (2, 16, 10, 10)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    y_full.backward(upstream)
    grads = torch.stack([full.weight.grad[o, i] for o, row in enumerate(LENET5_C3_TABLE)
                         for i in row])  # fmt: skip
    torch.testing.assert_close(c3.weight.grad, grads)
    torch.testing.assert_close(c3.bias.grad, full.bias.grad)
    # dense_weight() is the masked full kernel
    torch.testing.assert_close(c3.dense_weight(), full.weight)


def test_c3_gradcheck():
    layer = ConnectionTableConv2d(4, ((0, 1), (1, 2, 3), (3,)), 3, stride=2, padding=1).double()
    assert gradcheck(layer, (_double_input(1, 4, 5, 5),))
    # gradcheck only differentiates the input; check the weights too.
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)

    def by_weight(w, b):
        dense = w.new_zeros(3 * 4, 3, 3).index_copy(0, layer._index, w).view(3, 4, 3, 3)
        return F.conv2d(x, dense, b, 2, 1)

    w = layer.weight.detach().clone().requires_grad_()
    b = layer.bias.detach().clone().requires_grad_()
    assert gradcheck(by_weight, (w, b))


@pytest.mark.parametrize(
    "table, why",
    [(((0, 6),), "0..5"), (((1, 1),), "distinct"), (((),), "at least one"), ((), "empty")],
)
def test_connection_table_errors_name_the_problem(table, why):
    with pytest.raises(CnnlabError, match=why):
        ConnectionTableConv2d(6, table, 5)


# --- inception ------------------------------------------------------------------------------


def test_inception_3a_counts_and_branch_order():
    torch.manual_seed(0)
    block = Inception(192, 64, 96, 128, 16, 32, 32)  # Table 1, inception (3a)
    assert block.out_channels == 256
    assert _params(block) == 163_696  # computed per row
    assert block.branch5x5.conv.kernel_size == (5, 5)  # a real 5x5, unlike torchvision
    x = torch.randn(2, 192, 28, 28)
    y = block(x)
    assert y.shape == (2, 256, 28, 28)
    assert _conv_macs(block, x[:1]) == 128_049_152  # 128M in Table 1

    # Reference: the four branches written with functional ops, concatenated in order.
    def conv(layer, t):
        return F.relu(F.conv2d(t, layer.weight, layer.bias, padding=layer.padding))

    b1 = conv(block.branch1x1.conv, x)
    b2 = conv(block.branch3x3.conv, conv(block.branch3x3.reduce, x))
    b3 = conv(block.branch5x5.conv, conv(block.branch5x5.reduce, x))
    b4 = conv(block.branch_pool.proj, F.max_pool2d(x, 3, 1, 1))
    torch.testing.assert_close(y, torch.cat([b1, b2, b3, b4], dim=1))


def test_inception_naive_and_bottleneck_versions_of_the_lecture_example():
    # CS231n's example on a 28x28x256 input.
    naive = Inception(256, 128, None, 192, None, 96, None)
    x = torch.randn(1, 256, 28, 28)
    assert naive(x).shape == (1, 672, 28, 28)
    assert _conv_macs(naive, x) == 854_196_224
    reduced = Inception(256, 128, 64, 192, 64, 96, 64)
    assert reduced(x).shape == (1, 480, 28, 28)
    assert _conv_macs(reduced, x) == 271_351_808


def test_inception_gradcheck():
    torch.manual_seed(0)
    block = Inception(3, 2, 2, 3, 1, 2, 2).double()
    assert gradcheck(block, (_double_input(1, 3, 5, 5),))


def test_inception_rejects_bad_widths():
    with pytest.raises(CnnlabError, match="n3x3"):
        Inception(16, 8, 4, 0, 4, 8, 8)


# --- residual blocks ------------------------------------------------------------------------


def test_zero_pad_shortcut_is_slicing_and_zero_maps():
    x = torch.randn(2, 3, 7, 6)
    y = ZeroPadShortcut(3, 8, stride=2)(x)
    assert y.shape == (2, 8, 4, 3)  # ceil(7/2), ceil(6/2): a 3x3/2 pad-1 conv's size
    assert F.conv2d(x, torch.zeros(8, 3, 3, 3), stride=2, padding=1).shape == y.shape
    sliced = torch.stack([x[:, :, i, :] for i in range(0, 7, 2)], dim=2)
    sliced = torch.stack([sliced[:, :, :, j] for j in range(0, 6, 2)], dim=3)
    torch.testing.assert_close(y[:, :3], sliced)
    assert torch.count_nonzero(y[:, 3:]) == 0
    torch.testing.assert_close(ZeroPadShortcut(3, 3, 1)(x), x)
    assert gradcheck(ZeroPadShortcut(2, 5, 2), (_double_input(1, 2, 5, 5),))
    with pytest.raises(CnnlabError, match="projection"):
        ZeroPadShortcut(8, 4)


def _zero_last_bn(block: nn.Module) -> None:
    # With the last BN's scale and shift at 0 the residual branch outputs 0, so the block
    # computes relu(shortcut(x)): this isolates the shortcut wiring.
    last = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_basic_block_shortcuts(shortcut):
    torch.manual_seed(0)
    same = BasicBlock(8, 8, 1, shortcut)
    down = BasicBlock(8, 16, 2, shortcut)
    x = torch.randn(2, 8, 9, 9)
    assert down(x).shape == (2, 16, 5, 5)
    # parameters: two 3x3 convs + 2 BNs, plus a 1x1 conv + BN for a projection
    base_same, base_down = 9 * 8 * 8 * 2 + 4 * 8, 9 * 8 * 16 + 9 * 16 * 16 + 4 * 16
    assert _params(same) == base_same + (8 * 8 + 2 * 8 if shortcut == "C" else 0)
    assert _params(down) == base_down + (0 if shortcut == "A" else 8 * 16 + 2 * 16)
    assert (same.downsample is None) == (shortcut != "C")
    for block in (same, down):
        _zero_last_bn(block)
        block.eval()
    torch.testing.assert_close(same(x), F.relu(x if shortcut != "C" else same.downsample(x)))
    if shortcut == "A":
        padded = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 8, 5, 5)], dim=1)
        torch.testing.assert_close(down(x), F.relu(padded))
    else:
        proj = down.downsample
        expected = proj[1](F.conv2d(x, proj[0].weight, stride=2))
        torch.testing.assert_close(down(x), F.relu(expected))


def test_basic_block_matches_a_functional_reference():
    torch.manual_seed(0)
    block = BasicBlock(4, 6, 2, "B").double()
    for bn in (block.bn1, block.bn2, block.downsample[1]):
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    block.eval()

    def bn(t, m):
        shape = (1, -1, 1, 1)
        scale = m.weight.view(shape) / torch.sqrt(m.running_var.view(shape) + m.eps)
        return (t - m.running_mean.view(shape)) * scale + m.bias.view(shape)

    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    out = F.relu(bn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    out = bn(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    short = bn(F.conv2d(x, block.downsample[0].weight, stride=2), block.downsample[1])
    torch.testing.assert_close(block(x), F.relu(out + short))


@pytest.mark.parametrize("variant", ["v1", "v1.5"])
def test_bottleneck_stride_placement_and_counts(variant):
    torch.manual_seed(0)
    block = Bottleneck(64, 32, stride=2, variant=variant)
    assert block.out_channels == 128
    strided = block.conv1 if variant == "v1" else block.conv2
    other = block.conv2 if variant == "v1" else block.conv1
    assert strided.stride == (2, 2) and other.stride == (1, 1) and block.conv3.stride == (1, 1)
    p = 32
    weights = 64 * p + 9 * p * p + p * 4 * p
    assert _params(block) == weights + 2 * (p + p + 4 * p) + 64 * 4 * p + 2 * 4 * p
    x = torch.randn(2, 64, 8, 8)
    assert block(x).shape == (2, 128, 4, 4)
    # v1 runs its 3x3 on the 4x smaller map: fewer MACs for the same parameters.
    macs = _conv_macs(block, x[:1])
    three = 4 * 4 * p * p * 9
    one_in = (8 * 8 if variant == "v1.5" else 4 * 4) * 64 * p
    assert macs == one_in + three + 4 * 4 * p * 4 * p + 4 * 4 * 64 * 4 * p


def test_bottleneck_identity_wiring_and_option_a():
    torch.manual_seed(0)
    block = Bottleneck(16, 4)  # 16 -> 16 at stride 1: a plain identity shortcut
    assert block.downsample is None
    _zero_last_bn(block)
    block.eval()
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(block(x), F.relu(x))
    padded = Bottleneck(8, 4, stride=2, shortcut="A")
    assert isinstance(padded.downsample, ZeroPadShortcut)
    assert padded(torch.randn(2, 8, 5, 5)).shape == (2, 16, 3, 3)


@pytest.mark.parametrize("make", [
    lambda: BasicBlock(3, 4, 2, "A"),
    lambda: BasicBlock(3, 4, 2, "B"),
    lambda: Bottleneck(3, 2, 2, "B", "v1"),
    lambda: Bottleneck(3, 2, 2, "A", "v1.5"),
])  # fmt: skip
def test_residual_blocks_gradcheck(make):
    torch.manual_seed(0)
    block = make().double()  # training mode: BN uses the batch's statistics, deterministically
    assert gradcheck(block, (_double_input(2, 3, 5, 5),))


def test_residual_block_errors():
    with pytest.raises(CnnlabError, match="variant"):
        Bottleneck(8, 4, variant="v2")
    with pytest.raises(CnnlabError, match="shortcut"):
        BasicBlock(8, 8, shortcut="D")


def test_relus_are_separate_and_not_inplace():
    # Forward hooks must see every activation: one module per use, none in place.
    cases = [
        (Inception(8, 2, 2, 2, 2, 2, 2), (1, 8, 4, 4), 6),
        (BasicBlock(4, 4), (1, 4, 4, 4), 2),
        (Bottleneck(16, 4), (1, 16, 4, 4), 3),
    ]
    for block, shape, expected in cases:
        relus = [m for m in block.modules() if isinstance(m, nn.ReLU)]
        assert len(relus) == expected and all(not r.inplace for r in relus)
        calls = []
        for r in relus:
            r.register_forward_hook(lambda m, i, o, seen=calls: seen.append(m))
        block(torch.randn(shape))
        assert len(calls) == expected and len(set(map(id, calls))) == expected
