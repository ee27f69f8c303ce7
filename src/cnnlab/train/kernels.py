"""Convolution weight gradients as one matrix product, where this machine runs that faster.

On an Intel Xeon with AMX-BF16, oneDNN's bf16 backward-weights kernel for a 3x3
convolution over a small feature map ran at a fraction of its forward's speed: for the
``fast`` network's last layer (128 -> 256 channels on 3x3 maps, batch 256) it took about
19 ms against 4.5 ms forward and 2.5 ms backward-data, a quarter of the whole training step.
The same gradient is one matrix product: the output gradient, (N x H' x W') x C_out, against
the input's k x k taps laid side by side (im2col, N x H' x W' x k x k x C_in, built from the
channels_last input with one ``torch.stack``), which AMX runs in about 5 ms.  Over larger maps
the taps cost more memory traffic than the product saves (oneDNN wins at 14 x 14).

So whether a convolution takes this path is measured, per layer shape, on the machine:
:func:`matmul_weight_gradients` times both on the layer's first training call (random bf16
channels_last tensors of its shape, interleaved, best of three) and switches the layer only
where the product is at least :data:`_GAIN` times faster.  The verdict is remembered in the
user cache (``conv-wgrad.json``, keyed by the CPU, torch, the thread count and the shape),
so later runs skip the measurement.  The weights, their values and the forward pass are
oneDNN's either way; the gradient differs only by bf16 rounding (a different summation
order).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv_weight_grad", "matmul_weight_gradients"]

# The matrix product replaces oneDNN's kernel only when this much faster (a tie measured on a
# busy machine must not switch a layer).
_GAIN = 1.2
WGRAD_FILE = "conv-wgrad.json"


def conv_weight_grad(
    grad: torch.Tensor, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int],
) -> torch.Tensor:  # fmt: skip
    """The weight gradient of a convolution (groups 1, dilation 1, zero padding) with output
    gradient ``grad`` (N, C_out, H', W') at input ``x`` (N, C_in, H, W): (C_out, C_in, kh, kw),
    channels_last, computed as one matrix product of ``grad`` with ``x``'s kernel taps."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c_out, ho, wo = grad.shape
    c_in = x.shape[1]
    xp = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # N, H, W, C (a view if channels_last)
    rows, cols = sh * (ho - 1) + 1, sw * (wo - 1) + 1
    taps = torch.stack(
        [xp[:, i : i + rows : sh, j : j + cols : sw, :] for i in range(kh) for j in range(kw)],
        dim=3,
    )  # N, H', W', kh * kw, C_in
    g = grad.permute(0, 2, 3, 1).reshape(n * ho * wo, c_out)
    w = g.t() @ taps.reshape(n * ho * wo, kh * kw * c_in)
    return w.view(c_out, kh, kw, c_in).permute(0, 3, 1, 2)


class _MatmulWeightGradConv(torch.autograd.Function):
    """``F.conv2d`` forward and backward-data (oneDNN), :func:`conv_weight_grad` for the
    weight."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:  # fmt: skip
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, has_bias = ctx.conv
        grad = grad.contiguous(memory_format=torch.channels_last)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], 1,
                [True, False, False],
            )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            gw = conv_weight_grad(grad, x, weight.shape[-2:], stride, padding)
        if has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None


def _matmul_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *,
                    module: nn.Conv2d) -> torch.Tensor:  # fmt: skip
    """What the switched layer's ``_conv_forward`` does: the product path in training under
    bf16 autocast, the layer's own forward otherwise (evaluation, fp32)."""
    if not (torch.is_grad_enabled() and torch.is_autocast_enabled("cpu")):
        return nn.Conv2d._conv_forward(module, x, weight, bias)
    dt = torch.get_autocast_dtype("cpu")
    with torch.autocast("cpu", enabled=False):
        return _MatmulWeightGradConv.apply(
            x.to(dt).contiguous(memory_format=torch.channels_last),
            weight.to(dt),
            None if bias is None else bias.to(dt),
            module.stride,
            module.padding,
        )


def _eligible(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.groups == 1
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
    )


class _Switch:
    """The handle of one layer: a forward pre-hook that decides on the layer's first training
    call; :meth:`remove` gives the layer its own forward back."""

    def __init__(self, module: nn.Conv2d) -> None:
        self.module = module
        self.hook = module.register_forward_pre_hook(self._first_call)

    def _first_call(self, module: nn.Conv2d, args: tuple) -> None:
        x = args[0] if args else None
        if not (isinstance(x, torch.Tensor) and x.dim() == 4 and torch.is_grad_enabled()
                and module.training and torch.is_autocast_enabled("cpu")):  # fmt: skip
            return
        self.hook.remove()
        if _product_pays(module, tuple(x.shape)):
            module._conv_forward = functools.partial(_matmul_forward, module=module)

    def remove(self) -> None:
        self.hook.remove()
        self.module.__dict__.pop("_conv_forward", None)


def matmul_weight_gradients(model: nn.Module) -> list[_Switch]:
    """Switch ``model``'s plain ``nn.Conv2d`` layers (groups 1, dilation 1, zero padding) to
    matrix-product weight gradients where that measures :data:`_GAIN` times faster on this
    machine, each on its first call in training under CPU bf16 autocast.  Returns one
    handle per layer (``handle.remove()`` undoes it)."""
    return [_Switch(m) for m in model.modules() if _eligible(m)]


def _product_pays(module: nn.Conv2d, shape: tuple[int, ...]) -> bool:
    """Whether the product path is :data:`_GAIN` times faster for ``module`` on inputs of
    ``shape``: remembered per machine, else measured now."""
    from cnnlab.train.device import cpu_info, locked, remember, remembered

    def x(pair: tuple[int, ...]) -> str:
        return "x".join(map(str, pair))

    case = (
        f"bf16 input {x(shape)} -> {module.out_channels} channels, kernel "
        f"{x(module.kernel_size)}, stride {x(module.stride)}, padding {x(module.padding)}"
    )
    threads = torch.get_num_threads()
    key = f"{cpu_info().describe()}; torch {torch.__version__}; {threads} threads; {case}"
    path = _wgrad_file()
    known = remembered(path, _valid).get(key)
    if known is None:
        with locked(path.with_name(path.name + ".lock")):
            known = remembered(path, _valid).get(key)
            if known is None:
                known = remember(path, key, _measure(module, shape), _valid)
    return known["gain"] >= _GAIN


def _valid(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("gain"), float)


def _wgrad_file() -> Any:
    from cnnlab.data.locate import user_cache_dir

    return user_cache_dir() / WGRAD_FILE


def _measure(module: nn.Conv2d, shape: tuple[int, ...]) -> dict[str, float]:
    """Seconds of oneDNN's weight gradient and of the product for ``module`` at ``shape``
    (bf16, channels_last, random values), interleaved, best of three after a warm-up."""
    k, s, p = module.kernel_size, module.stride, module.padding
    gen = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        x = torch.randn(shape, generator=gen).to(torch.bfloat16, memory_format=cl)
        w = torch.randn(module.weight.shape, generator=gen).to(torch.bfloat16, memory_format=cl)
        g = F.conv2d(x, w, None, s, p).contiguous(memory_format=cl)

        def onednn() -> None:
            torch.ops.aten.convolution_backward(
                g, x, w, None, list(s), list(p), [1, 1], False, [0, 0], 1, [False, True, False]
            )

        def product() -> None:
            conv_weight_grad(g, x, k, s, p)

        best = {onednn: float("inf"), product: float("inf")}
        for f in best:
            f()  # oneDNN makes its primitive on the first call
        for _ in range(3):
            for f in best:
                t = time.perf_counter()
                f()
                best[f] = min(best[f], time.perf_counter() - t)
    return {
        "onednn_s": best[onednn],
        "product_s": best[product],
        "gain": best[onednn] / best[product],
    }
