"""The analysis engine on plain torch.nn models and on user-written forwards.

Oracles: PyTorch's own forward (shapes), sum(p.numel()) (parameters), hand-written formulas
(MACs), torch.autograd.graph.saved_tensors_hooks (what backward keeps) and gradients of one
output unit (receptive fields).
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis import AnalysisError, analyze
from cnnlab.analysis.render import render
from cnnlab.errors import CnnlabError, GeometryError
from cnnlab.layers import Inception


class UserNet(nn.Module):
    """A user's own network: functional calls, a branch joined by cat, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 8, 1)
        self.mix = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        y = torch.cat([self.left(x), self.right(x)], dim=1)
        z = self.mix(y)
        z = z + F.max_pool2d(x, 2)
        z = F.adaptive_avg_pool2d(z, 1)
        return self.fc(torch.flatten(z, 1))


def _real_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, list[tuple[int, ...]]]:
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, args, out, name=name: shapes.setdefault(name, []).append(tuple(out.shape))
        )
        for name, m in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def test_user_model_every_op_accounted_for():
    model = UserNet().eval()
    a = analyze(model, (3, 16, 16))
    ops = [r.type for r in a.rows if r.kind == "op"]
    assert ops == ["relu", "cat", "max_pool2d", "add", "adaptive_avg_pool2d", "flatten"]
    assert a.totals.uncounted == {}
    # Shapes equal a real forward.
    real = _real_shapes(model, torch.randn(1, 3, 16, 16))
    for r in a.rows:
        if r.kind == "module":
            assert [r.output_shape] == real[r.path]
    assert a.row("<cat>").output_shape == (1, 16, 16, 16)
    assert a.row("<add>").output_shape == (1, 8, 8, 8)
    assert a.output_shapes == ((1, 5),)
    # MACs by hand: out elements x C_in/groups x kH x kW; linear in x out.
    macs = 8 * 16 * 16 * 3 * 9 + 8 * 16 * 16 * 8 * 9 + 8 * 16 * 16 * 8 + 8 * 8 * 8 * 16 * 9 + 40
    assert a.totals.macs == macs
    assert a.totals.flops == 2 * macs
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    # Functional ops are counted as other ops, never as MACs.
    assert a.row("<add>").other_ops == 8 * 8 * 8
    assert a.row("<max_pool2d>").other_ops == 8 * 8 * 8 * 4
    assert a.row("<relu>").macs == 0


def test_rows_at_any_depth_add_up_to_the_totals():
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 4, 3), nn.Sequential(nn.Conv2d(4, 2, 1))),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 3),
    )
    a = analyze(model, (3, 8, 8))
    for depth in (1, 2, 3):
        tops = [r for r in a.visible(depth) if r.depth == 1]
        assert sum(r.params for r in tops) == a.totals.params
        assert sum(r.macs for r in tops) == a.totals.macs
    leaves = a.leaves()
    assert sum(r.params for r in leaves) == a.totals.params
    assert sum(r.macs for r in leaves) == a.totals.macs


def test_shared_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(10, 10)
            self.dec = nn.Linear(10, 10)
            self.dec.weight = self.enc.weight  # tied
            self.again = self.enc  # the same module under a second name

        def forward(self, x):
            return self.dec(self.again(self.enc(x)))

    model = Tied()
    a = analyze(model, (10,))
    assert a.totals.params == 100 + 10 + 10 == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in a.rows if r.depth == 1) == a.totals.params
    enc_calls = [r for r in a.rows if r.path == "enc"]
    assert [r.call for r in enc_calls] == [1, 2]
    assert enc_calls[1].params == 0 and enc_calls[1].notes
    assert a.totals.macs == 3 * 100


def test_frozen_and_buffers_and_params_held_by_a_container():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1, 4, 1, 1))
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.conv.bias.requires_grad_(False)

        def forward(self, x):
            return self.bn(self.conv(x)) * self.scale

    a = analyze(Holder(), (3, 6, 6))
    assert a.totals.params == 4 + 108 + 4 + 8
    assert a.totals.frozen == 4
    assert a.totals.trainable == a.totals.params - 4
    assert a.totals.biases == 4 + 4  # conv bias and BN beta
    assert a.totals.buffers == 4 + 4 + 1  # running mean, var, num_batches_tracked
    assert [r.path for r in a.rows if r.kind == "uncalled"] == ["(model)"]
    assert a.row("<mul>").output_shape == (1, 4, 4, 4)


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
        "training": [m.training for m in model.modules()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
        "devices": {p.device for p in model.parameters()},
        "dtypes": {p.dtype for p in model.parameters()},
        "grads": [p.grad for p in model.parameters()],
        "ids": [id(p) for p in model.parameters()],
    }


@pytest.mark.parametrize("train", [True, False])
def test_the_model_is_left_exactly_as_it_was(train):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 4),
    ).double()
    model.train(train)
    model[1].running_mean.fill_(0.25)
    before = _snapshot(model)
    a = analyze(model, (3, 8, 8), batch=3)
    after = _snapshot(model)
    assert after["training"] == before["training"]
    assert after["hooks"] == before["hooks"] == [(0, 0, 0)] * len(before["hooks"])
    assert after["devices"] == before["devices"] and after["dtypes"] == before["dtypes"]
    assert after["grads"] == before["grads"] == [None] * len(before["grads"])
    assert after["ids"] == before["ids"]
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k
    assert int(model[1].num_batches_tracked) == 0
    assert a.input_shape == (3, 3, 8, 8)
    # ... and the model still runs normally afterwards.
    assert model(torch.randn(2, 3, 8, 8, dtype=torch.float64)).shape == (2, 4)


def test_hooks_are_removed_when_the_forward_fails():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 2))
    with pytest.raises(CnnlabError, match=r"1 \(Linear\).*expects 5 input features"):
        analyze(model, (3, 8, 8))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_uncounted_ops_are_listed_never_silently_zero():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return torch.logcumsumexp(y, dim=1).transpose(2, 3)

    a = analyze(Odd(), (3, 8, 8))
    assert a.totals.uncounted == {"logcumsumexp": 1}
    row = a.row("<logcumsumexp>")
    assert row.uncounted == ("logcumsumexp",) and row.notes
    assert a.row("<transpose>").uncounted == ()  # a view: counted, and costs nothing
    assert a.row("<transpose>").output_shape == (1, 4, 6, 6)
    assert a.totals.macs == 4 * 36 * 27


def test_strict_geometry_raises_the_lecture_message():
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 1, 3, stride=3))
    with pytest.raises(GeometryError) as info:
        analyze(model, (1, 7, 7), strict=True)
    msg = str(info.value)
    assert msg.startswith(
        "conv1: (7 - 3 + 2*0)/3 + 1 = 2.33 is not a whole number: a 3x3 filter at stride 3 "
        "does not fit a 7x7 input"
    )
    assert "Strides that fit: 1, 2, 4. Paddings that fit stride 3: 1 (gives 3x3)." in msg
    # By default the table marks the layer instead.
    a = analyze(model, (1, 7, 7))
    assert a.row("conv1").fit == "drops 1"
    assert a.row("conv1").output_shape == (1, 1, 2, 2)


def test_fit_column_and_ceil_mode():
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3, stride=2, padding=1),  # (8 - 3 + 2)/2 + 1 = 4.5: drops a pad cell
        nn.MaxPool2d(3, 2, ceil_mode=True),  # (4 - 3)/2 + 1 = 1.5 -> 2 with ceil
        nn.Conv2d(1, 1, 2),  # exact
    )
    a = analyze(model, (1, 8, 8))
    assert [a.row(p).fit for p in ("0", "1", "2")] == ["drops 1 pad", "ceil +1", "exact"]
    with pytest.raises(GeometryError, match="0: .*4.50 is not a whole number"):
        analyze(model, (1, 8, 8), strict=True)
    with pytest.raises(GeometryError, match=r"1: \(4 - 3 \+ 2\*0\)/2 \+ 1 = 1.50.*ceil_mode"):
        analyze(model[1:], (1, 4, 4), strict=True)


def test_input_too_small_names_the_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5))
    with pytest.raises(GeometryError, match=r"^2 \(Conv2d\): .*volume vanishes"):
        analyze(model, (3, 10, 10))


def test_wrong_channels_and_bad_sizes_are_clear_errors():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(CnnlabError, match=r"0 \(Conv2d\): input has 1 channels but the filters"):
        analyze(model, (1, 8, 8))
    for bad in [(3, 0, 8), (), "3x8", (3, 8.0, 8)]:
        with pytest.raises(CnnlabError, match="input size"):
            analyze(model, bad)
    with pytest.raises(CnnlabError, match="batch"):
        analyze(model, (3, 8, 8), batch=0)


def test_dtype_and_batch_scale_bytes_and_macs():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    a32 = analyze(model, (3, 8, 8))
    a16 = analyze(model, (3, 8, 8), dtype=torch.float16, batch=4)
    assert a16.totals.macs == 4 * a32.totals.macs
    assert a16.totals.activation_values == 4 * a32.totals.activation_values
    assert a16.totals.activation_bytes == 2 * a32.totals.activation_bytes
    assert a16.totals.param_bytes == a32.totals.param_bytes  # parameters keep their dtype
    # Forward memory: the input, the conv output and the (not in-place) ReLU output.
    assert a32.totals.activation_values == 3 * 64 + 2 * 4 * 36
    inplace = analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True)), (3, 8, 8))
    assert inplace.totals.activation_values == 3 * 64 + 4 * 36


def _measured_saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of distinct storages autograd keeps for backward (model state excluded)."""
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in state:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(seen.values())


@pytest.mark.parametrize(
    "make",
    [
        lambda: UserNet(),
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Sigmoid(),
            nn.AvgPool2d(2),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(32, 6),
            nn.Tanh(),
            nn.Linear(6, 2),
        ),
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.LocalResponseNorm(5),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Linear(72, 4),
        ),
    ],
    ids=["user", "classic", "lrn"],
)
def test_saved_for_backward_matches_autograd(make):
    torch.manual_seed(0)
    model = make().train()
    a = analyze(model, (3, 12, 12), batch=2)
    assert a.totals.training.saved_activations == _measured_saved_bytes(
        model, torch.randn(2, 3, 12, 12)
    )
    t = a.totals.training
    assert t.sgd_momentum == t.saved_activations + 3 * a.totals.param_bytes
    assert t.adam == t.saved_activations + 4 * a.totals.param_bytes


def _grad_box(model: nn.Module, x: torch.Tensor, path: str, unit: tuple[int, int]):
    """Rows and columns of the input that one output unit of ``path`` depends on."""
    captured = {}
    module = dict(model.named_modules())[path]
    h = module.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    x = x.clone().requires_grad_(True)
    try:
        model(x)
    finally:
        h.remove()
    out = captured["out"]
    out[0, :, unit[0], unit[1]].sum().backward()
    nz = (x.grad[0].abs().sum(0) != 0).nonzero()
    return (int(nz[:, 0].min()), int(nz[:, 0].max())), (int(nz[:, 1].min()), int(nz[:, 1].max()))


def _expected_box(field, unit, size):
    boxes = []
    for axis in range(2):
        lo = field.start[axis] + unit[axis] * field.jump[axis]
        hi = lo + field.size[axis] - 1
        boxes.append((max(lo, 0), min(hi, size[axis] - 1)))
    return tuple(boxes)


def _positive(model: nn.Module) -> nn.Module:
    """Weights > 0 (with positive inputs nothing cancels, no ReLU is dead) and max pooling
    replaced by average pooling of the same geometry, so that every cell a unit could see
    gets a gradient.  Receptive fields depend only on the geometry, which is unchanged."""
    model = copy.deepcopy(model).double().eval()
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(
                    m,
                    child_name,
                    nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode),
                )
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.0)
    return model


@pytest.mark.parametrize(
    "make,size",
    [
        (
            lambda: nn.Sequential(
                nn.Conv2d(1, 2, 3, padding=1),
                nn.MaxPool2d(2),
                nn.Conv2d(2, 2, 3, stride=2, padding=1, dilation=2),
                nn.Conv2d(2, 2, 5, padding=2),
            ),
            (1, 29, 29),
        ),
        (lambda: UserNet(), (3, 20, 20)),
        # Branches of unequal fields joined by cat (inception: 1x1, 3x3, 5x5, pool+1x1) and
        # residual adds with option-A (strided slicing + zero maps) shortcuts.
        (
            lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), Inception(4, 2, 2, 3, 2, 3, 2)),
            (3, 23, 23),
        ),
        (lambda: cnnlab.create_model("resnet20", input_size=16), (3, 16, 16)),
    ],
    ids=["chain", "user", "inception", "resnet20"],
)
def test_receptive_fields_match_gradients(make, size):
    model = _positive(make())
    dilated = any(
        getattr(m, "dilation", (1,)) != (1, 1) for m in model.modules() if isinstance(m, nn.Conv2d)
    )
    a = analyze(model, size)
    x = torch.rand(1, *size, dtype=torch.float64) + 0.5
    checked = 0
    for r in a.rows:
        if r.kind != "module" or r.field is None or r.field.is_global or len(r.output_shape) != 4:
            continue
        h, w = r.output_shape[2:]
        for unit in {(0, 0), (h // 2, w // 2), (h - 1, w - 1)}:
            expected = _expected_box(r.field, unit, size[1:])
            inside = all(
                r.field.start[i] + unit[i] * r.field.jump[i] >= 0
                and r.field.start[i] + unit[i] * r.field.jump[i] + r.field.size[i] <= size[1 + i]
                for i in range(2)
            )
            if dilated and not inside:
                # A dilated window has holes: cut by the border, the cells a unit really
                # reads can start after the edge of its field.  Check whole fields only.
                continue
            got = _grad_box(model, x, r.path, unit)
            assert got == expected, (r.path, unit)
            checked += 1
    assert checked >= 6


def test_vgg16_at_4096_in_bounded_memory():
    # A fresh interpreter, so that peak RSS is this test's own.  At 4096x4096 one activation
    # map of conv1_1 alone is 4 GiB (float32), and the paper's fc6 (512*128*128 inputs) would
    # hold 137 GB of weights.  (1) VGG-16 built on the meta device for 4096x4096, analyzed;
    # (2) the conv layers of a real, initialised VGG-16 (~59 MB of weights), analyzed at
    # 4096x4096: neither may grow the peak RSS by 256 MB (imports included), against the GBs
    # that running them would take.
    code = textwrap.dedent(
        """
        import collections, itertools, resource, torch, cnnlab
        from cnnlab.analysis import analyze
        rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        real = cnnlab.create_model("vgg16")
        convs = torch.nn.Sequential(collections.OrderedDict(
            itertools.takewhile(lambda kv: kv[0] != "flatten", real.named_children())))
        analyze(convs, (3, 64, 64))  # warm up the interpreter's own caches
        before = rss()
        a = analyze(convs, (3, 4096, 4096))
        grown_real = rss() - before
        before = rss()
        with torch.device("meta"):
            big = cnnlab.create_model("vgg16", input_size=4096)
        b = analyze(big, (3, 4096, 4096))
        grown_meta = rss() - before
        print(grown_real, grown_meta, a.row("conv1_1").activation_bytes, b.totals.params,
              a.totals.macs, b.totals.activation_bytes)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    grown_real, grown_meta, conv_bytes, params, macs, act_bytes = map(int, out)
    assert conv_bytes == 64 * 4096 * 4096 * 4
    assert params == 138_357_544 - 102_764_544 + (512 * 128 * 128 + 1) * 4096
    # VGG-16's conv MACs per input pixel: (15,470,264,320 - 123,633,664 FC MACs) / 224^2.
    assert macs == 305_856 * 4096**2
    assert act_bytes > 4 * 2**30
    assert grown_real < 256 * 1024, f"analysis grew the peak RSS by {grown_real} KiB"
    assert grown_meta < 256 * 1024, f"meta build + analysis grew the peak RSS by {grown_meta} KiB"


def test_analysis_error_for_ops_that_need_values():
    class NeedsValues(nn.Module):
        def forward(self, x):
            return x[x > 0]  # the output size depends on the values

    with pytest.raises(AnalysisError, match=r"\(model\) \(NeedsValues\)"):
        analyze(NeedsValues(), (3, 4, 4))


def test_meta_build_and_analysis_skip_pytorchs_python_meta_kernels():
    # Running PyTorch's Python meta kernels (nn.init on meta tensors, meta BatchNorm...) costs
    # about a second per process the first time (it imports torch._dynamo); the analysis and
    # build_on_meta never need them (one model of each zoo family and layer kind).
    code = textwrap.dedent(
        """
        import sys, cnnlab
        from cnnlab.analysis import analyze, build_on_meta
        for name in ("lenet5", "alexnet", "zfnet", "googlenet", "resnet50", "resnet20",
                     "vgg_a_lrn", "vgg_d_bn"):
            model = build_on_meta(cnnlab.create_model, name)
            assert all(p.is_meta for p in model.parameters()), name
            a = analyze(model, cnnlab.model_info(name).input_size)
            assert a.totals.params == cnnlab.model_info(name).params, name
        print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    assert out.strip() == "[]"


def test_the_torchinfo_habit_of_a_batch_in_the_input_size_gets_a_hint():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(CnnlabError, match=r"without the batch .*try \(3, 32, 32\)"):
        analyze(model, (1, 3, 32, 32))
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(CnnlabError, match=r"not a tensor .*shape \(2, 3, 8, 8\)") as err:
        analyze(model, x)
    assert len(str(err.value)) < 300  # the tensor's values are not pasted
    assert analyze(model, tuple(x.shape[1:]), batch=x.shape[0]).output_shapes == ((2, 4, 6, 6),)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_a_forward_that_raises_is_named_with_its_type_and_line():
    class Raises(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return {"a": y}["b"]  # a KeyError in the user's own code

    with pytest.raises(AnalysisError) as err:
        analyze(Raises(), (3, 8, 8))
    line = Raises.forward.__code__.co_firstlineno + 2
    assert "(model) (Raises): the forward failed on an input of shape 1x3x8x8: KeyError: 'b'" in (
        str(err.value)
    )
    assert str(err.value).endswith(f"(at tests/test_analysis.py:{line})")
    assert isinstance(err.value.__cause__, KeyError)  # the whole story, for --traceback
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(CnnlabError, match=r"\(model\) is a TorchScript module"):
        analyze(scripted, (3, 8, 8))
    holder = nn.Sequential(nn.Conv2d(3, 3, 1), scripted)
    with pytest.raises(CnnlabError, match=r"^1 is a TorchScript module"):
        analyze(holder, (3, 8, 8))


def test_a_model_with_several_inputs():
    class ImageAndTokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.embed = nn.Embedding(20, 4)
            self.fc = nn.Linear(4, 2)

        def forward(self, image, tokens):
            return self.fc(self.conv(image).mean((2, 3)) + self.embed(tokens).mean(1))

    model = ImageAndTokens()
    a = analyze(model, [(3, 8, 8), (5,)], batch=2, dtype=[torch.float32, torch.long])
    real = model(torch.randn(2, 3, 8, 8), torch.randint(0, 20, (2, 5)))
    assert a.output_shapes == (tuple(real.shape),)
    assert a.input_shapes == ((2, 3, 8, 8), (2, 5)) and a.input_shape == (2, 3, 8, 8)
    assert a.totals.macs == 2 * (4 * 36 * 27 + 4 * 2)
    assert a.totals.input_values == 2 * (3 * 64 + 5)
    assert a.totals.activation_bytes >= 2 * (3 * 64 * 4 + 5 * 8)  # the indices are int64
    assert "ImageAndTokens on 2x3x8x8, 2x5" in render(a, "markdown")
    with pytest.raises(CnnlabError, match=r"one per input \(2\)"):
        analyze(model, [(3, 8, 8), (5,)], dtype=[torch.float32])


def test_sizes_no_tensor_can_have_are_refused_by_name():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(CnnlabError, match=r"3x99999999999999999999x9 with batch 1 is 2.7e\+21"):
        analyze(model, (3, 99999999999999999999, 9))
    with pytest.raises(CnnlabError, match=r"batch 100000000000000000000 is"):
        analyze(model, (3, 9, 9), batch=10**20)
    grows = nn.Sequential(nn.Upsample(scale_factor=2**20), nn.Conv2d(3, 4, 3))
    with pytest.raises(CnnlabError, match=r"^0 \(Upsample\): an output of shape 1x3x1099511627776"):
        analyze(grows, (3, 2**20, 2**20))
    assert analyze(model, (3, 2**20, 2**20)).row("0").output_shape == (1, 4, 2**20 - 2, 2**20 - 2)
