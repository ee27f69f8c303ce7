"""Maximally activating patches: the top patch of a channel really gives that channel's
maximum over the data, found in batches, and its crop is the unit's receptive field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.analysis import analyze
from cnnlab.cli import main
from cnnlab.train import open_run
from cnnlab.viz.hooks import record_outputs
from cnnlab.viz.images import normalize
from cnnlab.viz.maxact import PAD_RGB, crop_field, max_activations, maxact_figure


@pytest.fixture(scope="module")
def subject(small_runs):
    from cnnlab.train.runs import run_split

    run = open_run(small_runs[0])
    ds = run_split(run, "test").subset(list(range(300)))
    return run, run.build_model("best"), ds


@pytest.mark.parametrize("layer", ["conv1_1", "pool2"])
def test_the_top_patch_gives_the_channels_maximum_and_its_crop_is_the_field(subject, layer):
    run, model, ds = subject
    analysis = analyze(model, run.input_shape)
    field = analysis.row(layer).field
    found = max_activations(
        model, ds, layer, [0, 3, 5], mean=run.mean, std=run.std, top=4, batch_size=128
    )
    maps = record_outputs(model, normalize(ds.images, run.mean, run.std), [layer])[layer]
    for ch, patches in found.items():
        per_image = maps[:, ch].flatten(1).max(dim=1).values  # (N,)
        assert patches[0].value == pytest.approx(float(per_image.max()), rel=1e-5)
        expected = torch.sort(per_image, descending=True).values[:4]
        assert np.allclose([p.value for p in patches], expected.numpy(), rtol=1e-5)
        assert len({p.index for p in patches}) == 4  # four different images
        best = patches[0]
        r, c = best.unit
        assert float(maps[best.index, ch, r, c]) == pytest.approx(best.value, rel=1e-5)
        assert best.pixels.shape[1:] == tuple(field.size)
        assert best.rows == (field.start[0] + r * field.jump[0],
                             field.start[0] + r * field.jump[0] + field.size[0] - 1)  # fmt: skip
        # the crop is the image inside the field; outside the image it is padding
        img = ds.images[best.index, 0].numpy()
        for i in range(field.size[0]):
            for j in range(field.size[1]):
                y, x = best.rows[0] + i, best.cols[0] + j
                inside = 0 <= y < img.shape[0] and 0 <= x < img.shape[1]
                assert best.padding[i, j] == (not inside)
                assert best.pixels[0, i, j] == (img[y, x] if inside else 0)


def test_a_field_over_the_edge_is_padding_and_drawn_as_such():
    from cnnlab.analysis import RField

    image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    pixels, mask = crop_field(image, RField((3, 3), (1, 1), (-1, -1)), (0, 0))
    assert mask.tolist() == [[True] * 3, [True, False, False], [True, False, False]]
    assert pixels[0, 1:, 1:].tolist() == [[0, 1], [4, 5]]
    from cnnlab.viz.maxact import Patch

    patch = Patch(0, 1.0, (0, 0), (-1, 1), (-1, 1), pixels, mask)
    fig = maxact_figure({0: [patch]}, "x", (3, 3), "t")
    (grid,) = fig.axes
    assert [t.get_text() for t in grid.texts] == ["ch 0", "1.00"]
    shown = grid.images[0].get_array()
    assert tuple(shown[0, 0]) == PAD_RGB and tuple(shown[1, 1]) == (0, 0, 0)


def test_cnnlab_viz_maxact_writes_the_picture(small_runs, tmp_path):
    out = tmp_path / "m.png"
    args = ["viz", "maxact", str(small_runs[0]), "--layer", "conv2_1", "--channels", "3"]
    assert main([*args, "--limit", "200", "--out", str(out)]) == 0
    assert Image.open(out).size[1] > 150
    assert main([*args[:5], "--channel", "99", "--limit", "50", "--out", str(out)]) == 2
    assert main([*args[:2], str(small_runs[0]), "--layer", "fc3", "--out", str(out)]) == 2
