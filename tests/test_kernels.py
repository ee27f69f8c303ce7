"""Convolution weight gradients as one matrix product (cnnlab.train.kernels): the same
gradient as PyTorch's, a switched layer trains as before, and the per-machine verdict is
measured once and remembered."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import build_spec
from cnnlab.train import kernels
from cnnlab.train.device import channels_last_gradients
from cnnlab.train.kernels import _GAIN, conv_weight_grad, matmul_weight_gradients


@pytest.mark.parametrize(
    "c_in, c_out, size, kernel, stride, padding",
    [
        (3, 5, 7, (3, 3), (1, 1), (1, 1)),
        (1, 4, 28, (4, 4), (2, 2), (1, 1)),  # the fast net's stem
        (2, 3, 9, (3, 3), (2, 2), (0, 0)),
        (4, 2, 6, (1, 1), (1, 1), (0, 0)),
        (2, 6, 8, (3, 5), (1, 2), (2, 1)),  # rectangular kernel, stride and padding
    ],
)
def test_the_product_weight_gradient_is_pytorchs(c_in, c_out, size, kernel, stride, padding):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, c_in, size, size, dtype=torch.float64, generator=gen)
    w = torch.randn(c_out, c_in, *kernel, dtype=torch.float64, generator=gen, requires_grad=True)
    y = F.conv2d(x, w, None, stride, padding)
    g = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    y.backward(g)
    for layout in (torch.contiguous_format, torch.channels_last):
        mine = conv_weight_grad(
            g.contiguous(memory_format=layout), x.contiguous(memory_format=layout), kernel,
            stride, padding,
        )  # fmt: skip
        assert mine.shape == w.shape
        torch.testing.assert_close(mine, w.grad, rtol=1e-10, atol=1e-10)
    # The whole autograd function, every input's gradient, by finite differences.
    xs = torch.randn(2, c_in, size, size, dtype=torch.float64, generator=gen, requires_grad=True)
    ws = w.detach().clone().requires_grad_()
    b = torch.randn(c_out, dtype=torch.float64, generator=gen, requires_grad=True)
    conv = kernels._MatmulWeightGradConv.apply
    assert torch.autograd.gradcheck(lambda a, c, d: conv(a, c, d, stride, padding), (xs, ws, b))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return build_spec("conv3-8-bn-relu-conv3-16(pad=0)-bn-relu-gap-fc-10", in_channels=2,
                      input_size=6)  # fmt: skip


def _step(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    with torch.autocast("cpu", torch.bfloat16):
        out = net(x)
    out.float().square().mean().backward()
    return out.detach(), {k: p.grad for k, p in net.named_parameters()}


def test_a_switched_layer_trains_as_pytorchs_and_gives_its_forward_back(monkeypatch):
    monkeypatch.setattr(kernels, "_product_pays", lambda module, shape: True)
    x = torch.randn(32, 2, 6, 6).to(memory_format=torch.channels_last)
    plain, switched = _net(), _net()
    for net in (plain, switched):
        net.to(memory_format=torch.channels_last).train()
        channels_last_gradients(net)
    handles = matmul_weight_gradients(switched)
    convs = [m for m in switched.modules() if isinstance(m, nn.Conv2d)]
    assert len(handles) == len(convs) == 2
    with torch.no_grad():
        switched.eval()(x)  # not training's call (evaluation, no bf16): nothing is decided
        switched.train()
        with torch.autocast("cpu", torch.bfloat16):
            switched[0](x)  # training mode, bf16, but no gradient: not yet
    assert all("_conv_forward" not in m.__dict__ for m in convs)
    out_plain, grads_plain = _step(plain, x)
    out_switched, grads_switched = _step(switched, x)
    assert all("_conv_forward" in m.__dict__ for m in convs)  # switched on its first call
    torch.testing.assert_close(out_switched, out_plain, rtol=0, atol=0)  # oneDNN's forward
    for k, g in grads_plain.items():  # the same gradients, but for bf16 rounding
        assert grads_switched[k].dtype == g.dtype == torch.float32
        torch.testing.assert_close(grads_switched[k], g, rtol=0.05, atol=0.02 * g.abs().max())
    switched.eval()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        torch.testing.assert_close(switched(x), plain.eval()(x), rtol=0, atol=0)
    for h in handles:
        h.remove()
    assert all("_conv_forward" not in m.__dict__ and not m._forward_pre_hooks for m in convs)


def test_a_layer_the_product_does_not_fit_is_left_alone():
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    dilated = nn.Conv2d(4, 4, 3, dilation=2)
    same = nn.Conv2d(4, 4, 3, padding="same")
    circular = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")

    class Mine(nn.Conv2d):
        pass

    net = nn.Sequential(grouped, dilated, same, circular, Mine(4, 4, 1), nn.Conv2d(4, 4, 1))
    (handle,) = matmul_weight_gradients(net)
    assert handle.module is net[5]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "cnnlab" / kernels.WGRAD_FILE


def _first_training_call(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv``, switched, took the product path on its first training call."""
    conv.to(memory_format=torch.channels_last).train()
    (handle,) = matmul_weight_gradients(conv)
    with torch.autocast("cpu", torch.bfloat16):
        conv(x).float().sum().backward()
    taken = "_conv_forward" in conv.__dict__
    handle.remove()
    return taken


def test_the_verdict_is_measured_once_per_shape_and_remembered(fresh_cache):
    x = torch.randn(16, 8, 5, 5).to(memory_format=torch.channels_last)
    taken = _first_training_call(nn.Conv2d(8, 12, 3, padding=1), x)
    saved = json.loads(fresh_cache.read_text())
    (key,) = saved
    assert "input 16x8x5x5 -> 12 channels, kernel 3x3" in key
    assert f"{torch.get_num_threads()} threads" in key and torch.__version__ in key
    entry = saved[key]
    assert entry["onednn_s"] > 0 and entry["product_s"] > 0
    assert entry["gain"] == pytest.approx(entry["onednn_s"] / entry["product_s"])
    assert taken == (entry["gain"] >= _GAIN)

    # The next layer of that shape reads the verdict instead of measuring: shown by edits.
    for gain, expected in ((99.0, True), (0.01, False)):
        fresh_cache.write_text(json.dumps({key: {**entry, "gain": gain}}))
        assert _first_training_call(nn.Conv2d(8, 12, 3, padding=1), x) is expected
    # Another shape is measured and added beside it; a damaged file is measured again.
    _first_training_call(nn.Conv2d(8, 4, 3, padding=1), x)
    assert len(json.loads(fresh_cache.read_text())) == 2
    fresh_cache.write_text('{"' + key[:10])
    _first_training_call(nn.Conv2d(8, 12, 3, padding=1), x)
    assert list(json.loads(fresh_cache.read_text())) == [key]
