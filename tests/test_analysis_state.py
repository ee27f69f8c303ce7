"""The analysis leaves a model exactly as it was, and allocates nothing, whatever its forward
does: reassigned buffers and attributes, caches, counters, and tensors the forward creates
itself (factories), checked on models that do each of these."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis import analyze
from cnnlab.errors import CnnlabError


class Stateful(nn.Module):
    """A forward that writes to its module: a counter, an EMA buffer reassigned, a cache, a
    list and a dict it appends to, a new attribute, a buffer updated in place."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("avg", torch.full((4,), 0.5))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.calls = 0
        self.last = None
        self.history: list = []
        self.stats = {"n": 0, "shapes": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        self.calls += 1
        self.avg = 0.9 * self.avg + 0.1 * y.mean(dim=(0, 2, 3))
        self.seen += 1
        self.last = y
        self.history.append(y)
        self.stats["n"] += 1
        self.stats["shapes"].append(tuple(y.shape))
        self.new_attribute = y.sum()
        self.conv.cached = y  # a child's attribute, too
        return y * self.avg.view(1, -1, 1, 1)


def test_a_forward_that_writes_to_the_model_leaves_nothing_behind():
    model = Stateful()
    avg, seen = model.avg, model.seen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = analyze(model, (3, 8, 8))
    assert a.output_shapes == ((1, 4, 8, 8),)
    assert model.avg is avg and model.seen is seen  # the same tensors, not meta stand-ins
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.calls == 0 and model.last is None
    assert model.history == [] and model.stats == {"n": 0, "shapes": []}
    assert not hasattr(model, "new_attribute") and not hasattr(model.conv, "cached")
    # The model still runs, and its own forward still updates it as it should.
    out = model(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 4, 8, 8) and model.calls == 1 and int(model.seen) == 1
    assert not model.avg.is_meta and len(model.history) == 1


def test_a_forward_that_fails_leaves_nothing_behind_either():
    class Fails(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0
            self.register_buffer("avg", torch.ones(3))

        def forward(self, x):
            self.calls += 1
            self.avg = self.avg * x.mean()
            return x.view(-1, 7)  # 3*4*4 is not a multiple of 7

    model = Fails()
    with pytest.raises(CnnlabError, match="reshape"):
        analyze(model, (3, 4, 4))
    assert model.calls == 0 and not model.avg.is_meta and torch.equal(model.avg, torch.ones(3))


class Factories(nn.Module):
    """A forward that creates activation-sized tensors itself, on the default device."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ones = torch.ones(b, c, h, w)
        noise = torch.randn(b, c, h, w)
        pos = torch.arange(b * c * h * w).view(b, c, h, w)
        grid = self.gamma.new_zeros(b, c, h, w)
        mask = torch.zeros(b, c, h, w, dtype=torch.bool)
        index = torch.arange(3)  # small: an index table, kept real (values may matter)
        scale = self.gamma[index].view(1, c, 1, 1)
        y = (x + ones + noise + grid) * scale + pos
        return y.masked_fill(mask, 0.0)


def test_factories_in_the_forward_allocate_nothing_and_are_counted():
    model = Factories()
    # Above 65,536 elements a factory's result is an activation: made on the meta device and
    # counted as a forward allocation of its own dtype; below, a constant made for real.
    a = analyze(model, (3, 160, 160))
    ops = [r.type for r in a.rows if r.kind == "op"]
    assert ops.count("arange") == 1  # the small index table is a constant
    for name in ("ones", "randn", "new_zeros", "zeros"):
        assert ops.count(name) == 1, (name, ops)
    assert a.totals.uncounted == {}
    n = 3 * 160 * 160
    assert a.row("<ones>").activation_bytes == n * 4
    assert a.row("<arange>").output_shape == (n,)
    assert a.row("<zeros>").activation_bytes == n  # a boolean mask: one byte per value
    small = analyze(model, (3, 16, 16))
    assert not {"ones", "randn", "new_zeros", "zeros"} & {r.type for r in small.rows}
    # The model's global random state is untouched (no real random numbers were drawn).
    torch.manual_seed(1)
    state = torch.get_rng_state()
    analyze(model, (3, 160, 160))
    assert torch.equal(torch.get_rng_state(), state)


def test_factories_at_a_huge_input_allocate_nothing():
    # A fresh interpreter, so that peak RSS is this test's own: at 3x8192x8192 each factory of
    # the forward above would take 805 MB (float32), six of them about 4.5 GB.
    code = textwrap.dedent(
        """
        import resource, sys, torch
        sys.path.insert(0, "tests")
        from test_analysis_state import Factories
        from cnnlab.analysis import analyze
        rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = Factories()
        analyze(model, (3, 32, 32))
        before = rss()
        a = analyze(model, (3, 8192, 8192))
        print(rss() - before, a.row("<ones>").activation_bytes)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    grown, ones_bytes = map(int, out)
    assert ones_bytes == 3 * 8192 * 8192 * 4
    assert grown < 128 * 1024, f"the analysis grew the peak RSS by {grown} KiB"


def test_small_real_tensors_that_would_make_a_large_one_run_on_stand_ins():
    class Grows(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(1, 4, 1, 1))

        def forward(self, x):
            b, _, h, w = x.shape
            big = self.bias.expand(b, 4, h, w).contiguous()  # 4 values in, h*w*4 out
            rows = torch.ones(h, 1) + torch.ones(1, w)  # broadcasting: h + w in, h*w out
            return F.conv2d(x, torch.ones(4, 3, 1, 1)) + big + rows

    a = analyze(Grows(), (3, 512, 512))
    assert a.output_shapes == ((1, 4, 512, 512),)
    assert a.row("<contiguous>").activation_bytes == 4 * 512 * 512 * 4
    assert a.row("<add>").output_shape == (512, 512)
