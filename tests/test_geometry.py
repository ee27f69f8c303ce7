"""The lecture's arithmetic (cnnlab.geometry) against the lecture, and against real torch layers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnlab import geometry as g
from cnnlab.errors import GeometryError

# ---------------------------------------------------------------- the lecture's own examples


def test_lecture_7x7_examples():
    # 7x7 input, 3x3 filter: stride 1 -> 5x5, stride 2 -> 3x3, stride 3 does not fit.
    assert g.output_size(7, 3, 1) == 5
    assert g.output_size(7, 3, 2) == 3
    assert g.fit(7, 3, 1).fits and g.fit(7, 3, 2).fits
    f = g.fit(7, 3, 3)
    assert not f.fits
    assert f.formula() == "(7 - 3 + 2*0)/3 + 1 = 2.33"
    assert f.output == 2 and f.dropped == 1 and f.dropped_input == 1
    # pad 1 keeps 7x7 at stride 1
    assert g.output_size(7, 3, 1, 1) == 7


def test_lecture_does_not_fit_message():
    with pytest.raises(GeometryError) as err:
        g.check_fit(7, 3, 3, where="conv1")
    msg = str(err.value)
    assert msg.startswith("conv1: (7 - 3 + 2*0)/3 + 1 = 2.33 is not a whole number")
    assert "a 3x3 filter at stride 3 does not fit a 7x7 input" in msg
    assert "Strides that fit: 1, 2, 4." in msg
    assert "Paddings that fit stride 3: 1 (gives 3x3)." in msg


def test_lecture_same_padding_and_sizes():
    assert [g.same_padding(f) for f in (1, 3, 5, 7)] == [0, 1, 2, 3]
    assert g.same_padding(3, dilation=2) == 2
    with pytest.raises(GeometryError, match="no symmetric 'same' padding"):
        g.same_padding(4)
    # 32x32x3 input, ten 5x5 filters, stride 1, pad 2 -> 32x32
    assert g.output_size(32, 5, 1, 2) == 32
    # repeated unpadded 5x5 convs shrink 32 -> 28 -> 24
    assert g.output_size(g.output_size(32, 5), 5) == 24
    # AlexNet: (227-11)/4+1 = 55, pool 3x3/2 -> 27; 224 does not fit 11x11/4
    assert g.output_size(227, 11, 4) == 55
    assert g.output_size(55, 3, 2) == 27
    assert not g.fit(224, 11, 4).fits


def test_vanishing_volume():
    assert g.output_size(3, 5) < 1
    with pytest.raises(GeometryError, match="the volume vanishes"):
        g.check_fit(3, 5, where="conv2")


@pytest.mark.parametrize(
    "args", [(0, 3), (7, 0), (7, 3, 0), (7, 3, 1, -1), (7, 3, 1, 0, 0), (7.0, 3), (True, 3)]
)
def test_bad_arguments_are_geometry_errors(args):
    with pytest.raises(GeometryError, match="must be an integer"):
        g.output_size(*args)


def test_fitting_lists():
    assert g.fitting_strides(7, 3) == [1, 2, 4]
    assert g.fitting_paddings(7, 3, 3) == [(1, 3)]
    assert g.fitting_paddings(7, 3, 1) == [(0, 5), (1, 7), (2, 9)]
    assert g.fitting_strides(2, 3) == []  # the window is larger than the input
    # ResNet's conv1 at 224: 224 + 6 - 7 = 223 is prime; stride 223 is no answer worth giving
    assert g.fitting_strides(224, 7, 3) == [1]


# ---------------------------------------------------------------- against torch, randomly

_sizes = st.integers(1, 40)
_kernels = st.integers(1, 7)
_strides = st.integers(1, 5)
_dilations = st.integers(1, 3)


def _torch_len(layer: torch.nn.Module, n: int) -> int | None:
    x = torch.zeros(1, 1, n, n)
    try:
        return layer(x).shape[-1]
    except RuntimeError:  # torch refuses windows larger than the padded input
        return None


@settings(max_examples=300, deadline=None)
@given(_sizes, _kernels, _strides, st.integers(0, 4), _dilations)
def test_conv_output_size_matches_torch(n, f, s, p, d):
    ours = g.output_size(n, f, s, p, d)
    theirs = _torch_len(torch.nn.Conv2d(1, 1, f, s, p, d, bias=False), n)
    if theirs is None:
        assert ours < 1
    else:
        assert ours == theirs
        fit = g.fit(n, f, s, p, d)
        # the windows plus the dropped cells make up the padded input exactly
        assert (fit.output - 1) * s + g.effective_kernel(f, d) + fit.dropped == n + 2 * p
        assert fit.fits == ((n + 2 * p - g.effective_kernel(f, d)) % s == 0)


@settings(max_examples=200, deadline=None)
@given(_sizes, _kernels, _strides, st.data(), _dilations, st.booleans())
def test_max_pool_output_size_matches_torch(n, f, s, data, d, ceil):
    p = data.draw(st.integers(0, f // 2))  # torch: padding at most half the kernel
    ours = g.output_size(n, f, s, p, d, ceil_mode=ceil)
    theirs = _torch_len(torch.nn.MaxPool2d(f, s, p, d, ceil_mode=ceil), n)
    if theirs is None:
        assert ours < 1
    else:
        assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(_sizes, _kernels, _strides, st.data(), st.booleans())
def test_avg_pool_output_size_matches_torch(n, f, s, data, ceil):
    p = data.draw(st.integers(0, f // 2))
    ours = g.output_size(n, f, s, p, ceil_mode=ceil)
    theirs = _torch_len(torch.nn.AvgPool2d(f, s, p, ceil_mode=ceil), n)
    if theirs is None:
        assert ours < 1
    else:
        assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), _kernels, st.integers(0, 3), _dilations)
def test_fitting_strides_and_paddings_are_exact(n, f, p, d):
    strides = g.fitting_strides(n, f, p, d, max_stride=12)
    for s in range(1, 13):
        exact = g.fit(n, f, s, p, d).fits if n + 2 * p >= g.effective_kernel(f, d) else False
        assert (s in strides) == exact
    limit = 2 * g.effective_kernel(f, d)
    assert g.fitting_strides(n, f, p, d) == g.fitting_strides(n, f, p, d, max_stride=limit)
    for s in (1, 2, 3):
        for pad, out in g.fitting_paddings(n, f, s, d):
            fit = g.fit(n, f, s, pad, d)
            assert fit.fits and fit.output == out


# ---------------------------------------------------------------- receptive fields


def _empirical_field(windows: list[g.Window], n: int, unit: int) -> tuple[int, int]:
    """First and last input cell that output ``unit`` (along the axis) depends on, measured
    by backpropagating through real convolutions with positive weights (no cancellation)."""
    layers = [
        torch.nn.Conv1d(1, 1, w.kernel, w.stride, w.padding, w.dilation, bias=False).double()
        for w in windows
    ]
    for layer in layers:
        torch.nn.init.constant_(layer.weight, 1.0)
    x = torch.ones(1, 1, n, dtype=torch.float64, requires_grad=True)
    y = x
    for layer in layers:
        y = layer(y)
    y[0, 0, unit].backward()
    nz = torch.nonzero(x.grad[0, 0]).flatten().tolist()
    return nz[0], nz[-1]


_window = st.builds(
    g.Window,
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(_window, min_size=1, max_size=4), st.data())
def test_receptive_field_matches_gradient(windows, data):
    n = 64
    size = n
    for w in windows:
        size = g.output_size(size, w.kernel, w.stride, w.padding, w.dilation)
        assume(size >= 1)
    field = g.chain(windows)[-1]
    # units whose whole field lies inside the real input: there the first and last cells of
    # the field are always taps, whatever the dilations, so the measured extent must match
    inside = [
        u
        for u in range(size)
        if field.start + u * field.jump >= 0 and field.start + u * field.jump + field.size <= n
    ]
    assume(inside)
    unit = data.draw(st.sampled_from(inside))
    lo = field.start + unit * field.jump
    assert _empirical_field(windows, n, unit) == (lo, lo + field.size - 1)


def test_field_recurrences_known_values():
    # VGG: two 3x3 convs see 5x5, three see 7x7 (the VGG paper's argument)
    f = g.chain([g.Window(3, 1, 1)] * 3)
    assert [x.size for x in f] == [3, 5, 7]
    # AlexNet conv1 + pool1: 11 + (3-1)*4 = 19, jump 8
    f = g.chain([g.Window(11, 4), g.Window(3, 2)])[-1]
    assert (f.size, f.jump, f.start) == (19, 8, 0)
    # padding moves the start into the padding
    assert g.Field().then(g.Window(3, 1, 1)).start == -1
    assert g.Field().then(g.Window(3, 1, 1)).center == 0


def test_field_merge():
    a = g.Field(size=3, jump=1, start=-1)
    b = g.Field(size=5, jump=1, start=-2)
    m = a.merge(b)
    assert (m.size, m.jump, m.start) == (5, 1, -2)
    with pytest.raises(GeometryError, match="different effective strides"):
        a.merge(g.Field(size=3, jump=2, start=0))


# ---------------------------------------------------------------- the one shape engine


@settings(max_examples=200, deadline=None)
@given(_sizes, _sizes, _kernels, _strides, st.data(), st.booleans())
def test_window_output_matches_torch_per_axis(h, w, f, s, data, ceil):
    p = data.draw(st.integers(0, f // 2))
    window = g.Window(f, s, p)
    layer = torch.nn.MaxPool2d(f, s, p, ceil_mode=ceil)
    try:
        theirs = tuple(layer(torch.zeros(1, 1, h, w)).shape[-2:])
    except RuntimeError:
        theirs = None
    if theirs is None:
        with pytest.raises(g.VanishingVolume, match="so the volume vanishes"):
            g.window_output((h, w), (window, window), "pool1", ceil)
    else:
        assert g.window_output((h, w), (window, window), "pool1", ceil) == theirs


def test_the_one_vanishing_message():
    with pytest.raises(g.VanishingVolume) as err:
        g.window_output((9, 1), (g.Window(3, 1, 1), g.Window(3, 2, dilation=2)), "conv2 (conv3)")
    assert str(err.value) == (
        "conv2 (conv3): (1 - 5 + 2*0)/2 + 1 = -1 < 1: a window of 3 (dilation 2: spans 5) does "
        "not fit 1 column(s) padded by 0, so the volume vanishes; the input is too small for "
        "this network"
    )
    assert err.value.axis == 1 and err.value.size == 1 and isinstance(err.value, GeometryError)
    again = err.value.explained("it needs 5 column(s)", where="net: at layer conv2", tail="!")
    assert str(again).startswith("net: at layer conv2: (1 - 5") and str(again).endswith(
        "vanishes; it needs 5 column(s)!"
    )
    assert g.axis_units(2) == ("row(s)", "column(s)") and len(g.axis_units(5)) == 5


@settings(max_examples=50, deadline=None)
@given(st.lists(_window, min_size=1, max_size=5))
def test_smallest_input_is_the_first_size_that_gets_through(windows):
    def gets_through(n: int) -> bool:
        for w in windows:
            n = w.output(n)
            if n < 1:
                return False
        return True

    first = next(n for n in range(1, 2000) if gets_through(n))
    assert g.smallest_input(gets_through, limit=4096) == first
    assert g.smallest_input(lambda n: False, limit=64) is None
