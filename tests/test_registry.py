"""The registry object on its own: strict names, globbing, suggestions."""

from __future__ import annotations

import pytest
from torch import nn

from cnnlab.errors import CnnlabError, UnknownModelError
from cnnlab.zoo import ModelInfo, Registry


def _info(name: str, **kw) -> ModelInfo:
    def build(num_classes: int, in_channels: int, width: int = 4) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, width, 3), nn.Flatten(), nn.LazyLinear(10))

    defaults = dict(paper="test", input_size=(1, 8, 8), num_classes=10, params=0)
    defaults.update(kw)
    return ModelInfo(name=name, builder=build, **defaults)


def test_duplicate_names_and_aliases_are_errors():
    reg = Registry()
    reg.add(_info("net", aliases=("net_alias",)))
    with pytest.raises(ValueError, match="registered twice"):
        reg.add(_info("net"))
    with pytest.raises(ValueError, match="'net_alias' is registered twice"):
        reg.add(_info("other", aliases=("net_alias",)))
    with pytest.raises(ValueError, match="registered twice"):
        reg.add(_info("net_alias"))


def test_glob_and_aliases():
    reg = Registry()
    for n in ("resnet18", "resnet50", "resnet20", "vgg_d"):
        reg.add(_info(n, aliases=("vgg16",) if n == "vgg_d" else ()))
    assert reg.names("resnet*") == ["resnet18", "resnet50", "resnet20"]
    assert reg.names("resnet?0") == ["resnet50", "resnet20"]
    # a pattern that matches an alias finds its model (the table prints aliases beside names)
    assert reg.names("vgg16") == ["vgg_d"]
    assert reg.names("vgg1*") == ["vgg_d"]
    assert reg.names("vgg16", aliases=True) == ["vgg_d", "vgg16"]
    assert reg.get("vgg16").name == "vgg_d"
    assert len(reg) == 4 and "vgg16" in reg and "vgg15" not in reg
    # names are case-insensitive, as in torchvision and timm
    assert reg.names("RESNET5*") == ["resnet50"] and reg.get("VGG16").name == "vgg_d"
    assert "ResNet18" in reg


def test_unknown_name_suggests_closest():
    reg = Registry()
    for n in ("resnet18", "resnet50", "alexnet"):
        reg.add(_info(n))
    with pytest.raises(UnknownModelError) as err:
        reg.get("resnet5")
    assert isinstance(err.value, CnnlabError)
    assert "did you mean resnet50" in str(err.value)
    with pytest.raises(UnknownModelError) as err:
        reg.get("qqqq")
    assert "did you mean" not in str(err.value)


def test_options_and_defaults_reach_the_builder():
    reg = Registry()
    reg.add(_info("wide", options={"width": 7}))
    model = reg.get("wide").create()
    assert model[0].out_channels == 7 and model[0].in_channels == 1
    reg.add(_info("plain"))
    model = reg.get("plain").create(in_channels=3, width=2)
    assert model[0].out_channels == 2 and model[0].in_channels == 3


def test_unknown_and_contradicting_options_are_user_errors():
    reg = Registry()
    reg.add(_info("wide", options={"width": 7}))
    reg.add(_info("plain"))
    with pytest.raises(CnnlabError, match=r"unknown option 'widht' \(did you mean 'width'\?\)"):
        reg.get("plain").create(widht=3)
    with pytest.raises(CnnlabError, match="fixes width=7"):
        reg.get("wide").create(width=3)
    assert reg.get("wide").create(width=7)[0].out_channels == 7


def test_zoo_option_mistakes(capsys):
    import cnnlab

    with pytest.raises(CnnlabError, match="unknown option 'varaint'.*'variant'"):
        cnnlab.create_model("resnet18", varaint="v1")
    with pytest.raises(CnnlabError, match="resnet18: option depth=50 contradicts"):
        cnnlab.create_model("resnet18", depth=50)


def test_every_zoo_module_is_a_listed_family_that_registers_models():
    # A family module left out of FAMILIES would silently vanish from the zoo: every public
    # module under zoo/ (target.py turns text into a model; it is not a family) must be listed,
    # and each must register at least one model under its own name.
    import pkgutil

    import cnnlab.zoo as zoo

    modules = {m.name for m in pkgutil.iter_modules(zoo.__path__) if not m.name.startswith("_")}
    assert modules - {"target"} == set(zoo.FAMILIES)
    zoo.list_models()
    owners = {getattr(info.builder, "func", info.builder).__module__ for info in zoo.REGISTRY}
    for family in zoo.FAMILIES:
        assert f"cnnlab.zoo.{family}" in owners, f"zoo/{family}.py registers no model"
    assert owners <= {f"cnnlab.zoo.{family}" for family in zoo.FAMILIES}
