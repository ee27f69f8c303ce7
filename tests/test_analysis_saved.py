"""The kept-for-backward memory estimate, exact against
torch.autograd.graph.saved_tensors_hooks on blocks of the kinds where it used to be wrong:
in-place activations that PyTorch clones, products where one operand needs no gradient
(stochastic depth), normalizations' saved statistics, attention on non-contiguous views."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_analysis import _measured_saved_bytes
from test_analysis_rules import EinsumMix, MatmulAttention, SelfAttention
from torch import nn

from cnnlab.analysis import analyze


class InvertedResidual(nn.Module):
    """MobileNetV2's block (1x1 expand, 3x3 depthwise, 1x1 project) with a chosen in-place
    activation, and a squeeze-excite gate with an in-place hard sigmoid (MobileNetV3)."""

    def __init__(self, act: type[nn.Module], gate: bool = False) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.act1 = act(inplace=True)
        self.dw = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False),
                                nn.BatchNorm2d(24))  # fmt: skip
        self.act2 = act(inplace=True)
        self.gate = gate
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(24, 6, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(6, 24, 1), nn.Hardsigmoid(inplace=True))  # fmt: skip
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))

    def forward(self, x):
        y = self.act2(self.dw(self.act1(self.expand(x))))
        if self.gate:
            y = y * self.se(y)
        return x + self.project(y)


class Stem(nn.Module):
    """A first convolution, so that the block's input needs no gradient but its output does."""

    def __init__(self, block: nn.Module, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.block = block

    def forward(self, x):
        return self.block(self.conv(x))


class StochasticDepth(nn.Module):
    """A residual branch scaled by per-example Bernoulli noise (Huang et al. 2016)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))

    def forward(self, x):
        noise = torch.empty(x.shape[0], 1, 1, 1).bernoulli_(0.8) / 0.8
        return x + self.branch(x) * noise


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: LayerNorm, attention on transposed heads, LayerNorm, MLP."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MatmulAttention(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Tokens(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Linear(12, 16)
        self.block = block

    def forward(self, x):
        return self.block(self.embed(x))


class FusedAttention(nn.Module):
    """scaled_dot_product_attention on heads sliced from one projection, with a boolean mask
    or with dropout (which takes PyTorch's unfused path)."""

    def __init__(self, mask: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.qkv = nn.Linear(12, 48)
        self.mask = torch.ones(10, 10, dtype=torch.bool).tril() if mask else None
        self.dropout = dropout

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(x.shape[0], 10, 3, 2, 8).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, dropout_p=self.dropout)


class Norms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.inorm(self.gn(self.conv(x))))


@pytest.mark.parametrize(
    "make,size",
    [
        (lambda: Stem(InvertedResidual(nn.ReLU6)), (3, 10, 10)),
        (lambda: Stem(InvertedResidual(nn.SiLU)), (3, 10, 10)),
        (lambda: Stem(InvertedResidual(nn.Hardswish, gate=True)), (3, 10, 10)),
        (lambda: Stem(InvertedResidual(nn.ReLU, gate=True)), (3, 10, 10)),
        (lambda: Stem(StochasticDepth()), (3, 10, 10)),
        (lambda: Tokens(TransformerBlock()), (10, 12)),
        (lambda: Tokens(MatmulAttention(16, fused=True)), (10, 12)),
        (lambda: Norms(), (3, 10, 10)),
        (lambda: Tokens(SelfAttention(need_weights=True)), (10, 12)),
        (lambda: Tokens(SelfAttention(need_weights=False)), (10, 12)),
        (lambda: FusedAttention(mask=True), (10, 12)),
        (lambda: FusedAttention(dropout=0.3), (10, 12)),
        (lambda: Tokens(nn.Sequential(nn.Linear(16, 16), EinsumMix())), (10, 12)),
    ],
    ids=[
        "relu6",
        "silu",
        "hardswish-hardsigmoid",
        "relu-se",
        "stochastic-depth",
        "transformer",
        "fused-attention",
        "group-instance-norm",
        "mha-weights",
        "mha-fused",
        "sdpa-bool-mask",
        "sdpa-dropout",
        "einsum",
    ],  # fmt: skip
)
def test_kept_for_backward_matches_autograd(make, size):
    torch.manual_seed(0)
    model = make().train()
    a = analyze(model, size, batch=2)
    assert a.totals.training.saved_activations == _measured_saved_bytes(
        model, torch.randn(2, *size)
    )


def test_a_frozen_network_keeps_nothing():
    model = Stem(InvertedResidual(nn.ReLU6)).train()
    for p in model.parameters():
        p.requires_grad_(False)
    a = analyze(model, (3, 10, 10), batch=2)
    assert (
        a.totals.training.saved_activations
        == 0
        == _measured_saved_bytes(model, torch.randn(2, 3, 10, 10))
    )
