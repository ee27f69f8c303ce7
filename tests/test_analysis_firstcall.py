"""A process's first analysis pays for nothing it does not need: no import of torch._dynamo
or SymPy (about a second each time some PyTorch Python meta kernel is first used), and the
shape-only results that avoid them equal PyTorch's own.  Also the model state taken and put
back around a trace, on the containers a forward can reorder or refill."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cnnlab.analysis import analyze
from cnnlab.analysis.metakernels import run_on_meta
from cnnlab.analysis.modelstate import ModelState


def test_a_first_analysis_imports_neither_dynamo_nor_sympy():
    # LeNet-5's connection table (index_copy) and its subsampling layers (a parameter scaled
    # by a number) were what imported them; built on the meta device and on the CPU.
    code = textwrap.dedent(
        """
        import sys
        import cnnlab
        from cnnlab.analysis import analyze, build_on_meta
        for name in ("lenet5", "resnet20", "googlenet"):
            size = cnnlab.model_info(name).input_size
            meta = analyze(build_on_meta(cnnlab.create_model, name), size)
            real = analyze(cnnlab.create_model(name), size)
            assert meta.totals.macs == real.totals.macs > 0, name
        print(sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    "shape, dim, index, source_shape, transpose",
    [
        ((16 * 6, 5, 5), 0, [0, 7, 95], (3, 5, 5), False),
        ((4, 9), 1, [8, 0], (4, 2), False),
        ((4, 9), -1, [1, 2, 3], (4, 3), False),
        ((9, 4), 1, [0, 3], (4, 2), True),  # a transposed (non-contiguous) destination
        ((5,), 0, [4], (1,), False),
    ],
)
def test_index_copy_on_meta_equals_pytorchs_own_kernel(shape, dim, index, source_shape, transpose):
    x = torch.empty(shape, device="meta")
    x = x.t() if transpose else x
    idx = torch.tensor(index, device="meta")
    src = torch.empty(source_shape, device="meta")
    for func in (torch.Tensor.index_copy, torch.index_copy):
        args = (x, dim, idx, src)
        ours, theirs = run_on_meta(func, args, {}), func(*args)
        assert (ours.shape, ours.stride(), ours.dtype) == (
            theirs.shape,
            theirs.stride(),
            theirs.dtype,
        )
        assert ours.is_meta


def _outcome(func, *args):
    try:
        out = func(*args)
    except RuntimeError as exc:
        return ("raises", str(exc))
    return (tuple(out.shape), out.stride(), out.dtype)


@pytest.mark.parametrize(
    "index, source_shape, index_dtype",
    [
        ([0, 1], (3, 5), torch.long),  # 2 indices for 3 source rows
        ([0, 1], (2, 4), torch.long),  # slices of different sizes
        ([0, 1], (2, 5), torch.float32),  # not an index dtype
        ([[0], [1]], (2, 5), torch.long),  # a 2-d index
    ],
)
def test_index_copy_it_does_not_recognise_is_pytorchs_to_decide(index, source_shape, index_dtype):
    x = torch.empty(6, 5, device="meta")
    idx = torch.tensor(index, dtype=index_dtype, device="meta")
    src = torch.empty(source_shape, device="meta")
    ours = _outcome(lambda *a: run_on_meta(torch.Tensor.index_copy, a, {}), x, 0, idx, src)
    assert ours == _outcome(torch.Tensor.index_copy, x, 0, idx, src)


def test_model_state_puts_back_reordered_dicts_refilled_sets_and_nested_lists():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    m.table = {"a": 1, "b": [1, 2]}
    m.names = {"x", "y"}
    m.pair = ([0], {"k": "v"})
    inner_list, inner_dict = m.pair
    conv = m[0]
    state = ModelState(m.modules())
    # What a forward might do: reorder, refill, mutate nested containers, replace children.
    m.table.pop("a")
    m.table["a"] = 2
    m.table["b"].append(3)
    m.names.discard("x")
    m.names.add("z")
    inner_list.append(1)
    inner_dict["k"] = "w"
    m[0] = nn.Identity()
    m.extra = 1
    state.restore()
    assert list(m.table.items()) == [("a", 1), ("b", [1, 2])]
    assert m.names == {"x", "y"}
    assert m.pair == ([0], {"k": "v"}) and m.pair[0] is inner_list
    assert m[0] is conv and not hasattr(m, "extra")


def test_analysis_results_do_not_depend_on_what_an_earlier_analysis_cached():
    # Windows, output sizes and fits are cached by value; two models with the same layer
    # shapes but different inputs must each get their own arithmetic.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.MaxPool2d(2, ceil_mode=True))
    small, large = analyze(net, (3, 9, 9)), analyze(net, (3, 15, 15))
    again = analyze(net, (3, 9, 9))
    assert small.rows == again.rows and small.totals == again.totals
    assert [r.output_shapes for r in small.rows] == [((1, 4, 4, 4),), ((1, 4, 2, 2),)]
    assert [r.output_shapes for r in large.rows] == [((1, 4, 7, 7),), ((1, 4, 4, 4),)]
    assert [r.fit for r in small.rows] == ["exact", "exact"]
    assert [r.fit for r in large.rows] == ["exact", "ceil +1"]


def test_a_meta_build_initialises_nothing_and_a_real_one_still_does(monkeypatch):
    # Shape-only weights have no values: apply_init skips them (on ResNet-1202 its loop of
    # no-op fills was a tenth of the meta build) and keeps initialising real ones.
    import cnnlab
    from cnnlab.analysis import build_on_meta
    from cnnlab.layers import init

    layers = []
    real_init = init._init_layer
    monkeypatch.setattr(init, "_init_layer", lambda m, how: layers.append(m) or real_init(m, how))
    meta = build_on_meta(cnnlab.create_model, "resnet20")
    assert layers == [] and all(p.is_meta for p in meta.parameters())
    real = cnnlab.create_model("resnet20")
    convs = [m for m in real.modules() if isinstance(m, nn.Conv2d)]
    assert layers == convs and len(convs) == 19


@pytest.mark.parametrize(
    "name, args, kwargs",
    [
        ("new_zeros", (96, 5, 5), {}),  # LeNet-5's dense C3 kernel
        ("new_zeros", ((2, 3),), {"dtype": torch.float16}),
        ("new_ones", ([4],), {}),
        ("new_empty", (torch.Size([2, 0, 3]),), {"dtype": torch.long}),
        ("new_zeros", ((),), {}),  # a 0-d tensor
        ("new_full", ((2, 3), 1.5), {}),  # not made here: PyTorch's kernel
        ("new_zeros", (2, 3), {"requires_grad": True}),  # likewise
    ],
)
def test_new_tensors_of_a_trace_equal_pytorchs_own(name, args, kwargs):
    # The tracer makes new_zeros(...) of a shape-only tensor itself (PyTorch's meta kernel is
    # slow on first use); what it makes must be what PyTorch makes.
    class New(nn.Module):
        def forward(self, x):
            return getattr(x, name)(*args, **kwargs)

    x = torch.empty(3, 4, dtype=torch.float64)
    theirs = getattr(x.to("meta"), name)(*args, **kwargs)
    row = analyze(New(), (4,), batch=3, dtype=torch.float64).rows[0]
    assert row.output_shapes == (tuple(theirs.shape),)
    assert row.activation_bytes == theirs.numel() * theirs.element_size()
