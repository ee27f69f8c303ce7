"""Attention and index-notation products: ``einsum``, ``scaled_dot_product_attention`` and
``nn.MultiheadAttention``'s functional forward.

MACs by definition (Vaswani et al. 2017, "Attention is all you need", section 3.2):

* einsum: for each pair of operands, contracted left to right as ``torch.einsum`` does, the
  product of the sizes of every index the two carry (each term of each output element is one
  multiply-add); one operand alone (a transpose, trace or sum) has none.
* attention of L queries over S keys with query/key size E and value size Ev: the scores
  ``Q K^T`` are L*S*E multiply-adds and the weighted sum ``A V`` L*S*Ev, per batch and head.
  A causal mask does not change the count (the full products are computed).
* multi-head attention: the input projections (L*E*E for the queries, S*Ek*E and S*Ev*E for
  keys and values), the attention above over all heads (E = heads x head size), and the
  output projection L*E*E.

What autograd keeps was measured with ``torch.autograd.graph.saved_tensors_hooks`` on the CPU
(torch 2.13): the fused attention keeps its query, key, value and output and one float32
log-sum-exp per query row (and a boolean mask as a float copy); with dropout PyTorch takes the
unfused path, which keeps scaled copies of the queries and keys, the softmax output, the
dropout mask and the dropped weights.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from cnnlab.analysis.rules.base import (
    UNKNOWN,
    Call,
    Effect,
    is_tensor,
    merges_without_copy,
    new_tensor,
    numel,
    result_dtype,
    rule_adder,
)
from cnnlab.errors import ShapeError

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)


def _subscripts(term: str, ndim: int, n_ellipsis: int, where: str) -> list[str]:
    """One operand's indices, its ``...`` spelled as ``.0``, ``.1``... right-aligned over the
    ``n_ellipsis`` broadcast dimensions."""
    if "..." in term:
        head, tail = term.split("...", 1)
        k = ndim - len(head) - len(tail)
        if k < 0:
            raise ShapeError(f"{where}: einsum term {term!r} has more indices than dimensions")
        return [*head, *(f".{n_ellipsis - k + i}" for i in range(k)), *tail]
    if len(term) != ndim:
        raise ShapeError(
            f"{where}: einsum term {term!r} has {len(term)} indices for a {ndim}-D operand"
        )
    return list(term)


def einsum_count(
    equation: str, shapes: list[tuple[int, ...]], where: str = "einsum"
) -> tuple[tuple[int, ...], int, list[tuple[int, ...]]]:
    """(output shape, multiply-adds, shapes of the intermediate results) of
    ``torch.einsum(equation, *operands)``, contracted left to right."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(
            f"{where}: einsum {equation!r} names {len(terms)} operands, got {len(shapes)}"
        )
    n_ell = max(
        (
            len(s) - len(t.replace("...", ""))
            for t, s in zip(terms, shapes, strict=True)
            if "..." in t
        ),
        default=0,
    )
    subs = [_subscripts(t, len(s), n_ell, where) for t, s in zip(terms, shapes, strict=True)]
    sizes: dict[str, int] = {}
    for sub, shape in zip(subs, shapes, strict=True):
        for index, size in zip(sub, shape, strict=True):
            old = sizes.get(index, 1)
            if size != 1 and old not in (1, size):
                raise ShapeError(f"{where}: einsum index {index!r} is {old} and {size}")
            sizes[index] = max(old, int(size))
    ellipsis = [f".{i}" for i in range(n_ell)]
    if arrow:
        out = _subscripts(rhs, len(rhs.replace("...", "")) + n_ell, n_ell, where)
    else:
        once = sorted(
            i for i in sizes if not i.startswith(".") and sum(s.count(i) for s in subs) == 1
        )
        out = [*ellipsis, *once]
    macs = 0
    current = subs[0]
    steps = []
    for i in range(1, len(subs)):
        later = set(out).union(*subs[i + 1 :])
        union = list(dict.fromkeys([*current, *subs[i]]))
        macs += numel([sizes[j] for j in union])
        current = [j for j in union if j in later]
        steps.append(tuple(sizes[j] for j in current))
    return tuple(sizes[j] for j in out), macs, steps[:-1]


@_add((torch.einsum,), "einsum", ("equation",))
def _einsum(call: Call) -> Effect:
    operands = call.args.get("*rest", ())
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    tensors = [t for t in operands if is_tensor(t)]
    shapes = [tuple(t.shape) for t in tensors]
    shape, macs, steps = einsum_count(call["equation"], shapes, call.where)
    dtype = result_dtype(*tensors)
    out = new_tensor(shape, tensors[0], dtype)
    other = tensors[0].numel() if len(tensors) == 1 and numel(shape) < tensors[0].numel() else 0
    # Each operand is kept for the others' gradients (PyTorch contracts pairs with bmm), and
    # so is each intermediate result of three or more operands.
    pairs = tuple((t, u) for t in tensors for u in tensors if u is not t)
    kept = tuple(new_tensor(s, tensors[0], dtype) for s in steps)
    return Effect(out, macs=macs, other_ops=other, spatial=UNKNOWN, saved=kept, saved_for=pairs)


@_add(
    (F.scaled_dot_product_attention,),
    "scaled_dot_product_attention",
    ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
    {"dropout_p": 0.0, "is_causal": False},
)
def _sdpa(call: Call) -> Effect:
    q, k, v = call["query"], call["key"], call["value"]
    mask = call.args.get("attn_mask")
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2 or k.shape[-1] != q.shape[-1]:
        raise ShapeError(
            f"{call.where}: attention needs (..., L, E) queries and (..., S, E) keys, got "
            f"{tuple(q.shape)} and {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{call.where}: {k.shape[-2]} keys but {v.shape[-2]} values")
    L, E = int(q.shape[-2]), int(q.shape[-1])
    S, Ev = int(k.shape[-2]), int(v.shape[-1])
    batch = tuple(q.shape[:-2])
    heads = numel(batch)
    dtype = result_dtype(q, k, v)
    if q.dim() == 4 and float(call["dropout_p"]) == 0:
        # The fused CPU kernel writes its output as (N, L, heads, Ev) and returns it
        # transposed, so the usual transpose(1, 2).reshape(N, L, heads * Ev) is a view.
        n, h = int(q.shape[0]), int(q.shape[1])
        out = new_tensor((n, L, h, Ev), q, dtype).transpose(1, 2)
    else:
        out = new_tensor((*batch, L, Ev), q, dtype)
    scores = heads * L * S
    macs = scores * (E + Ev)
    # The scale, the softmax (about 3 per score) and a mask's addition.
    other = scores * (4 + (1 if mask is not None or call["is_causal"] else 0))
    if float(call["dropout_p"]) > 0:
        # The unfused path: scaled copies of Q and K, the softmax output, the mask and the
        # dropped weights (in the query's dtype), and V as its batched product sees it (V
        # itself, or a copy where its batch dimensions do not merge).
        extra = (q.numel() + k.numel() + 3 * scores) * q.element_size()
        kept_v = v if merges_without_copy(v, v.dim() - 2) else new_tensor(v.shape, v)
        return Effect(out, macs=macs, other_ops=other, spatial=UNKNOWN, saved=(kept_v,),
                      saved_extra_bytes=extra)  # fmt: skip
    extra = heads * L * 4  # float32 log-sum-exp per query row
    if is_tensor(mask) and mask.dtype == torch.bool:
        extra += mask.numel() * q.element_size()  # the boolean mask becomes an additive one
    saved = (q, k, v, out) + ((mask,) if is_tensor(mask) and mask.dtype != torch.bool else ())
    return Effect(
        out, macs=macs, other_ops=other, spatial=UNKNOWN, saved=saved, saved_extra_bytes=extra
    )


_MHA = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight",
    "in_proj_bias", "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight",
    "out_proj_bias", "training", "key_padding_mask", "need_weights", "attn_mask",
    "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
    "static_k", "static_v", "average_attn_weights", "is_causal",
)  # fmt: skip


@_add(
    (F.multi_head_attention_forward,),
    "multi_head_attention",
    _MHA,
    {"training": True, "need_weights": True, "average_attn_weights": True, "dropout_p": 0.0},
)
def _mha(call: Call) -> Effect:
    q, k, v = call["query"], call["key"], call["value"]
    batched = q.dim() == 3
    L, E = int(q.shape[0]), int(q.shape[-1])
    S = int(k.shape[0])
    N = int(q.shape[1]) if batched else 1
    H = int(call["num_heads"])
    if E % H:
        raise ShapeError(f"{call.where}: embedding size {E} is not divisible by {H} heads")
    if call.get("use_separate_proj_weight", False):
        ws = [call["q_proj_weight"], call["k_proj_weight"], call["v_proj_weight"]]
        proj = L * numel(ws[0].shape) + S * numel(ws[1].shape) + S * numel(ws[2].shape)
    else:
        proj = (L + 2 * S) * E * E
    S_att = S + (1 if is_tensor(call.args.get("bias_k")) else 0)
    S_att += 1 if call.get("add_zero_attn", False) else 0
    w_out = call["out_proj_weight"]
    macs = N * (proj + 2 * L * S_att * E + L * int(w_out.shape[0]) * int(w_out.shape[1]))
    scores = N * H * L * S_att
    biases = N * (L + 2 * S) * E + N * L * E  # in and out projection biases
    other = biases + 4 * scores
    out_shape = (L, N, int(w_out.shape[0])) if batched else (L, int(w_out.shape[0]))
    out = new_tensor(out_shape, q)
    weights = None
    if call.get("need_weights", True):
        w_shape = (N, L, S_att) if call["average_attn_weights"] else (N, H, L, S_att)
        weights = new_tensor(w_shape if batched else w_shape[1:], q)
    item = q.element_size()
    # Kept for backward, measured on the CPU: the input projections (all three when one
    # projection makes them, or when the fused attention keeps them; else the keys and
    # values), and with the weights returned the scaled queries, the weights (and the
    # dropout mask and dropped weights) and the output projection's input; without, the fused
    # attention's output (the output projection reads a view of it) and log-sum-exp.
    packed = q is k and k is v
    if weights is not None:
        projections = N * (L + 2 * S) * E if packed else N * 2 * S * E
        extra = (projections + 2 * N * L * E + scores) * item
        if float(call["dropout_p"]) > 0 and call["training"]:
            extra += 2 * scores * item
    else:
        extra = (N * (L + 2 * S) * E + N * L * E) * item + N * H * L * 4
    return Effect(
        (out, weights),
        macs=macs,
        other_ops=other,
        spatial=UNKNOWN,
        saved=(q, k, v),
        saved_extra_bytes=extra,
    )


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
