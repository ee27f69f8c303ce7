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


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_model_on_cuda_matches_cpu(name):
    info = cnnlab.model_info(name)
    torch.manual_seed(0)
    model = cnnlab.create_model(name).eval()
    x = torch.randn(2, *info.input_size)
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
