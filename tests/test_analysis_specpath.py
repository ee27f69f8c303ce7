"""The spec path (cnnlab.analysis.specpath): a network's analysis from its notation, without
building it, equals the module path's (build on the meta device, trace), field by field."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import cnnlab
from cnnlab.analysis import analyze, analyze_spec, build_on_meta, specforward
from cnnlab.errors import CnnlabError, GeometryError
from cnnlab.notation import Dropout, build_spec, parse_spec
from cnnlab.zoo import model_spec


def differences(a, b) -> list[str]:
    """Every field in which two analyses differ: each row's fields, then the rest."""
    out = [f"{len(a.rows)} rows != {len(b.rows)} rows"] if len(a.rows) != len(b.rows) else []
    for ra, rb in zip(a.rows, b.rows, strict=False):
        for f in dataclasses.fields(ra):
            va, vb = getattr(ra, f.name), getattr(rb, f.name)
            if va != vb:
                out.append(f"row {ra.path}: {f.name} {va!r} != {vb!r}")
    for f in dataclasses.fields(a):
        if f.name != "rows" and getattr(a, f.name) != getattr(b, f.name):
            out.append(f"{f.name}: {getattr(a, f.name)!r} != {getattr(b, f.name)!r}")
    return out


def _zoo_both(name: str, **options):
    plan = model_spec(name, **options)
    assert plan is not None, f"{name} {options} has no plan"
    spec_path = analyze_spec(plan)
    model = build_on_meta(cnnlab.create_model, name, **options)
    size = (plan.in_channels, *plan.input_size)
    return spec_path, analyze(model, size), model


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_every_zoo_model_at_its_native_size(name):
    spec_path, module_path, model = _zoo_both(name)
    assert differences(spec_path, module_path) == []
    assert spec_path == module_path
    assert spec_path.model == type(model).__name__


@pytest.mark.parametrize(
    "name, options",
    [
        ("lenet5", {"input_size": 28}),
        ("lenet5", {"in_channels": 3, "num_classes": 26}),
        ("lenet5_modern", {"input_size": (36, 40)}),
        ("resnet20", {"in_channels": 1, "input_size": 28}),
        ("resnet32", {"shortcut": "B"}),
        ("resnet56", {"shortcut": "C", "num_classes": 100}),
        ("resnet18", {"shortcut": "A", "input_size": 64}),
        ("resnet50", {"variant": "v1", "input_size": 96}),
        ("alexnet", {"norm_before_pool": True, "num_classes": 10}),
        ("alexnet", {"groups": 1}),
        ("alexnet_onetower", {"input_size": 256}),
        ("vgg_a_bn", {"input_size": 64, "num_classes": 10}),
        ("googlenet", {"input_size": 160, "in_channels": 1}),
        ("zfnet", {"num_classes": 10}),
    ],
)
def test_zoo_models_with_other_sizes_and_options(name, options):
    spec_path, module_path, _ = _zoo_both(name, **options)
    assert differences(spec_path, module_path) == []


SPECS = [
    "conv3-16-bn-relu-{conv3-16-bn-relu-conv3-16-bn | id}add-relu-gap-fc-10,softmax",
    "conv5/2-8(dilation=2,bias=false)-tanh-avgpool3/2(ceil=true,pad=1)-conv3-16(groups=4)-"
    "sigmoid-{conv1-4 | maxpool3/1(pad=1)-conv1-4}cat-adaptavg2-flatten-fc-20-bn-dropout-0.3-fc-5",
    "zeropad(top=1,bottom=2,left=0,right=3)-conv3-8-stanh-subsample-lrn(size=3)-"
    "[basic-8-basic-16/2(shortcut=A)](name=stage)-gap-fc-4",
    "conv1-12-[bottleneck-4/2(shortcut=C,variant=v1)-bottleneck-4](name=body)-"
    "inception(4,2,4,2,4,4)-maxpool-fc-3(bias=false)",
    "conv3-6(table=0+1/1+2/0+2/0+1+2/0/1)-relu-maxpool2/1-id-gap-fc-2",
]


@pytest.mark.parametrize("text", SPECS)
@pytest.mark.parametrize("batch, dtype", [(1, torch.float32), (3, torch.float16)])
def test_notation_strings(text, batch, dtype):
    spec = parse_spec(text)
    spec_path = analyze_spec(text, 3, (24, 20), batch=batch, dtype=dtype)
    net = build_on_meta(build_spec, spec, in_channels=3, input_size=(24, 20))
    module_path = analyze(net, (3, 24, 20), batch=batch, dtype=dtype)
    assert differences(spec_path, module_path) == []
    assert spec_path.model == "SpecNet"


def test_the_default_dtype_makes_parameters_and_buffers_as_modules_do():
    text = "conv3-8-bn-relu-subsample-gap-fc-2"
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        spec_path = analyze_spec(text, 3, 16)
        net = build_on_meta(build_spec, text, in_channels=3, input_size=16)
        module_path = analyze(net, (3, 16, 16))
    finally:
        torch.set_default_dtype(before)
    assert differences(spec_path, module_path) == []
    assert spec_path.totals.param_bytes == 8 * spec_path.totals.params


def test_the_comparison_sees_a_single_different_field():
    a = analyze_spec("conv3-8-relu-gap-fc-2", 3, 16)
    rows = list(a.rows)
    rows[1] = dataclasses.replace(rows[1], other_ops=rows[1].other_ops + 1)
    broken = dataclasses.replace(a, rows=tuple(rows))
    assert differences(a, broken) == [f"row {rows[1].path}: other_ops 2048 != 2049"]
    totals = dataclasses.replace(a.totals, buffers=1)
    assert differences(a, dataclasses.replace(a, totals=totals)) != []


def test_strict_fits_raise_as_the_module_path_does():
    text = "conv3/2-8(pad=0)-relu-gap-fc-2"
    with pytest.raises(GeometryError) as spec_error:
        analyze_spec(text, 3, 32, strict=True)
    net = build_on_meta(build_spec, text, in_channels=3, input_size=32)
    with pytest.raises(GeometryError) as module_error:
        analyze(net, (3, 32, 32), strict=True)
    assert str(spec_error.value) == str(module_error.value)


def test_a_kind_without_a_forward_falls_back_to_the_module_path(monkeypatch):
    text = "conv3-8-relu-dropout-gap-fc-2"
    expected = analyze_spec(text, 3, 16)
    monkeypatch.delitem(specforward.FORWARDS, Dropout)
    assert not specforward.describes(parse_spec(text))
    built = []

    def build():
        built.append(1)
        return build_on_meta(build_spec, text, in_channels=3, input_size=16)

    assert differences(analyze_spec(text, 3, 16, build=build), expected) == []
    assert built == [1]  # the module path ran
    assert differences(analyze_spec(text, 3, 16), expected) == []  # its own build


def test_plans_check_and_fail_as_building_does():
    assert model_spec("googlenet", aux_logits=True) is None  # more than one spec: no plan
    plan = model_spec("lenet5", input_size=28)
    assert (plan.type_name, plan.in_channels, plan.input_size) == ("LeNet5", 1, (28, 28))
    for options in ({"input_size": 16}, {"num_classes": 0}, {"variant": "v2"}):
        with pytest.raises(CnnlabError) as built:
            cnnlab.create_model("vgg16" if "input_size" in options else "resnet50", **options)
        with pytest.raises(CnnlabError) as planned:
            model_spec("vgg16" if "input_size" in options else "resnet50", **options)
        assert str(planned.value) == str(built.value)


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(CnnlabError, match="input_size must be"):
        analyze_spec("conv3-8-gap-fc-2", 3, None)
    with pytest.raises(CnnlabError, match="notation text or a Spec"):
        analyze_spec(42)
