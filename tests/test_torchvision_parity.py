"""The zoo against torchvision's implementations, weight for weight, where torchvision exists.

cnnlab does not depend on torchvision (it does not import beside the CPU wheel CI uses), so
this module runs only where it imports, such as the GPU machines the project is lent; CI skips
it and says so.  Where it runs, it loads torchvision's freshly initialised weights into the
cnnlab model of the same architecture and requires the same outputs: the same layers, in the
same order, computing the same function.
"""

from __future__ import annotations

import pytest
import torch

import cnnlab

tv_models = pytest.importorskip("torchvision.models", reason="torchvision is not installed here")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# cnnlab name, torchvision builder, native input side.  ResNets are v1.5 in both; the keys of
# their state_dicts are the paper's names in both, so they must match exactly.
SAME_KEYS = [(f"resnet{d}", f"resnet{d}", 224) for d in (18, 34, 50, 101, 152)]
# torchvision numbers layers by position (features.0 ...); cnnlab uses the papers' names, so
# these are matched by order and shape.
BY_ORDER = [
    ("alexnet_onetower", "alexnet", 224),
    ("vgg11", "vgg11", 224),
    ("vgg13", "vgg13", 224),
    ("vgg16", "vgg16", 224),
    ("vgg19", "vgg19", 224),
    ("vgg11_bn", "vgg11_bn", 224),
    ("vgg16_bn", "vgg16_bn", 224),
]


def _pair(ours_name: str, tv_name: str):
    torch.manual_seed(0)
    theirs = getattr(tv_models, tv_name)(weights=None).eval()
    ours = cnnlab.create_model(ours_name).eval()
    return ours, theirs


def _same_outputs(ours, theirs, side: int) -> None:
    x = torch.randn(2, 3, side, side, device=DEVICE)
    ours, theirs = ours.to(DEVICE), theirs.to(DEVICE)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("ours_name", "tv_name", "side"), SAME_KEYS)
def test_resnets_match_torchvision_key_for_key(ours_name, tv_name, side):
    ours, theirs = _pair(ours_name, tv_name)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _same_outputs(ours, theirs, side)


@pytest.mark.parametrize(("ours_name", "tv_name", "side"), BY_ORDER)
def test_positional_models_match_torchvision_in_order(ours_name, tv_name, side):
    ours, theirs = _pair(ours_name, tv_name)
    mine, tv = ours.state_dict(), theirs.state_dict()
    assert [v.shape for v in mine.values()] == [v.shape for v in tv.values()]
    ours.load_state_dict(dict(zip(mine, tv.values(), strict=True)), strict=True)
    _same_outputs(ours, theirs, side)


@pytest.mark.parametrize("name", [n for n, _, _ in SAME_KEYS + BY_ORDER])
def test_parameter_counts_equal_torchvision(name):
    tv_name = dict((o, t) for o, t, _ in SAME_KEYS + BY_ORDER)[name]
    ours, theirs = _pair(name, tv_name)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
