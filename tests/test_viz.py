"""cnnlab.viz: hooks that never outlive their block, the denormalization, the worked
arithmetic as data, the image grid."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError, GeometryError
from cnnlab.viz import denormalize, hooked, image_grid, record_outputs, window_arithmetic


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_record_outputs_equals_the_forward_and_leaves_no_hook():
    net, x = _net(), torch.randn(2, 1, 8, 8)
    seen = record_outputs(net, x, ["0", "3"])
    assert set(seen) == {"0", "3"} and _hook_count(net) == 0
    assert torch.equal(seen["0"], net[0](x)) and torch.equal(seen["3"], net(x))
    assert set(record_outputs(net, x)) == {"0", "1", "2", "3"}  # every leaf by default


def test_hooks_are_removed_when_the_forward_raises():
    net = _net()
    calls = []
    with pytest.raises(RuntimeError), hooked(net, lambda *a: calls.append(a[0])):
        assert _hook_count(net) == 4
        net(torch.randn(1, 1, 5, 5))  # the linear layer gets the wrong number of features
    assert calls == ["0", "1", "2"] and _hook_count(net) == 0
    net(torch.randn(1, 1, 8, 8))
    assert calls == ["0", "1", "2"]  # nothing records after the block


def test_an_unknown_module_name_is_refused_before_any_hook_is_set():
    net = _net()
    with pytest.raises(CnnlabError, match="no module 'conv9'"), hooked(net, print, ["0", "conv9"]):
        pass
    assert _hook_count(net) == 0


def test_denormalize_inverts_the_pipeline_normalization():
    pixels = torch.randint(0, 256, (3, 2, 4, 4), dtype=torch.uint8)
    mean, std = (0.3, 0.6), (0.2, 0.25)
    m, s = torch.tensor(mean).view(1, 2, 1, 1), torch.tensor(std).view(1, 2, 1, 1)
    x = (pixels / 255 - m) / s
    assert torch.equal(denormalize(x, mean, std), pixels)
    assert denormalize(torch.full((1, 2, 1, 1), 100.0), mean, std).max() == 255  # clamped
    with pytest.raises(CnnlabError, match="2 channels but 1 means"):
        denormalize(x, (0.5,), (0.5,))


def test_window_arithmetic_is_the_lectures():
    a = window_arithmetic(7, 3, 2)
    assert (a.output, a.exact, a.stride) == (3, True, 2)
    assert a.fit.formula() == "(7 - 3 + 2*0)/2 + 1 = 3"
    pool = window_arithmetic(55, 3, 2, pool=True)
    assert pool.output == 27 and pool.params is None
    conv = window_arithmetic(32, 5, padding=2, depth=3, filters=10, same=True)
    assert (conv.params.total, conv.params.weights, conv.depth_out) == (760, 750, 10)
    assert (conv.same, conv.same_output) == (2, 32)
    with pytest.raises(GeometryError, match="Strides that fit: 1, 2, 4"):
        window_arithmetic(7, 3, 3)
    assert window_arithmetic(7, 3, 3, ceil=True).output == 3
    with pytest.raises(GeometryError, match="no parameters"):
        window_arithmetic(7, 3, 2, pool=True, depth=3, filters=2)


def test_image_grid_is_exported_at_the_top_and_lays_out_cells():
    assert cnnlab.image_grid is image_grid
    grid = image_grid(torch.zeros(5, 1, 8, 8, dtype=torch.uint8), list("abcde"), columns=2)
    assert grid.mode == "RGB" and grid.width > 2 * 64 and grid.height > 3 * 64
