"""What the module each notation kind builds does in its forward, for the spec path
(:mod:`~cnnlab.analysis.specpath`): one function per kind, keyed by kind in :data:`FORWARDS`.

Each function makes the module's parameters and buffers (the shapes its constructor gives
them), opens its call, runs the torch calls its ``forward`` runs, with the same arguments as
the constructor stores them (``nn.Conv2d`` keeps pairs, ``nn.MaxPool2d`` what it was given),
each handed to the tracer with ``run.op`` (or ``run.leaf``) as the function object PyTorch's
dispatch would hand its mode (``x + y`` is ``torch.Tensor.add``), and closes the call: so the
trace records exactly what tracing the built module records.  A torch call made here without
``run.op`` would run untraced (on meta tensors, silently uncounted).  They mirror
``module()`` of :mod:`cnnlab.notation.kinds` and the forwards of torch and
:mod:`cnnlab.layers` (torch 2.x); a forward that changes there must change here, and the test
that compares both paths over the zoo says where.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import layers as L
from cnnlab.notation import kinds as K
from cnnlab.notation.blocks import Inception, Residual
from cnnlab.notation.branch import Branch
from cnnlab.notation.group import Group
from cnnlab.notation.spec import Spec

__all__ = ["FORWARDS", "describes", "sequence"]

_T = torch.Tensor


def sequence(run, steps, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """``nn.Sequential``'s forward over the modules of ``steps`` (a Spec's inferred steps),
    named ``prefix.name``; the softmax marker builds no module."""
    for step in steps:
        if isinstance(step.layer, K.Softmax):
            continue
        path = f"{prefix}.{step.name}" if prefix else step.name
        x = FORWARDS[type(step.layer)](run, step.layer, path, step.input, x)
    return x


def describes(spec: Spec) -> bool:
    """Whether every layer of ``spec`` (and of its groups and branches) has a forward here."""
    for layer in spec.layers:
        if type(layer) not in FORWARDS:
            return False
        inner = [layer.spec] if isinstance(layer, Group) else []
        inner += list(layer.paths) if isinstance(layer, Branch) else []
        if not all(describes(s) for s in inner):
            return False
    return True


# ------------------------------------------------------------------- torch's modules


def conv2d(run, path, x, c_in, out, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
           groups=1, bias=True):  # fmt: skip
    """``nn.Conv2d(c_in, out, kernel, stride, padding, dilation, groups, bias)``, pairs."""
    w, b = run.params(path, weight=(out, c_in // groups, *kernel), bias=(out,) if bias else None)
    return run.leaf(path, nn.Conv2d, x, F.conv2d, x, w, b, stride, padding, dilation, groups)


def batch_norm(run, path, x, c, eps=1e-5, momentum=0.1, affine=True, cls=nn.BatchNorm2d):
    """``nn.BatchNorm2d(c)`` (or ``cls``: ``nn.BatchNorm1d``) in training mode, as built."""
    w, b = run.params(path, weight=(c,) if affine else None, bias=(c,) if affine else None)
    mean, var = run.buffer((c,)), run.buffer((c,))
    count = run.buffer((), torch.long)
    frame = run.enter(path, cls, x)
    run.op(_T.add_, count, 1)  # _BatchNorm.forward counts the batch (training, statistics)
    y = run.op(F.batch_norm, x, mean, var, w, b, True, momentum, eps)
    return run.leave(frame, cls, x, y)


def relu(run, path, x):
    return run.leaf(path, nn.ReLU, x, F.relu, x, inplace=False)


def max_pool(run, path, x, kernel, stride, padding, ceil=False):
    """``nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil)`` (values as given)."""
    return run.leaf(path, nn.MaxPool2d, x, F.max_pool2d, x, kernel, stride, padding, 1,
                    ceil_mode=ceil, return_indices=False)  # fmt: skip


def _sequential(run, path, x, body) -> torch.Tensor:
    """An ``nn.Sequential`` at ``path`` whose children ``body(x)`` runs."""
    frame = run.enter(path, nn.Sequential, x)
    return run.leave(frame, nn.Sequential, x, body(x))


# ------------------------------------------------------------------- the kinds


def _conv(run, layer: K.Conv, path, shape, x):
    if layer.table is None:
        return conv2d(run, path, x, shape[0], layer.out, layer.kernel, layer.stride,
                      layer.padding, layer.dilation, layer.groups, layer.bias)  # fmt: skip
    # cnnlab.layers.ConnectionTableConv2d: the connected kernels scattered into a dense one.
    c, kh, kw = shape[0], *layer.kernel
    out, pairs = len(layer.table), sum(len(row) for row in layer.table)
    index = run.buffer((pairs,), torch.long)
    w, b = run.params(path, weight=(pairs, kh, kw), bias=(out,) if layer.bias else None)
    cls = L.ConnectionTableConv2d
    frame = run.enter(path, cls, x)
    zeros = run.op(_T.new_zeros, w, out * c, kh, kw)
    dense = run.op(_T.view, run.op(_T.index_copy, zeros, 0, index, w), out, c, kh, kw)
    y = run.op(F.conv2d, x, dense, b, layer.stride, layer.padding)
    module = SimpleNamespace(kernel_size=(kh, kw), connections=pairs, bias=b)
    return run.leave(frame, cls, x, y, module)


def _pool(run, layer: K.Pool, path, shape, x):
    if layer.op == "max":
        return max_pool(run, path, x, layer.kernel, layer.stride, layer.padding, layer.ceil)
    return run.leaf(path, nn.AvgPool2d, x, F.avg_pool2d, x, layer.kernel, layer.stride,
                    layer.padding, layer.ceil, True, None)  # fmt: skip


def _subsample(run, layer: K.Subsample, path, shape, x):
    k, s = layer.kernel[0], layer.stride[0]  # type: ignore[index]
    w, b = run.params(path, weight=(shape[0],), bias=(shape[0],))
    frame = run.enter(path, L.Subsampling, x)
    op = run.op  # F.avg_pool2d(x, k, s) * (w * (k * k)).view(-1, 1, 1) + b.view(-1, 1, 1)
    pooled = op(F.avg_pool2d, x, k, s)
    scaled = op(_T.mul, pooled, op(_T.view, op(_T.mul, w, k * k), -1, 1, 1))
    y = op(_T.add, scaled, op(_T.view, b, -1, 1, 1))
    return run.leave(frame, L.Subsampling, x, y)


def _adaptive(size):
    def forward(run, layer, path, shape, x):
        out = layer.size if size is None else size
        return run.leaf(path, nn.AdaptiveAvgPool2d, x, F.adaptive_avg_pool2d, x, out)

    return forward


def _zeropad(run, layer: K.ZeroPad, path, shape, x):
    sides = (layer.left, layer.right, layer.top, layer.bottom)
    return run.leaf(path, nn.ZeroPad2d, x, F.pad, x, sides, "constant", 0.0)


def _fc(run, layer: K.FC, path, shape, x):
    w, b = run.params(path, weight=(layer.out, shape[0]), bias=(layer.out,) if layer.bias else None)
    return run.leaf(path, nn.Linear, x, F.linear, x, w, b)


_STANH = L.ScaledTanh.__init__.__defaults__  # (amplitude, slope): what the kind builds


def _activation(run, layer: K.Activation, path, shape, x):
    if layer.fn == "relu":
        return relu(run, path, x)
    if layer.fn == "stanh":
        amplitude, slope = (float(v) for v in _STANH)  # type: ignore[union-attr]
        frame = run.enter(path, L.ScaledTanh, x)
        y = run.op(_T.mul, run.op(torch.tanh, run.op(_T.mul, x, slope)), amplitude)
        return run.leave(frame, L.ScaledTanh, x, y)  # amplitude * torch.tanh(slope * x)
    cls, fn = {"tanh": (nn.Tanh, torch.tanh), "sigmoid": (nn.Sigmoid, torch.sigmoid)}[layer.fn]
    return run.leaf(path, cls, x, fn, x)


def _batch_norm(run, layer: K.BatchNorm, path, shape, x):
    cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return batch_norm(run, path, x, shape[0], layer.eps, layer.momentum, layer.affine, cls)


def _lrn(run, layer: K.LRN, path, shape, x):
    alpha = float(layer.alpha)  # cnnlab.layers.LocalResponseNorm: torch divides alpha by size
    return run.leaf(path, L.LocalResponseNorm, x, F.local_response_norm, x, layer.size,
                    alpha * layer.size, float(layer.beta), float(layer.k))  # fmt: skip


def _dropout(run, layer: K.Dropout, path, shape, x):
    return run.leaf(path, nn.Dropout, x, F.dropout, x, layer.p, True, False)


def _identity(run, layer, path, shape, x):
    frame = run.enter(path, nn.Identity, x)
    return run.leave(frame, nn.Identity, x, x)


def _flatten(run, layer, path, shape, x):
    return run.leaf(path, nn.Flatten, x, torch.Tensor.flatten, x, 1, -1)


def _inception(run, layer: Inception, path, shape, x):
    """cnnlab.layers.Inception: four nn.Sequential branches, concatenated."""
    c = shape[0]

    def conv_relu(p, x, c_in, c_out, k, name="conv", relu_name="relu"):
        x = conv2d(run, f"{p}.{name}", x, c_in, c_out, (k, k), padding=(k // 2, k // 2))
        return relu(run, f"{p}.{relu_name}", x)

    def reduce_then(p, x, reduce, c_out, k):
        x = conv_relu(p, x, c, reduce, 1, "reduce", "relu_reduce")
        return conv_relu(p, x, reduce, c_out, k)

    def pool(p, x):
        x = max_pool(run, f"{p}.pool", x, 3, 1, 1)
        return conv_relu(p, x, c, layer.pool_proj, 1, "proj")

    branches = (
        ("branch1x1", lambda p, x: conv_relu(p, x, c, layer.n1x1, 1)),
        ("branch3x3", lambda p, x: reduce_then(p, x, layer.n3x3_reduce, layer.n3x3, 3)),
        ("branch5x5", lambda p, x: reduce_then(p, x, layer.n5x5_reduce, layer.n5x5, 5)),
        ("branch_pool", pool),
    )
    frame = run.enter(path, L.Inception, x)
    outs = [
        _sequential(run, f"{path}.{name}", x, lambda x, p=f"{path}.{name}", f=body: f(p, x))
        for name, body in branches
    ]
    return run.leave(frame, L.Inception, x, run.op(torch.cat, outs, dim=1))


def _shortcut(run, path, x, c_in, c_out, stride, kind):
    """cnnlab.layers.residual._shortcut's module, called (None: the identity)."""
    changes = stride != 1 or c_in != c_out
    if kind == "A":
        if not changes:
            return x
        frame = run.enter(path, L.ZeroPadShortcut, x)
        every = slice(None, None, stride)  # x[:, :, ::stride, ::stride]
        y = run.op(_T.__getitem__, x, (slice(None), slice(None), every, every)) if stride > 1 else x
        extra = c_out - c_in
        y = run.op(F.pad, y, (0, 0, 0, 0, 0, extra)) if extra else y
        return run.leave(frame, L.ZeroPadShortcut, x, y)
    if kind == "B" and not changes:
        return x

    def projection(x):
        x = conv2d(run, f"{path}.0", x, c_in, c_out, (1, 1), (stride, stride), bias=False)
        return batch_norm(run, f"{path}.1", x, c_out)

    return _sequential(run, path, x, projection)


def _residual(run, layer: Residual, path, shape, x):
    """cnnlab.layers.BasicBlock and Bottleneck."""
    c, s, p, out = shape[0], layer.stride[0], layer.planes, layer.out

    def conv_bn(i, x, c_in, c_out, k, stride):
        x = conv2d(run, f"{path}.conv{i}", x, c_in, c_out, (k, k), (stride, stride),
                   (k // 2, k // 2), bias=False)  # fmt: skip
        return batch_norm(run, f"{path}.bn{i}", x, c_out)

    cls = L.Bottleneck if layer.bottleneck else L.BasicBlock
    frame = run.enter(path, cls, x)
    if layer.bottleneck:
        s1, s2 = (s, 1) if layer.variant == "v1" else (1, s)
        y = relu(run, f"{path}.relu1", conv_bn(1, x, c, p, 1, s1))
        y = relu(run, f"{path}.relu2", conv_bn(2, y, p, p, 3, s2))
        y = conv_bn(3, y, p, out, 1, 1)
    else:
        y = relu(run, f"{path}.relu1", conv_bn(1, x, c, p, 3, s))
        y = conv_bn(2, y, p, p, 3, 1)
    identity = _shortcut(run, f"{path}.downsample", x, c, out, s, layer.shortcut)
    last = f"{path}.relu{3 if layer.bottleneck else 2}"
    return run.leave(frame, cls, x, relu(run, last, run.op(_T.add, y, identity)))


def _group(run, layer: Group, path, shape, x):
    c, h, w = shape
    steps = layer.spec.infer(c, None if h is None else (h, w))
    numbered = [SimpleNamespace(name=str(i), layer=s.layer, input=s.input) for i, s in
                enumerate(steps)]  # fmt: skip
    return _sequential(run, path, x, lambda x: sequence(run, numbered, path, x))


def _branch(run, layer: Branch, path, shape, x):
    """cnnlab.notation.build.BranchModule: each path a SpecNet, then cat or add."""
    from cnnlab.notation.build import BranchModule, SpecNet

    c, h, w = shape
    frame = run.enter(path, BranchModule, x)
    outs = []
    for i, spec in enumerate(layer.paths, start=1):
        steps = spec.infer(c, None if h is None else (h, w))
        inner = run.enter(f"{path}.path{i}", SpecNet, x)
        outs.append(run.leave(inner, SpecNet, x, sequence(run, steps, f"{path}.path{i}", x)))
    if layer.merge == "cat":
        y = run.op(torch.cat, outs, dim=1)
    else:
        y = outs[0]
        for o in outs[1:]:
            y = run.op(_T.add, y, o)
    return run.leave(frame, BranchModule, x, y)


FORWARDS: dict[type, Any] = {
    K.Conv: _conv,
    K.Pool: _pool,
    K.Subsample: _subsample,
    K.GlobalAvgPool: _adaptive(1),
    K.AdaptiveAvgPool: _adaptive(None),
    K.ZeroPad: _zeropad,
    K.FC: _fc,
    K.Activation: _activation,
    K.BatchNorm: _batch_norm,
    K.LRN: _lrn,
    K.Dropout: _dropout,
    K.Identity: _identity,
    K.Flatten: _flatten,
    Inception: _inception,
    Residual: _residual,
    Group: _group,
    Branch: _branch,
    K.Softmax: None,  # a marker: no module (sequence skips it)
}
