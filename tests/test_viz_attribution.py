"""Projections to the pixels and Grad-CAM against hand computations on tiny networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.cli import main
from cnnlab.viz.attribution import grad_cam, unit_projection


def _two_convs(w1: float, w2: float) -> nn.Sequential:
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.Conv2d(1, 1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(w1)
        net[2].weight.fill_(w2)
    return net


@pytest.mark.parametrize(
    ("w1", "w2", "x", "guided", "deconvnet", "plain"),
    [
        (2.0, 3.0, 1.0, 6.0, 6.0, 6.0),  # the ReLU is open, the gradient positive
        (2.0, 3.0, -1.0, 0.0, 6.0, 0.0),  # closed in the forward: only deconvnet passes it
        (2.0, -3.0, 1.0, 0.0, 0.0, -6.0),  # a negative gradient: neither passes it
    ],
)
def test_guided_and_deconvnet_change_only_the_relu_backward(w1, w2, x, guided, deconvnet, plain):
    net = _two_convs(w1, w2)
    image = torch.zeros(1, 3, 3)
    image[0, 1, 2] = x
    for method, expected in (("guided", guided), ("deconvnet", deconvnet)):
        g = unit_projection(net, image, "2", 0, (1, 2), method)
        want = torch.zeros(1, 3, 3)
        want[0, 1, 2] = expected
        assert torch.equal(g, want), method
    x_ = image[None].clone().requires_grad_(True)
    net(x_)[0, 0, 1, 2].backward()
    assert float(x_.grad[0, 0, 1, 2]) == plain  # the plain gradient, for comparison
    assert not any(m._forward_hooks for m in net.modules())  # nothing left behind


def test_grad_cam_of_global_pooling_is_the_class_activation_map():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip
    image = torch.randn(1, 6, 6)
    cam, cls = grad_cam(net, image, "1", target=2)
    assert cls == 2
    maps = net[1](net[0](image[None]))[0].detach()  # (4, 6, 6)
    # with global average pooling, the mean gradient of map k is w[2, k] / (H*W) (Zhou et
    # al. 2016's CAM up to a constant, which the scaling to [0, 1] removes)
    expected = torch.relu((net[4].weight[2, :, None, None].detach() * maps).sum(0))
    assert torch.allclose(cam, expected / expected.max(), atol=1e-6)


def test_cnnlab_viz_gradcam_and_maxact_projections(small_runs, tmp_path):
    run = str(small_runs[0])
    out = tmp_path / "g.png"
    assert (
        main(["viz", "gradcam", run, "--index", "0", "--class", "Trouser", "--out", str(out)]) == 0
    )
    assert Image.open(out).size[0] > 300
    out = tmp_path / "m.png"
    args = ["viz", "maxact", run, "--layer", "conv2_1", "--channels", "2", "--top", "3"]
    assert main([*args, "--limit", "100", "--project", "guided", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).std() > 10
    assert main([*args, "--project", "saliency", "--out", str(out)]) == 2
