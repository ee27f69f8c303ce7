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
from torch.utils.flop_counter import FlopCounterMode

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


class WindowAttention(nn.Module):
    """Swin's shifted-window attention (Liu et al. 2021): windows of w x w tokens, a
    relative position bias table, a cyclic shift with its mask, the projection used functionally."""

    def __init__(self, dim=16, heads=2, w=4, shift=2):
        super().__init__()
        self.dim, self.heads, self.w, self.shift = dim, heads, w, shift
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, heads))
        c = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer("index", rel[..., 0] * (2 * w - 1) + rel[..., 1], persistent=False)

    def forward(self, x):
        B, H, W, C = x.shape
        w, h = self.w, self.heads
        y = torch.roll(self.norm(x), shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = y.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)
        n = y.shape[0]
        qkv = self.qkv(y).reshape(n, w * w, 3, h, C // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * (C // h) ** -0.5) @ k.transpose(-2, -1)
        bias = self.table[self.index.view(-1)].view(w * w, w * w, h).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        upper = torch.ones(w * w, w * w, dtype=torch.bool, device=x.device).triu(1)
        mask = torch.zeros(w * w, w * w, device=x.device).masked_fill(upper, -100.0)
        attn = (attn + mask).softmax(-1)
        y = (attn @ v).transpose(1, 2).reshape(n, w * w, C)
        y = F.linear(y, self.proj.weight, self.proj.bias)
        y = y.view(B, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        return x + torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))


class SwinStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 2, 2)  # patches of 2x2, channels last after it
        self.block = WindowAttention()

    def forward(self, x):
        return self.block(self.embed(x).permute(0, 2, 3, 1))


def test_a_shifted_window_attention_block():
    # Swin's pattern: cyclic shifts, windows as views, attention on transposed heads, a
    # relative position bias gathered from a table, a mask, the projection used functionally.
    model = SwinStage().train()
    x = torch.randn(2, 3, 16, 16)
    a = analyze(model, (3, 16, 16), batch=2)
    assert a.totals.uncounted == {}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert a.totals.macs == counter.get_total_flops() // 2
    assert a.totals.training.saved_activations == _measured_saved_bytes(model, x)
    assert sum(r.params for r in a.rows if r.depth == 1) == a.totals.params
    assert not [r.path for r in a.rows if r.kind == "uncalled"]


class Recurrent(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 8)
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(self.embed(x))[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.RNN(8, 6, num_layers=2, bidirectional=True),
        lambda: nn.GRU(8, 6, num_layers=2, bidirectional=True),
        lambda: nn.GRU(8, 10),
    ],
    ids=["rnn-2-layers-bidirectional", "gru-2-layers-bidirectional", "gru"],
)
def test_recurrent_layers_keep_what_autograd_keeps(make):
    torch.manual_seed(0)
    model = Recurrent(make()).train()
    a = analyze(model, (3, 8), batch=5)  # (time, batch, features): batch 3, 5 steps
    assert a.totals.training.saved_activations == _measured_saved_bytes(model, torch.randn(5, 3, 8))


# Functions a forward calls between layers, each with the tensors autograd keeps for it as its
# rule says (input, result, indices, masks, nothing), checked one by one.
_OPS = {
    "clamp": lambda x: x.clamp(0, 1),
    "clamp_min": lambda x: x.clamp_min(0),
    "clamp_max": lambda x: x.clamp_max(0),
    "normalize": lambda x: F.normalize(x, dim=1),
    "norm": lambda x: x.norm(dim=1),
    "norm_all": lambda x: x.norm(),
    "var": lambda x: x.var(1),
    "std": lambda x: x.std(1),
    "max_dim": lambda x: x.max(1)[0],
    "max": lambda x: x.max(),
    "min_dim": lambda x: x.min(1)[0],
    "amax": lambda x: x.amax(1),
    "argmax": lambda x: x.argmax(1).float(),
    "topk": lambda x: x.topk(2, 1)[0],
    "sort": lambda x: x.sort(1)[0],
    "unfold": lambda x: F.unfold(x, 3),
    "detach": lambda x: x.detach() * 1,
    "type": lambda x: x.type(torch.float64),
    "erf": torch.erf,
    "sin": torch.sin,
    "cos": torch.cos,
    "rsqrt": torch.rsqrt,
    "reciprocal": torch.reciprocal,
    "square": torch.square,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "prod": lambda x: x.prod(1),
    "logsumexp": lambda x: x.logsumexp(1),
    "sum": lambda x: x.sum(1),
    "mean": lambda x: x.mean(1),
    "index_select": lambda x: x.index_select(1, torch.tensor([0, 2])),
    "gather": lambda x: x.gather(1, torch.zeros(2, 1, 6, 6, dtype=torch.long)),
    "floordiv": lambda x: x // 2,
    "mod": lambda x: x % 2,
    "repeat_interleave": lambda x: x.repeat_interleave(2, 1),
    "cumsum": lambda x: x.cumsum(1),
    "channel_shuffle": lambda x: F.channel_shuffle(x, 2),
    "hstack": lambda x: torch.hstack([x, x]),
    "addcmul": lambda x: torch.addcmul(x, x, x),
    "lerp": lambda x: torch.lerp(x, x * 2, 0.5),
    "pow2": lambda x: x.pow(2),
    "pow_t": lambda x: x**x,
    "rpow": lambda x: 2**x,
    "rdiv": lambda x: 2 / x,
    "div_s": lambda x: x / 2,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "gelu": F.gelu,
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "leaky": F.leaky_relu,
    "logsigmoid": F.logsigmoid,
    "softsign": F.softsign,
    "tanhshrink": F.tanhshrink,
    "mish": F.mish,
    "maximum": lambda x: torch.maximum(x, x * 2),
    "where_t": lambda x: torch.where(x > 0, x, x * 2),
    "neg": lambda x: -x,
    "interp_bilinear": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
    "interp_nearest": lambda x: F.interpolate(x, scale_factor=2),
    "stack": lambda x: torch.stack([x, x]),
    "cat": lambda x: torch.cat([x, x]),
    "pad": lambda x: F.pad(x, (1, 1)),
    "roll": lambda x: x.roll(1, 2),
    "contig": lambda x: x.transpose(2, 3).contiguous(),
}


class _After(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x))


@pytest.mark.parametrize("name", sorted(_OPS))
def test_each_function_keeps_what_autograd_keeps(name):
    torch.manual_seed(0)
    model = _After(_OPS[name]).train()
    a = analyze(model, (3, 6, 6), batch=2)
    assert a.totals.uncounted == {}
    assert a.output_shapes[0] == tuple(_OPS[name](torch.randn(2, 4, 6, 6)).shape)
    assert a.totals.training.saved_activations == _measured_saved_bytes(
        model, torch.randn(2, 3, 6, 6)
    )
