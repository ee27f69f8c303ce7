"""Replayed blocks (cnnlab.analysis.replay) give exactly the rows and totals a full trace gives,
and nothing is replayed where a call could differ from the one recorded."""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis import Row, analyze, build_on_meta, replay
from cnnlab.analysis.rules import DEFAULT_RULES
from cnnlab.analysis.tracer import trace
from cnnlab.layers import BasicBlock
from cnnlab.notation import SpecNet


def _replayed(model: nn.Module, size, batch: int = 1) -> int:
    x = torch.empty((batch, *size), device="meta")
    return trace(model, x).replayed


def _both(monkeypatch, model: nn.Module, size, **kw):
    """analyze() with replay, then with every call traced."""
    fast = analyze(model, size, **kw)
    monkeypatch.setattr(replay, "ENABLED", False)
    full = analyze(model, size, **kw)
    monkeypatch.setattr(replay, "ENABLED", True)
    return fast, full


@pytest.mark.parametrize(
    "name, size, batch, real",
    [
        ("resnet20", None, 1, False),
        ("resnet56", None, 3, False),
        ("resnet110", None, 1, False),
        ("resnet50", (3, 64, 64), 2, False),  # bottlenecks, projection shortcuts
        ("resnet20", None, 2, True),  # real weights, in training mode: gradients, saved memory
    ],
)
def test_replay_gives_the_rows_of_a_full_trace(monkeypatch, name, size, batch, real):
    size = size or cnnlab.model_info(name).input_size
    build = cnnlab.create_model if real else partial(build_on_meta, cnnlab.create_model)
    model = build(name).train()
    assert _replayed(model, size, batch) > 0  # the fast path is taken
    fast, full = _both(monkeypatch, model, size, batch=batch)
    assert fast.rows == full.rows
    assert fast.totals == full.totals
    assert repr(fast) == repr(full)  # every field, receptive fields and graph included
    assert not any("forward" in vars(m) for m in model.modules())  # nothing left installed


def test_replayed_blocks_have_their_own_fields_producers_and_paths():
    model = build_on_meta(cnnlab.create_model, "resnet20")
    rows = {r.path: r for r in analyze(model, (3, 32, 32)).rows}
    # layer1.2 is rebuilt from layer1.1's record: its receptive field is two convolutions
    # wider, it reads layer1.1's output, and its rows carry its own paths.
    a, b = rows["layer1.1.conv1"], rows["layer1.2.conv1"]
    assert b.field.size[0] == a.field.size[0] + 4
    assert rows["layer1.2"].producers == (("layer1.1.relu2", 1),)
    assert b.producers == (("layer1.1.relu2", 1),)
    assert rows["layer1.2.relu2"].producers == (("layer1.2.<add>", 1),)


class _Growing(BasicBlock):
    """A block whose output depends on how often any of them ran (not in replay.PURE): the
    calls list is shared, and put back after each analysis like all of a model's state."""

    def __init__(self, *args, calls: list):
        super().__init__(*args)
        self.calls = calls

    def forward(self, x):
        self.calls.append(1)
        return F.pad(super().forward(x), (0, len(self.calls) % 3))


def _blocks(n: int, cls=BasicBlock, **kw) -> SpecNet:
    return SpecNet(*(cls(16, 16, **kw) for _ in range(n)))


def test_a_block_the_key_cannot_describe_is_traced_every_time(monkeypatch):
    # Same class, same hyperparameters, same input shape, but a forward that depends on a
    # shared counter: a key of those would call the calls alike.  The class is not PURE, so
    # nothing replays.
    model = build_on_meta(_blocks, 4, _Growing, calls=[])
    assert _replayed(model, (16, 8, 8)) == 0
    fast, full = _both(monkeypatch, model, (16, 8, 8))
    assert fast.rows == full.rows
    widths = [r.output_shapes[0][-1] for r in fast.rows if r.depth == 1]
    assert len(set(widths)) > 1  # the calls really differ: a replay would have been wrong


def test_keys_tell_apart_input_shapes_attributes_modes_and_frozen_weights(monkeypatch):
    b = BasicBlock
    model = build_on_meta(
        lambda: SpecNet(
            b(16, 16), b(16, 16), b(16, 16), nn.MaxPool2d(2), *(b(16, 16) for _ in range(5))
        )
    )
    model[5].bn1.eps = 1e-3  # an attribute
    model[6].bn2.eval()  # a mode
    model[7].conv1.weight.requires_grad_(False)  # a frozen weight: no gradient, less saved
    # Recorded: 0 (its input needs no gradient), 1, and 4 (after the pooling: another input
    # shape); replayed: 2 (as 1) and 8 (as 4); 5, 6 and 7 are traced (keys of their own).
    assert _replayed(model, (16, 16, 16)) == 2
    fast, full = _both(monkeypatch, model, (16, 16, 16), batch=2)
    assert fast.rows == full.rows
    assert fast.totals == full.totals


def test_nothing_replays_with_shared_weights_hooks_or_rules_of_ones_own():
    size = (16, 8, 8)
    shared = build_on_meta(_blocks, 3)
    shared[2].conv1.weight = shared[1].conv1.weight
    assert _replayed(shared, size) == 0
    hooked = build_on_meta(_blocks, 3)
    hooked[1].register_forward_hook(lambda m, i, o: None)
    assert _replayed(hooked, size) == 0
    hooked = build_on_meta(_blocks, 3)
    hooked[2].conv1.register_full_backward_hook(lambda m, gi, go: None)
    assert _replayed(hooked, size) == 0
    plain = build_on_meta(_blocks, 3)
    assert _replayed(plain, size) == 1  # 2, as 1 (0's input needs no gradient: a key of its own)
    table = DEFAULT_RULES.with_overrides({F.relu: DEFAULT_RULES.op(F.relu).fn})
    assert trace(plain, torch.empty(1, *size, device="meta"), rules=table).replayed == 0


def test_rows_made_without_the_dataclass_init_are_rows():
    # core._new_row fills a Row's fields directly: the same objects as Row(**fields).
    a = analyze(build_on_meta(cnnlab.create_model, "resnet20"), (3, 32, 32))
    names = [f.name for f in dataclasses.fields(Row)]
    assert not hasattr(Row, "__post_init__")
    for row in a.rows:
        assert list(vars(row)) == names
        assert Row(**vars(row)) == row
        assert hash(Row(**vars(row))) == hash(row)


def test_a_forward_set_on_an_instance_is_traced_and_what_it_assigns_put_back():
    model = build_on_meta(_blocks, 3)
    block = model[1]

    def forward(x):
        block.seen = tuple(x.shape)  # an assignment no PURE forward makes
        return BasicBlock.forward(block, x)

    block.forward = forward
    assert _replayed(model, (16, 8, 8)) == 0
    analyze(model, (16, 8, 8))
    assert "seen" not in vars(block) and vars(block)["forward"] is forward
