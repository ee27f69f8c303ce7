"""Pictures hold what they claim: a hand-set filter at its place in the grid, activation
maps equal to the forward, one GIF frame per output position with the window where the
formula puts it, one box per layer with the analysis's shapes, and curves that plot the
numbers in metrics.jsonl."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.analysis import analyze
from cnnlab.cli import main
from cnnlab.viz.activations import activation_figure, activation_maps
from cnnlab.viz.arch import arch_boxes, arch_figure, block_boxes
from cnnlab.viz.arith_frames import TAP_RGB, arith_animation, misfit, window_positions
from cnnlab.viz.arithmetic import window_arithmetic
from cnnlab.viz.curves import confusion_figure, curves_figure, read_curves, read_final
from cnnlab.viz.filters import filter_figure, filter_tiles


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 12, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(12 * 2 * 2, 3),
    )  # fmt: skip


# ---- filters -------------------------------------------------------------------------------
def test_a_hand_set_filter_appears_at_its_place_in_the_grid():
    net = _net()
    pattern = torch.tensor([[1.0, 0, 0], [0, -2.0, 0], [0, 0, 0.5]])
    with torch.no_grad():
        net[0].weight[4, 0] = pattern
    tiles = filter_tiles(net[0].weight)
    fig = filter_figure(tiles, "t")
    (grid,) = fig.axes  # one Axes holds the tiles, in grid order, and their titles
    shown = grid.images[4].get_array()
    # per filter: 0.5 + 0.5 * w / max|w| (max |w| = 2): 0 is mid grey, -2 black
    assert np.allclose(shown, 0.5 + 0.25 * pattern.numpy())
    assert grid.texts[4].get_text() == "4" and len(grid.images) == 6
    # 3 columns: tile 4 is below tile 1 (extents are left, right, bottom, top; y downwards)
    below, above = grid.images[4].get_extent(), grid.images[1].get_extent()
    assert grid.yaxis_inverted() and below[0] == above[0] and below[3] > above[2]
    shared = filter_tiles(net[0].weight, normalize="shared")
    m = float(net[0].weight.detach().abs().max())
    assert np.allclose(shared.tiles[4], 0.5 + 0.5 * pattern.numpy() / m)
    assert "one scale for the layer" in shared.note


def test_a_deeper_layer_shows_each_filters_strongest_channels_first():
    net = _net()
    with torch.no_grad():
        net[3].weight.zero_()
        net[3].weight[2, 5] = 3.0
        net[3].weight[2, 1] = -1.0
    tiles = filter_tiles(net[3].weight, max_channels=2)
    assert tiles.columns == 2 and len(tiles.tiles) == 24
    assert tiles.filters[4:6] == (2, 2) and tiles.channels[4:6] == (5, 1)
    assert np.allclose(tiles.tiles[4], 1.0) and np.allclose(tiles.tiles[5], 0.5 - 0.5 / 3)


def test_a_partially_connected_layer_shows_only_its_connections():
    import cnnlab
    from cnnlab.viz.source import conv_weight

    c3 = cnnlab.create_model("lenet5").c3  # LeCun et al. 1998, Table I
    weight, mask = conv_weight(c3)
    tiles = filter_tiles(weight, mask=mask)
    assert tiles.columns == 6 and len(tiles.tiles) == 16 * 6
    for f, row in enumerate(c3.table):
        shown = [ch for g, ch in zip(tiles.filters, tiles.channels, strict=True) if g == f]
        assert [ch for ch in shown if ch != -1] == sorted(row)
        assert shown.count(-1) == 6 - len(row)
    # the last map sees all six inputs: its third tile is its kernel on input map 2
    assert c3.table[15] == (0, 1, 2, 3, 4, 5) and tiles.channels[15 * 6 + 2] == 2
    m = float(weight[15].abs().max())
    assert np.allclose(tiles.tiles[15 * 6 + 2], 0.5 + 0.5 * weight[15, 2].numpy() / m)


def test_an_rgb_first_layer_is_drawn_in_colour():
    conv = nn.Conv2d(3, 4, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1, 0] = 1.0  # filter 1: pure red
    tiles = filter_tiles(conv.weight)
    assert tiles.rgb and tiles.tiles.shape == (4, 2, 2, 3)
    assert np.allclose(tiles.tiles[1][..., 0], 1.0) and np.allclose(tiles.tiles[1][..., 1:], 0.5)


# ---- activations ---------------------------------------------------------------------------
def test_activation_maps_are_the_forwards_with_the_analysis_volumes():
    net, x = _net().eval(), torch.randn(1, 10, 10)
    layers = activation_maps(net, x)
    assert [lm.name for lm in layers] == ["0", "2", "3"]
    assert [lm.volume for lm in layers] == ["8x8x6", "4x4x6", "2x2x12"]
    assert np.allclose(layers[0].maps, net[0](x[None])[0].detach().numpy())
    fig = activation_figure(layers, "t")
    titles = [s._suptitle.get_text() for s in fig.subfigs[1:]]
    assert titles == ["0: 8x8x6", "2: 4x4x6", "3: 2x2x12"]
    assert np.allclose(fig.subfigs[3].axes[11].images[0].get_array(), layers[2].maps[11])


def test_a_layer_without_maps_is_refused_naming_it():
    with pytest.raises(Exception, match="--layers 6: its output has shape"):
        activation_maps(_net(), torch.randn(1, 10, 10), ["6"])


# ---- the arithmetic animation --------------------------------------------------------------
def _near(rgb, target, tol=40) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(rgb, target, strict=True))


@pytest.mark.parametrize(("n", "f", "s", "p", "d"), [(7, 3, 2, 1, 1), (7, 2, 2, 0, 2)])
def test_the_gif_has_a_frame_per_output_with_the_window_where_the_formula_puts_it(
    tmp_path, capsys, n, f, s, p, d
):
    out = tmp_path / "a.gif"
    args = ["viz", "arith", "--input", str(n), "--filter", str(f), "--stride", str(s)]
    assert main([*args, "--pad", str(p), "--dilation", str(d), "--out", str(out)]) == 0
    worked = window_arithmetic(n, f, s, p, d)
    anim = arith_animation(worked)  # the same drawing: gives where each cell lies
    gif = Image.open(out)
    assert gif.n_frames == worked.output**2 == len(window_positions(worked))
    assert (tmp_path / "a-strip.png").is_file()
    assert f"= {worked.output}" in capsys.readouterr().out
    for k in (0, gif.n_frames // 2, gif.n_frames - 1):
        gif.seek(k)
        frame = np.asarray(gif.convert("RGB"))
        r, c = divmod(k, worked.output)
        taps = {(r * s + a * d, c * s + b * d) for a in range(f) for b in range(f)}
        for cell, (x, y) in anim.input_px.items():
            assert _near(frame[y, x], TAP_RGB) == (cell in taps), (k, cell)


def test_a_window_that_does_not_fit_gives_arith_s_message_and_its_picture(tmp_path, capsys):
    out = tmp_path / "m.gif"
    assert main(["arith", "--input", "7", "--filter", "3", "--stride", "3"]) == 2
    expected = capsys.readouterr().err
    args = ["viz", "arith", "--input", "7", "--filter", "3", "--stride", "3", "--out", str(out)]
    assert main(args) == 2
    assert capsys.readouterr().err == expected and "2.33" in expected
    assert Image.open(tmp_path / "m-misfit.png").size[0] > 100 and not out.exists()
    m = misfit(7, 3, 3)
    assert m.starts == (0, 3, 6) and m.overhang == 2


# ---- architecture --------------------------------------------------------------------------
def _svg_ids(svg: str, prefix: str) -> list[str]:
    return re.findall(rf'<g id="{prefix}-([^"]+)"', svg)


@pytest.mark.parametrize("target", ["lenet5", "googlenet"])
def test_the_drawing_has_one_box_per_layer_with_the_analysis_shapes(tmp_path, target):
    out = tmp_path / "arch.svg"
    assert main(["viz", "arch", target, "--out", str(out)]) == 0
    svg = out.read_text()
    assert Image.open(tmp_path / "arch.png").size[0] > 300
    import cnnlab

    model = cnnlab.create_model(target)
    info = cnnlab.model_info(target)
    a = analyze(model, info.input_size)
    layers = [r for r in a.rows if r.layer is not None]
    blocks = [r.path for r in layers if str(r.layer.kind) == "block"]
    main_path = [r for r in layers if not any(r.path.startswith(b + ".") for b in blocks)]
    assert _svg_ids(svg, "box") == ["(input)"] + [r.path for r in main_path]
    for r in main_path:
        assert re.search(rf'<g id="volume-{re.escape(r.path)}">.*?{r.volume}', svg, re.S)
    if target == "googlenet":
        branches = block_boxes(a, "inception3a")
        assert list(branches) == ["branch1x1", "branch3x3", "branch5x5", "branch_pool"]
        assert [b.volume for b in branches["branch3x3"]] == ["28x28x96", "28x28x128"]


def test_every_layer_of_a_plain_network_is_a_box():
    a = analyze(_net(), (1, 10, 10))
    boxes = arch_boxes(a)
    assert [b.volume for b in boxes] == ["10x10x1", "8x8x6", "4x4x6", "2x2x12", "3"]
    assert arch_figure(boxes, "t").texts  # the scale is stated
    assert "linear" in arch_figure(boxes, "t").texts[-1].get_text()


# ---- curves --------------------------------------------------------------------------------
def test_curves_plot_the_numbers_in_metrics_jsonl(small_runs, tmp_path):
    from cnnlab.train import open_run

    run = open_run(small_runs[0])
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if not r.get("final")]
    fig = curves_figure(read_curves(run), "t")
    lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}
    assert list(lines["val_loss"].get_ydata()) == [r["val_loss"] for r in epochs]
    assert np.allclose(lines["val_top1"].get_ydata(), [100 * r["val_top1"] for r in epochs])
    assert list(lines["lr"].get_ydata()) == [r["lr"] for r in epochs]
    assert lines["test_top1"].get_ydata()[0] == pytest.approx(100 * rows[-1]["test_top1"])
    final = read_final(run)
    image = confusion_figure(final["confusion"], run.classes, "t").axes[0].images[0]
    assert np.array_equal(image.get_array(), np.asarray(final["confusion"]))

    out = tmp_path / "c.png"
    assert main(["viz", "curves", str(run.path), "--out", str(out)]) == 0
    for name in ("c.png", "c-confusion.png", "c-misclassified.png"):
        Image.open(tmp_path / name).verify()


# ---- the CLI on models and runs ------------------------------------------------------------
def test_filters_and_activations_of_a_run_and_of_a_model(small_runs, tmp_path, capsys):
    run = str(small_runs[0])
    assert main(["viz", "filters", run, "--out", str(tmp_path / "f.png")]) == 0
    deeper = ["viz", "filters", "lenet5", "--layer", "c5", "--channels", "1"]
    assert main([*deeper, "--out", str(tmp_path / "g.png")]) == 0
    args = ["viz", "activations", run, "--index", "3", "--out", str(tmp_path / "a.png")]
    assert main(args) == 0
    shot = Image.open(io.BytesIO((tmp_path / "a.png").read_bytes()))
    assert shot.size[1] > 200
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["viz", "filters", "lenet5", "--normalize", "max"], "--normalize 'max': expected one"),
        (["viz", "filters", "lenet5", "--layer", "c9"], "--layer 'c9': the model has no such"),
        (["viz", "filters", "lenet5", "--layer", "s2"], "the model's convolutions: c1, c3, c5"),
        (["viz", "activations", "lenet5"], "give one input: --image FILE or --index I"),
        (["viz", "activations", "lenet5", "--index", "0"], "an untrained model has no dataset"),
        (["viz", "arith", "--input", "0", "--filter", "3"], "size"),
        (["viz", "arch", "googlenet", "--block", "conv1"], "--block 'conv1': not a block"),
    ],
)
def test_each_mistake_is_one_error_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
