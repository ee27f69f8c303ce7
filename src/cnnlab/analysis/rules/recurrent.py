"""Recurrent layers: ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` (their fused functions).

MACs by definition: at every time step, every weight matrix of every layer and direction
multiplies one vector (W_ih the layer's input, W_hh the previous hidden state, an LSTM's
W_hr the new hidden state), so MACs = time steps x batch x the sum of the weight matrices'
sizes: for a one-layer LSTM, T * N * 4H * (in + H) (Hochreiter & Schmidhuber 1997), a GRU
3H * (in + H) (Cho et al. 2014), an Elman RNN H * (in + H).  The gates' element operations
(bias additions, nonlinearities, the state update) are other ops.

What autograd keeps depends on the kernel PyTorch picks on the CPU (measured with
``saved_tensors_hooks``, torch 2.13, and exact in the tests for RNN and GRU): the input, the
input of every further layer, and per layer and direction, for an Elman RNN each step's
hidden state and the initial one ((T + 1) N H values), for a GRU seven N H values per step
(its gates and states).  An LSTM runs oneDNN's fused kernel, whose workspace is about 15.4
T N H values per layer and direction beside its output and the four N H states (rounded up
to whole pages, so small layers keep more); that figure is an estimate.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from cnnlab.analysis.rules.base import (
    UNKNOWN,
    Call,
    Effect,
    Rule,
    is_tensor,
    new_tensor,
    rule_adder,
)
from cnnlab.errors import ShapeError

__all__ = ["OPS"]

_ops: dict = {}
_add = rule_adder(_ops)

_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _recurrent(name: str) -> Rule:
    gates = _GATES[name]

    def rule(call: Call) -> Effect:
        a = (call["input"], *call.args.get("*rest", ()))
        packed = len(a) > 3 and isinstance(a[3], list | tuple)
        if packed:  # (data, batch_sizes, hx, params, has_biases, layers, dropout, train, bidir)
            x, _, hx, params, has_biases, layers, _, _, bidir = a[:9]
            batch_first = False
        else:  # (input, hx, params, has_biases, layers, dropout, train, bidir, batch_first)
            x, hx, params, has_biases, layers, _, _, bidir, batch_first = a[:9]
        dirs = 2 if bidir else 1
        w_ih, w_hh = params[0], params[1]
        hidden = int(w_ih.shape[0]) // gates
        out_size = int(w_hh.shape[1])  # the projection size of an LSTM with proj_size
        if x.shape[-1] != w_ih.shape[1]:
            raise ShapeError(
                f"{call.where}: {name} expects {w_ih.shape[1]} input features, got "
                f"{x.shape[-1]} (input {tuple(x.shape)})"
            )
        if packed:
            steps, batch = int(x.shape[0]), None  # packed rows = the sum of all lengths
            out_shape: tuple[int, ...] = (steps, dirs * out_size)
        else:
            t, n = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
            steps, batch = int(t) * int(n), int(n)
            out_shape = (*x.shape[:2], dirs * out_size)
        n_state = batch if batch is not None else int(_first(hx).shape[1])
        weights = sum(p.numel() for p in params if is_tensor(p) and p.dim() == 2)
        macs = steps * weights
        per_step = layers * dirs * (gates * hidden * (3 if has_biases else 1) + 3 * hidden)
        out = new_tensor(out_shape, x)
        h_n = new_tensor((layers * dirs, n_state, out_size), x)
        outputs: tuple = (out, h_n)
        if name == "lstm":
            outputs = (out, h_n, new_tensor((layers * dirs, n_state, hidden), x))
        # Values kept per layer and direction (see the module's docstring), and the input of
        # every layer after the first.
        per_layer = {
            "rnn_tanh": steps * hidden + n_state * hidden,
            "rnn_relu": steps * hidden + n_state * hidden,
            "gru": 7 * steps * hidden,
            "lstm": steps * out_size + 4 * n_state * hidden + (154 * steps * hidden) // 10,
        }[name]
        inputs = (layers - 1) * steps * dirs * out_size
        kept = (layers * dirs * per_layer + inputs) * x.element_size()
        return Effect(
            outputs,
            macs=macs,
            other_ops=steps * per_step,
            spatial=UNKNOWN,
            saved=(x,),
            saved_extra_bytes=kept,
        )

    return rule


def _first(hx):
    return hx[0] if isinstance(hx, list | tuple) else hx


for _name in _GATES:
    _add((getattr(torch, _name),), _name, ("input",))(_recurrent(_name))


# torch function -> rule, read-only once the module is imported.
OPS = MappingProxyType(_ops)
