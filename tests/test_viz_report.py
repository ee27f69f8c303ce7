"""The run report in a real headless Chromium: it loads with no console error and no
network request, draws a page that is not blank, its summary table has one row per analysis
row, and every image decodes.  cnnlab train writes it at the end (--no-report skips)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from browser import (
    console_errors,
    open_page,
    requested_urls,
    screenshot,
)

from cnnlab.analysis import analyze
from cnnlab.cli import main
from cnnlab.train import open_run
from cnnlab.viz.report import write_report


@pytest.fixture(scope="module")
def report(small_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    return small_runs[0], write_report(small_runs[0], out)


def test_the_report_loads_offline_and_shows_the_run(browser, report):
    run_path, page = report
    browser.set_window_size(1280, 1000)
    open_page(browser, page)
    assert console_errors(browser) == []
    foreign = [u for u in requested_urls(browser) if not u.startswith(("file:", "data:"))]
    assert foreign == []
    shot = np.asarray(screenshot(browser))
    assert (shot < 128).any(axis=2).mean() > 0.005  # text and tables are drawn
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 16

    run = open_run(run_path)
    analysis = analyze(run.build_model("best"), run.input_shape)
    paths = browser.execute_script(
        "return Array.from(document.querySelectorAll('#summary tbody tr')).map(r => r.dataset.path)"
    )
    assert paths == [r.path for r in analysis.rows]
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.id, i.complete, i.naturalWidth])"
    )
    ids = {i for i, _, _ in images}
    expected = {"curves-img", "confusion-img", "filters-img", "maxact-img", "arch-img"}
    assert expected | {"predictions-img"} <= ids
    assert all(done and width > 0 for _, done, width in images), images
    final = json.loads((run.path / "final.json").read_text())
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#per-class tbody tr'))"
        ".map(r => r.cells[1].textContent)"
    )
    assert shown == [f"{100 * a:.1f}%" for a in final["per_class"]]


def test_cnnlab_report_writes_the_page_and_refuses_a_folder_that_is_not_a_run(
    small_runs, tmp_path, capsys
):
    out = tmp_path / "r.html"
    assert main(["report", str(small_runs[1]), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a run folder" in err and err.count("\n") == 1


def test_cnnlab_train_writes_the_report_at_the_end(tmp_path, capsys):
    spec = "conv3-4-relu-maxpool-fc-10"
    common = ["train", spec, "--data", "fashion-mnist", "--recipe", "fast", "--threads", "1"]
    common += ["--set", "iterations=10", "--set", "epochs=none", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert f"report: {tmp_path / 'a' / 'report.html'}" in capsys.readouterr().out
    assert '<table id="summary">' in (tmp_path / "a" / "report.html").read_text()
    assert main([*common, "--out", str(tmp_path / "b"), "--no-report"]) == 0
    assert not (tmp_path / "b" / "report.html").exists()
    assert (tmp_path / "b" / "final.json").is_file()
