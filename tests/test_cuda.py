"""Every zoo model on a CUDA device: runs, trains a step, and computes what it computes on CPU.

Catches tensors a layer creates on the wrong device (masks, zero-padding shortcuts, LRN
windows).  Runs where a CUDA device exists; CI has none and reports the skip.
"""

from __future__ import annotations

import pytest
import torch

import cnnlab

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _exact_float32():
    # TF32 matmuls would make CUDA differ from CPU by ~1e-3; compare true float32.
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Give BatchNorm the statistics of ``x``: untrained deep ResNets in eval mode (running
    mean 0, variance 1) otherwise grow to 1e8 or NaN, and nothing can be compared."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_model_on_cuda_matches_cpu(name):
    info = cnnlab.model_info(name)
    torch.manual_seed(0)
    x = torch.randn(2, *info.input_size)
    model = _calibrate_batchnorm(cnnlab.create_model(name), x)
    with torch.no_grad():
        expected = model(x)
        got = model.cuda()(x.cuda())
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-3, atol=1e-3)

    model.train()
    out = model(x.cuda())
    out = out[0] if isinstance(out, tuple) else out
    out.float().sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in model.parameters())
