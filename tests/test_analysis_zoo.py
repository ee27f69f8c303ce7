"""Every registered model, analyzed: against a real forward, sum(p.numel()), an independent
hand count of multiply-adds, autograd's saved tensors, and the published numbers."""

from __future__ import annotations

import pytest
import torch
from test_analysis import _measured_saved_bytes
from torch import nn

import cnnlab
from cnnlab.analysis import analyze
from cnnlab.errors import CnnlabError
from cnnlab.layers import ConnectionTableConv2d

MODELS = cnnlab.list_models()
_SMALL = (32, 64, 96, 128)
# Deeper members of a family repeat the blocks of a shallower one: their real-forward check
# would add a minute of CPU and nothing new (their counts are checked at native size).
_REPEATS = {
    "resnet101": "resnet50",
    "resnet152": "resnet50",
    "resnet44": "resnet32",
    "resnet56": "resnet32",
    "resnet110": "resnet32",
    "resnet1202": "resnet32",
}


def _small_model(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    """The model built for the smallest input it accepts among _SMALL (else its native one)."""
    info = cnnlab.model_info(name)
    c = info.input_size[0]
    for s in _SMALL:
        if s >= info.input_size[1]:
            break
        try:
            return cnnlab.create_model(name, input_size=s), (c, s, s)
        except CnnlabError:
            continue
    return cnnlab.create_model(name), info.input_size


def _hand_macs(module: nn.Module, out: torch.Tensor) -> int:
    """Multiply-adds of one module call, written out independently of cnnlab's rules."""
    if isinstance(module, ConnectionTableConv2d):
        kh, kw = module.kernel_size
        return out.shape[0] * out.shape[2] * out.shape[3] * module.connections * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def _real_run(model: nn.Module, x: torch.Tensor):
    shapes: list[tuple[str, tuple[int, ...]]] = []
    macs = [0]
    names = {id(m): n for n, m in model.named_modules()}

    def hook(m, args, out):
        shapes.append((names[id(m)], tuple(out.shape)))
        macs[0] += _hand_macs(m, out)

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes, macs[0]


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_against_a_real_forward(name):
    if name in _REPEATS:
        pytest.skip(f"same blocks as {_REPEATS[name]}, only more of them; counts checked below")
    torch.manual_seed(0)
    model, size = _small_model(name)
    model.eval()
    a = analyze(model, size, batch=2)
    shapes, macs = _real_run(model, torch.randn(2, *size))
    ours = [(r.path, r.output_shape) for r in a.rows if r.kind == "module"]
    # Rows list a module before what it contains; hooks fire when a call ends.
    assert sorted(ours) == sorted(shapes)
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    assert a.totals.macs == macs
    assert a.totals.uncounted == {}
    # Rows at depth 1 always add up to the totals.
    top = [r for r in a.rows if r.depth == 1]
    assert sum(r.params for r in top) == a.totals.params
    assert sum(r.macs for r in top) == a.totals.macs


@pytest.mark.parametrize(
    "name", ["lenet5", "lenet5_modern", "alexnet", "googlenet", "resnet20", "resnet50", "vgg_a_lrn"]
)
def test_kept_for_backward_matches_autograd(name):
    torch.manual_seed(0)
    model, size = _small_model(name)
    model.train()
    a = analyze(model, size, batch=2)
    measured = _measured_saved_bytes(model, torch.randn(2, *size))
    assert a.totals.training.saved_activations == measured


@pytest.mark.parametrize("name", MODELS)
def test_native_size_gives_the_published_counts(name):
    info = cnnlab.model_info(name)
    try:
        with torch.device("meta"):
            model = cnnlab.create_model(name)
    except RuntimeError:  # a builder that needs real values (LeNet's C3 initialisation)
        model = cnnlab.create_model(name)
    a = analyze(model, info.input_size)
    assert a.totals.params == info.params
    if info.macs is not None:
        assert a.totals.macs == info.macs
    assert a.totals.uncounted == {}
    assert all(r.field is not None for r in a.rows if r.kind != "uncalled")


def test_googlenet_aux_heads_are_rows_in_training_and_uncalled_in_eval():
    with torch.device("meta"):
        model = cnnlab.create_model("googlenet", aux_logits=True)
    model.eval()
    a = analyze(model, (3, 224, 224))
    uncalled = [r for r in a.rows if r.kind == "uncalled"]
    assert {r.path for r in uncalled} == {"aux1", "aux2"}
    assert sum(r.params for r in uncalled) == 3_188_840 + 3_190_888
    assert a.totals.params == 13_378_280
    model.train()
    t = analyze(model, (3, 224, 224))
    assert not [r for r in t.rows if r.kind == "uncalled"]
    assert t.row("aux1").macs == 4_169_728 and t.row("aux2").macs == 4_202_496
    assert len(t.output_shapes) == 3
