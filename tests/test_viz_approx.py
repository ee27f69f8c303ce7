"""cnnlab demo approx: more hidden units fit the function better, the deeper nets are matched
in parameters, the figure plots the measured errors, and the same seed gives the same fits."""

from __future__ import annotations

import numpy as np

from cnnlab.cli import main
from cnnlab.viz.approx import approx_figure, approximation_demo, mlp, target


def test_wider_fits_better_and_the_deep_nets_match_the_parameters(tmp_path):
    import torch

    threads = torch.get_num_threads()
    grid, y, fits = approximation_demo(widths=(2, 32), depths=(2,), steps=300, seed=1)
    assert torch.get_num_threads() == threads  # given back
    assert np.allclose(y, target(grid))
    by = {(f.depth, f.width): f for f in fits}
    narrow, wide = by[(1, 2)], by[(1, 32)]
    assert (narrow.params, wide.params) == (7, 97)
    assert wide.rms < narrow.rms / 3  # the universal-approximation slide, measured
    deep = [f for f in fits if f.depth == 2]
    assert [f.params for f in deep] == [sum(p.numel() for p in mlp(2, f.width).parameters())
                                        for f in deep]  # fmt: skip
    assert abs(deep[-1].params - 97) <= 15  # the nearest two-layer net to 97 parameters
    again = approximation_demo(widths=(2, 32), depths=(2,), steps=300, seed=1)[2]
    assert [f.rms for f in again] == [f.rms for f in fits]
    fig = approx_figure(grid, y, fits, 300)
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "depth 1")
    assert list(line.get_ydata()) == [narrow.rms, wide.rms]


def test_cnnlab_demo_approx_prints_the_table_and_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "a.png"
    assert main(["demo", "approx", "--steps", "20", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["depth", "width", "params", "RMS", "error"]
    rows = [ln.split() for ln in lines[1:-1]]
    assert [r[1] for r in rows if r[0] == "1"] == ["2", "4", "8", "16", "32", "64"]
    assert {r[0] for r in rows} == {"1", "2", "3"} and out.stat().st_size
    assert main(["demo", "approx", "--steps", "0"]) == 2
