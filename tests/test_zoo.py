"""The zoo: every registered model builds, trains one step and has its published size.

Parametrized over ``cnnlab.list_models()``, so a new model cannot skip these tests; a model
whose published parameter count is not written below fails until someone writes it down.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError, GeometryError, UnknownModelError
from cnnlab.layers import ConnectionTableConv2d
from cnnlab.zoo import REGISTRY, ModelInfo, create_model, list_models, model_info

# Published (or, where marked, derived) parameter counts at the native input, 1000 classes
# (10 for LeNet and the CIFAR ResNets).  Sources: the papers and torchvision's metadata.
EXPECTED_PARAMS = {
    "lenet5": 60_850,  # 60,000 in C1..F6 (LeCun 1998) + 850 in the linear output
    "lenet5_modern": 61_706,
    "alexnet": 60_965_224,
    "alexnet_onetower": 61_100_840,  # torchvision's alexnet
    "zfnet": 62_357_608,
    "vgg_a": 132_863_336,
    "vgg_a_lrn": 132_863_336,
    "vgg_b": 133_047_848,
    "vgg_c": 133_638_952,
    "vgg_d": 138_357_544,
    "vgg_e": 143_667_240,
    "vgg_a_bn": 132_868_840,  # torchvision vgg11_bn
    "vgg_b_bn": 133_053_736,  # vgg13_bn
    "vgg_c_bn": 133_647_400,  # derived: C + BN over the same conv widths as D (8,448)
    "vgg_d_bn": 138_365_992,  # vgg16_bn
    "vgg_e_bn": 143_678_248,  # vgg19_bn
    "googlenet": 6_998_552,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}
# The aliases: the lecture's names for VGG configurations A, B, D and E.
ALIASES = {"vgg11": "vgg_a", "vgg13": "vgg_b", "vgg16": "vgg_d", "vgg19": "vgg_e"}

MODELS = list_models()


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _expected(info: ModelInfo) -> int:
    for key in (info.name, *info.aliases):
        if key in EXPECTED_PARAMS:
            return EXPECTED_PARAMS[key]
    pytest.fail(f"{info.name}: write its published parameter count into EXPECTED_PARAMS")


class MacCounter:
    """Conv and linear multiply-adds per image (torchvision's convention), from real shapes."""

    def __init__(self, model: nn.Module):
        self.total = 0
        kinds = (nn.Conv2d, nn.Linear, ConnectionTableConv2d)
        self._handles = [
            m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, kinds)
        ]

    def _hook(self, m, inputs, out):
        per_image = out[0].numel()  # outputs of one image
        if isinstance(m, nn.Linear):
            self.total += per_image * m.in_features
        elif isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            self.total += per_image * (m.in_channels // m.groups) * kh * kw
        else:  # each output map sees only its table row
            kh, kw = m.kernel_size
            self.total += out[0, 0].numel() * m.connections * kh * kw

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _forward_backward(model: nn.Module, x: torch.Tensor, classes: int) -> torch.Tensor:
    model.train()
    out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (x.shape[0], classes)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.arange(x.shape[0]) % classes).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    return out


def _first_conv(model: nn.Module) -> nn.Module:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d | ConnectionTableConv2d))


@pytest.mark.parametrize("name", MODELS)
def test_native_build_counts_forward_backward(name):
    """Builds at its native input, trains one step at batch 2, and has the published counts."""
    torch.manual_seed(0)
    info = model_info(name)
    model = create_model(name)
    assert isinstance(model, nn.Module)
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert _params(model) == _expected(info) == info.params
    assert info.paper and len(info.input_size) == 3
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())
    counter = MacCounter(model)
    _forward_backward(model, torch.randn(2, *info.input_size), info.num_classes)
    counter.remove()
    if info.macs is not None:
        assert counter.total == info.macs


def _small_build(name: str, **options) -> tuple[nn.Module, int]:
    """The model built for the smallest of a few square inputs it accepts (keeps tests fast)."""
    for size in (32, 64, 96):
        try:
            return create_model(name, input_size=size, **options), size
        except GeometryError:
            continue
    return create_model(name, **options), model_info(name).input_size[1]


@pytest.mark.parametrize("name", MODELS)
def test_num_classes_and_in_channels(name):
    torch.manual_seed(0)
    model, size = _small_build(name, num_classes=7, in_channels=1)
    assert _first_conv(model).in_channels == 1
    _forward_backward(model, torch.randn(2, 1, size, size), 7)


FASHION = [n for n in MODELS if model_info(n).input_size[1:] == (32, 32)]


def test_the_small_networks_are_the_ones_expected():
    assert {"lenet5", "lenet5_modern", "resnet20", "resnet1202"} <= set(FASHION)


@pytest.mark.parametrize("name", FASHION)
def test_fashion_mnist_28x28x1(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, input_size=28)
    _forward_backward(model, torch.randn(2, 1, 28, 28), 10)
    if name.startswith("resnet"):  # global average pooling: the same parameters
        assert _params(model) + 2 * 9 * 16 == model_info(name).params


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern"])
def test_lenet_centres_28x28_in_the_papers_32x32_field(name):
    torch.manual_seed(0)
    at28 = create_model(name, input_size=28)
    at32 = create_model(name)
    assert _params(at28) == _params(at32) == EXPECTED_PARAMS[name]
    assert at28.pad.padding == (2, 2, 2, 2) and not hasattr(at32, "pad")
    at32.load_state_dict(at28.state_dict())
    at28.eval(), at32.eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(at28(x), at32(F.pad(x, (2, 2, 2, 2))))


def test_lenet_paper_layers():
    model = create_model("lenet5")
    names = [n for n, _ in model.named_children()]
    assert names == ["c1", "act1", "s2", "act2", "c3", "act3", "s4", "act4", "c5", "act5",
                     "flatten", "f6", "act6", "output"]  # fmt: skip
    per_layer = {n: _params(m) for n, m in model.named_children() if _params(m)}
    # LeCun 1998, section II-B: 156, 12, 1,516, 32, 48,120, 10,164 = 60,000; + 850 output
    assert per_layer == {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120,
                         "f6": 10_164, "output": 850}  # fmt: skip
    assert sum(v for k, v in per_layer.items() if k != "output") == 60_000
    # a larger input keeps its size: C5 gives 2x2 outputs and F6 reads all of them
    assert create_model("lenet5", input_size=36).f6.in_features == 120 * 2 * 2


@pytest.mark.parametrize(
    "name, size, layer, smallest",
    [
        ("alexnet", 32, "pool2", 67),
        ("alexnet_onetower", 32, "pool5", 63),
        ("zfnet", 32, "pool5", 63),
    ],
)
def test_too_small_input_fails_at_build_time_naming_the_layer(name, size, layer, smallest):
    with pytest.raises(GeometryError) as err:
        create_model(name, input_size=size)
    message = str(err.value)
    assert f"{name}: input {size}x{size} is too small" in message
    assert f"at layer {layer} " in message and "vanishes" in message
    assert f"at least {smallest}" in message
    # The smallest size is exact: it builds and runs, and torch rejects one pixel less.
    model = create_model(name, input_size=smallest).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, smallest, smallest))
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, smallest - 1, smallest - 1))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 260), w=st.integers(1, 260))
@pytest.mark.parametrize(
    "name, options",
    [("lenet5", {}), ("alexnet", {}), ("alexnet_onetower", {}), ("zfnet", {}),
     ("googlenet", {"aux_logits": True}), ("resnet18", {}), ("resnet20", {})],
)  # fmt: skip
def test_build_time_geometry_agrees_with_torch(name, options, h, w):
    """A model builds for an input exactly when torch can run it (shapes only, on "meta")."""
    info = model_info(name)
    with torch.device("meta"):
        try:
            model = create_model(name, input_size=(h, w), **options)
        except GeometryError:
            model = None
        # A network that does not build, built for its native input, must fail on this one.
        runner = model or create_model(name, **options)
        try:
            out = runner.train()(torch.empty(2, info.input_size[0], h, w))
        except RuntimeError:
            out = None
    assert (model is None) == (out is None), f"build and torch disagree at {h}x{w}"
    if model is not None:
        logits = out[0] if isinstance(out, tuple) else out
        assert logits.shape == (2, info.num_classes)


def test_googlenet_aux_head_too_small_is_named():
    create_model("googlenet", input_size=40)  # the main path copes with 40x40 ...
    with pytest.raises(GeometryError, match=r"at layer aux1\.pool .*at least 79"):
        create_model("googlenet", input_size=40, aux_logits=True)  # ... the 5x5/3 head not


@pytest.mark.parametrize("name, size", [("alexnet", 100), ("zfnet", (80, 120)), ("lenet5", 50)])
def test_fc_width_follows_the_input_size(name, size):
    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        model(torch.randn(1, 3 if name != "lenet5" else 1, h, w))  # a wrong width would raise


def test_alexnet_layers_and_lrn_order():
    lecture = [n for n, _ in create_model("alexnet").named_children()][:8]
    assert lecture == ["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2"]
    paper = create_model("alexnet", norm_before_pool=True)
    assert [n for n, _ in paper.named_children()][:4] == ["conv1", "relu1", "norm1", "pool1"]
    assert _params(paper) == EXPECTED_PARAMS["alexnet"]
    model = create_model("alexnet")
    assert [model.conv2.groups, model.conv3.groups, model.conv4.groups] == [2, 1, 2]
    assert (model.norm1.size, model.norm1.alpha, model.norm1.beta, model.norm1.k) == (
        5, 1e-4, 0.75, 2.0)  # fmt: skip
    assert model.fc6.in_features == 256 * 6 * 6
    assert _params(create_model("alexnet", groups=1)) == 62_378_344  # towers merged
    with pytest.raises(CnnlabError, match="norm_before_pool"):
        create_model("alexnet_onetower", norm_before_pool=True)


def test_zfnet_sizes_and_wide_variant():
    model = create_model("zfnet")
    sizes = []
    hooks = [
        getattr(model, n).register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
        for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")
    ]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert sizes == [110, 55, 26, 13, 13, 6]  # Fig. 3 of the paper
    assert _params(create_model("zfnet", conv345=(512, 1024, 512))) == 107_627_624


def test_googlenet_layers_and_aux_heads():
    torch.manual_seed(0)
    model = create_model("googlenet", aux_logits=True)
    assert _params(model) == 13_378_280
    names = [n for n, _ in model.named_children()]
    assert names[names.index("pool2") + 1 :][:3] == ["inception3a", "inception3b", "pool3"]
    assert names[-2:] == ["aux1", "aux2"] and "inception5b" in names
    assert all(m.kernel_size == (5, 5) for n, m in model.named_modules()
               if n.endswith("branch5x5.conv"))  # fmt: skip
    x = torch.randn(2, 3, 224, 224)
    out = model.train()(x)
    assert type(out).__name__ == "GoogLeNetOutputs" and len(out) == 3
    assert all(t.shape == (2, 1000) for t in out)
    # The paper's loss: main + 0.3 * each auxiliary loss; every parameter learns from it.
    target = torch.tensor([1, 2])
    losses = [F.cross_entropy(t, target) for t in out]
    (losses[0] + 0.3 * (losses[1] + losses[2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        model.eval()
        logits = model(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 1000)
        # the heads do not change the main path
        plain = create_model("googlenet")
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if "aux" not in k})
        torch.testing.assert_close(plain.eval()(x), logits)


def test_resnet_v1_and_v1_5():
    torch.manual_seed(0)
    v15, v1 = create_model("resnet50"), create_model("resnet50", variant="v1")
    assert _params(v1) == _params(v15) == EXPECTED_PARAMS["resnet50"]
    for stage in ("layer2", "layer3", "layer4"):
        first15, first1 = getattr(v15, stage)[0], getattr(v1, stage)[0]
        assert first15.conv2.stride == (2, 2) and first15.conv1.stride == (1, 1)
        assert first1.conv1.stride == (2, 2) and first1.conv2.stride == (1, 1)
    # Multiply-adds: v1 reproduces the paper's 3.8 x 10^9 (exactly 3,857,973,248).
    counter = MacCounter(v1)
    with torch.no_grad():
        v1.eval()(torch.randn(1, 3, 224, 224))
    assert counter.total == 3_857_973_248
    # Basic-block networks have no 1x1 to move the stride to: the option changes nothing.
    r18 = create_model("resnet18", variant="v1")
    assert r18.layer2[0].conv1.stride == (2, 2) and _params(r18) == EXPECTED_PARAMS["resnet18"]


def test_resnet_shortcut_options():
    # Option A ImageNet networks of the paper's Table 2
    assert _params(create_model("resnet18", shortcut="A")) == 11_515_688
    assert _params(create_model("resnet34", shortcut="A")) == 21_623_848
    assert _params(create_model("resnet20", shortcut="B")) == 272_474
    cifar = create_model("resnet56")
    assert [type(b.downsample).__name__ for b in cifar.layer2][:2] == ["ZeroPadShortcut",
                                                                      "NoneType"]  # fmt: skip
    names = [n for n, _ in create_model("resnet18").named_children()]
    assert names == ["conv1", "bn1", "relu1", "pool1", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "flatten", "fc"]  # fmt: skip
    # torchvision's state_dict keys
    keys = create_model("resnet50").state_dict()
    assert "layer2.0.downsample.0.weight" in keys and "layer4.2.bn3.running_var" in keys


def test_zero_init_residual_starts_every_block_as_its_shortcut():
    torch.manual_seed(0)
    model = create_model("resnet110", zero_init_residual=True).eval()
    assert all(b.bn2.weight.abs().sum() == 0 for stage in (model.layer1, model.layer2,
               model.layer3) for b in stage)  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        stem = model.relu1(model.bn1(model.conv1(x)))
        torch.testing.assert_close(model.layer1(stem), stem)  # identity shortcuts, relu(x) = x
        assert torch.isfinite(model(x)).all() and model(x).abs().max() < 100
    r50 = create_model("resnet50", zero_init_residual=True)
    assert r50.layer3[5].bn3.weight.abs().sum() == 0 and r50.layer3[5].bn2.weight.min() == 1


def test_resnet_any_input_size():
    # Global average pooling and padded windows: even a tiny input gets through.
    model = create_model("resnet18", input_size=8).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 1000)


# --- registry behaviour with the real zoo ----------------------------------------------------


def test_registered_names_are_strict():
    info = model_info("resnet18")
    with pytest.raises(ValueError, match="registered twice"):
        REGISTRY.add(info)
    clash = ModelInfo(name="brand_new", builder=info.builder, paper="x", input_size=(3, 8, 8),
                      num_classes=2, params=0, aliases=("alexnet",))  # fmt: skip
    with pytest.raises(ValueError, match="'alexnet' is registered twice"):
        REGISTRY.add(clash)
    assert "brand_new" not in REGISTRY  # a failed add leaves the registry as it was


def test_aliases():
    for alias, name in ALIASES.items():
        assert model_info(alias).name == name
        assert alias in list_models("vgg*", aliases=True) and alias not in list_models("vgg*")


def test_glob_patterns():
    assert list_models("lenet*") == ["lenet5", "lenet5_modern"]
    assert list_models("resnet1?") == ["resnet18"]
    assert set(list_models("resnet*")) == {
        f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110, 1202)
    }
    assert list_models("no_such_net*") == []
    assert cnnlab.list_models() == MODELS


@pytest.mark.parametrize("typo, suggestion", [("resnet5", "resnet50"),
                                              ("alexnet_one_tower", "alexnet_onetower"),
                                              ("googlnet", "googlenet")])  # fmt: skip
def test_unknown_names_suggest(typo, suggestion):
    with pytest.raises(UnknownModelError, match=f"did you mean .*{suggestion}"):
        create_model(typo)


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("resnet50", {"variant": "v2"}, "variant"),
        ("resnet20", {"shortcut": "D"}, "shortcut"),
        ("alexnet", {"num_classes": 0}, "num_classes"),
        ("googlenet", {"in_channels": 2.5}, "in_channels"),
        ("lenet5", {"input_size": "big"}, "input_size"),
        ("zfnet", {"input_size": (0, 224)}, "input_size"),
        ("alexnet", {"groups": 3}, "groups"),
    ],
)
def test_bad_options_are_clear_errors(name, options, words):
    with pytest.raises(CnnlabError, match=f"{name.split('_')[0]}.*{words}"):
        create_model(name, **options)


def test_stored_facts_equal_the_registry():
    """`cnnlab models` answers from stored facts (no torch); they must be the registry's."""
    from cnnlab.zoo._facts import FACTS, live_facts

    assert list(FACTS) == live_facts(), (
        "the zoo changed: rewrite the stored facts with `python -m cnnlab.zoo._facts`"
    )


def test_listing_models_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, io, contextlib\n"
        "from cnnlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['models', 'vgg1?', '--format', 'json']) == 0\n"
        "assert 'vgg_d' in out.getvalue()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_zoo_lists_models_in_the_lecture_order_whatever_was_imported_first():
    import subprocess
    import sys

    code = (
        "import cnnlab.zoo.resnet, cnnlab.zoo.vgg\n"  # two families imported out of order
        "from cnnlab.zoo import list_models\n"
        "from cnnlab.zoo._facts import FACTS\n"
        "assert list_models() == [f['name'] for f in FACTS], list_models()[:4]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
