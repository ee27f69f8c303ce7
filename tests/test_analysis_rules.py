"""Counting rules beyond convolutions: einsum, attention (functional and nn.MultiheadAttention),
recurrent layers, embeddings, pixel shuffles and zero-cost data movement; parameters used
functionally; what the headline says when something stays uncounted.

Oracle: torch.utils.flop_counter.FlopCounterMode (FLOPs / 2) on the same models, and on the
same computation written as plain matrix products where FlopCounterMode does not count the
fused op on the CPU (scaled_dot_product_attention, LSTM).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.analysis import analyze
from cnnlab.analysis.render import render


def _flop_counter_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() // 2


class MatmulAttention(nn.Module):
    """ViT-style attention written out: qkv projection, heads, scores, softmax, weighted sum."""

    def __init__(self, dim: int = 16, heads: int = 2, fused: bool = False) -> None:
        super().__init__()
        self.heads, self.fused = heads, fused
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v)
            y = y.transpose(1, 2).reshape(b, n, c)
            # The child's weights used functionally (as Swin's attention does).
            return F.linear(y, self.proj.weight, self.proj.bias)
        a = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class EinsumMix(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 8))
        self.u = nn.Parameter(torch.randn(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bnc,cd->bnd", x, self.w)
        g = torch.einsum("...nd,...md->...nm", y, y)  # a Gram matrix with an ellipsis
        return torch.einsum("bnm,bmd,de->bne", g, y, self.u)  # three operands


class SelfAttention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.need_weights = need_weights
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


def test_attention_written_out_and_fused_count_the_same():
    x = torch.randn(2, 10, 16)
    plain, fused = MatmulAttention(), MatmulAttention(fused=True)
    a, f = analyze(plain, (10, 16), batch=2), analyze(fused, (10, 16), batch=2)
    oracle = _flop_counter_macs(plain, x)
    assert a.totals.macs == oracle == 2 * 10 * 48 * 16 + 2 * 10 * 16 * 16 + 2 * 2 * 10 * 10 * 16
    assert f.totals.macs == oracle
    assert a.totals.uncounted == {} and f.totals.uncounted == {}
    assert f.row("<scaled_dot_product_attention>").macs == 2 * 2 * 10 * 10 * (8 + 8)
    assert f.output_shapes == a.output_shapes == ((2, 10, 16),)


def test_functionally_used_child_weights_are_attributed_and_rows_add_up():
    f = analyze(MatmulAttention(fused=True), (10, 16))
    assert f.totals.params == 48 * 16 + 48 + 16 * 16 + 16
    assert not any(r.kind == "uncalled" and r.path == "proj" for r in f.rows)
    assert sum(r.params for r in f.rows if r.depth == 1) == f.totals.params
    model = SelfAttention(need_weights=True)
    m = analyze(model, (10, 16))
    assert [r.path for r in m.rows if r.kind == "uncalled"] == []  # out_proj is used
    assert m.row("attn").params == m.totals.params == sum(p.numel() for p in model.parameters())
    for depth in (1, 2):
        assert sum(r.params for r in m.visible(depth) if r.depth == 1) == m.totals.params


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention(need_weights):
    model = SelfAttention(need_weights).train()  # eval takes a fast path FlopCounterMode misses
    x = torch.randn(3, 10, 16)
    a = analyze(model, (10, 16), batch=3)
    # FlopCounterMode counts the projections and, with weights returned, the two bmm's; the
    # fused path's attention it does not count on the CPU: add it by its definition.
    attention = 3 * 10 * 10 * 16 * 2
    oracle = _flop_counter_macs(model, x) + (0 if need_weights else attention)
    assert a.totals.macs == oracle == 3 * 10 * (3 * 16 * 16 + 16 * 16) + attention
    assert a.totals.uncounted == {}
    assert a.output_shapes == ((3, 10, 16),)


def test_einsum_by_its_definition():
    model = EinsumMix()
    x = torch.randn(2, 10, 16)
    a = analyze(model, (10, 16), batch=2)
    assert a.totals.uncounted == {}
    assert a.output_shapes == ((2, 10, 4),)
    # Each pair of operands: the product of the sizes of all their indices.
    by_hand = 2 * 10 * 16 * 8 + 2 * 10 * 10 * 8 + (2 * 10 * 10 * 8 + 2 * 10 * 8 * 4)
    assert a.totals.macs == by_hand == _flop_counter_macs(model, x)


@pytest.mark.parametrize(
    "make,gates",
    [
        (lambda: nn.GRU(12, 8, num_layers=2, batch_first=True), 3),
        (lambda: nn.RNN(12, 8, bidirectional=True, batch_first=True), 1),
        (lambda: nn.LSTM(12, 8, num_layers=2, bidirectional=True, batch_first=True), 4),
        (lambda: nn.LSTM(12, 8, proj_size=5, batch_first=True), 4),
    ],
    ids=["gru", "rnn-bidirectional", "lstm-2-layers-bidirectional", "lstm-projection"],
)
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_recurrent_layers(make, gates):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(3, 7, 12)
    a = analyze(model, (7, 12), batch=3)
    real = model(x)
    assert a.output_shapes == tuple(
        tuple(t.shape) for t in (real[0], *(real[1] if isinstance(real[1], tuple) else real[1:]))
    )
    assert a.totals.uncounted == {}
    steps = 3 * 7
    weights = sum(p.numel() for name, p in model.named_parameters() if "weight" in name)
    assert a.totals.macs == steps * weights
    if gates != 4:  # FlopCounterMode counts GRU and RNN (not the fused LSTM) on the CPU
        assert a.totals.macs == _flop_counter_macs(model, x)
    if isinstance(model, nn.LSTM) and model.proj_size:
        # Hochreiter & Schmidhuber's LSTM with Sak et al.'s projection: 4H(in + P) + P*H.
        assert a.totals.macs == steps * (4 * 8 * (12 + 5) + 5 * 8)


def test_embedding_pixel_shuffle_and_zero_cost_ops():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 16, 3, padding=1)

        def forward(self, x):
            y = F.pixel_shuffle(self.conv(x), 2)  # 16 maps -> 4 maps at twice the size
            y = torch.roll(y, shifts=1, dims=2).flip(3)
            mask = y > 0
            y = y.masked_fill(mask, 0.0).to(torch.float64).float()
            return F.pixel_unshuffle(y.contiguous(), 2).permute(0, 2, 3, 1)

    a = analyze(Mixed(), (4, 6, 6))
    assert a.totals.uncounted == {}
    assert a.output_shapes == ((1, 6, 6, 16),)
    assert a.totals.macs == 16 * 36 * 4 * 9
    assert a.row("<pixel_shuffle>").output_shape == (1, 4, 12, 12)
    emb = nn.Sequential(nn.Embedding(100, 8), nn.Flatten(), nn.Linear(40, 3))
    e = analyze(emb, (5,), dtype=torch.long, batch=2)
    assert e.output_shapes == ((2, 3),) and e.totals.uncounted == {}
    assert e.totals.macs == 2 * 40 * 3  # a lookup is no multiply-add
    assert e.row("0").activation_bytes == 2 * 5 * 8 * 4  # float32 rows, from int64 indices


def test_the_headline_says_when_something_is_uncounted():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.logcumsumexp(self.conv(x), dim=1)

    a = analyze(Odd(), (3, 8, 8))
    macs = 4 * 36 * 27
    for fmt in ("table", "markdown"):
        text = render(a, fmt)
        assert f"MACs: {macs:,}+? (" in text and "not counting logcumsumexp" in text, fmt
    assert f"({macs:,}+?; FLOPs = 2 x MACs); not counting logcumsumexp" in render(a, "lecture")
    clean = analyze(nn.Sequential(nn.Conv2d(3, 4, 3)), (3, 8, 8))
    assert f"MACs: {4 * 36 * 27:,} (" in render(clean, "table")


def test_the_dtype_line_with_boolean_masks():
    class Masked(nn.Module):
        def forward(self, x):
            return x.masked_fill(x > 0, 0.0)

    a = analyze(Masked(), (3, 8, 8))
    assert a.row("<gt>").activation_bytes == 3 * 64  # one byte per boolean
    text = render(a, "table")
    assert "(float32, 4 bytes per value; other dtypes (masks, indices) at their own size)" in text
    assert a.totals.activation_bytes == 3 * 64 * (4 + 1 + 4)


class ViT(nn.Module):
    """ViT-B/16 (Dosovitskiy et al. 2021) from PyTorch's own encoder layers: pre-norm, GELU."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, mlp: int = 3072):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 16, 16)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 197, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1000)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.encoder(x))[:, 0])


def test_vit_b16_on_the_meta_device():
    with torch.device("meta"):
        model = ViT().eval()
    a = analyze(model, (3, 224, 224))
    n, d = 197, 768
    per_layer = n * d * 3 * d + 2 * n * n * d + n * d * d + 2 * n * d * 3072
    assert a.totals.macs == 196 * d * 3 * 256 + 12 * per_layer + d * 1000 == 17_563_828_224
    assert a.totals.params == 86_567_656 and a.totals.uncounted == {}
    assert sum(r.params for r in a.rows if r.depth == 1) == a.totals.params
