"""The interactive arithmetic page in a real headless Chromium: the sliders drive the
output size and the "does not fit" case, as the lecture's arithmetic says."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from browser import (
    console_errors,
    open_page,
    requested_urls,
    screenshot,
)

from cnnlab.geometry import fit
from cnnlab.viz.arith_page import arith_page


@pytest.fixture(scope="module")
def arith_html(tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "arith.html"
    path.write_text(arith_page(7, 3, 2, 1), encoding="utf-8")
    return path


def _set(d, **values) -> None:
    for key, value in values.items():
        d.execute_script(
            "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input'));",
            key,
            str(value),
        )


def _text(d, id_: str) -> str:
    return d.execute_script(f"return document.getElementById('{id_}').textContent")


def test_the_arith_page_loads_offline_without_errors_and_draws(browser, arith_html):
    open_page(browser, arith_html)
    assert _text(browser, "output-size") == "4x4"
    errors = console_errors(browser)
    assert errors == []
    foreign = [u for u in requested_urls(browser) if not u.startswith(("file:", "data:"))]
    assert foreign == []
    shot = np.asarray(screenshot(browser))
    assert (shot < 200).any(axis=2).mean() > 0.01  # not a blank page: the grid is drawn
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 8


def test_the_sliders_show_the_misfit_and_the_fit(browser, arith_html):
    open_page(browser, arith_html)
    _set(browser, input=7, filter=3, stride=3, pad=0, dilation=1)
    assert _text(browser, "status") == "does not fit"
    assert "2.33" in _text(browser, "formula")
    _set(browser, stride=2, pad=1)
    assert _text(browser, "status") == "fits"
    assert _text(browser, "output-size") == "4x4"
    assert console_errors(browser) == []


def test_the_page_agrees_with_the_geometry_over_many_settings(browser, arith_html):
    open_page(browser, arith_html)
    settings = list(itertools.product((1, 5, 7, 12), (1, 3, 4), (1, 2, 3), (0, 1, 2), (1, 2)))
    got = browser.execute_script(
        "return arguments[0].map(s => { const a = arithmetic({input: s[0], filter: s[1], "
        "stride: s[2], pad: s[3], dilation: s[4]}); return [a.fits, a.output, a.formula]; })",
        settings,
    )
    for s, (fits, output, formula) in zip(settings, got, strict=True):
        f = fit(*s)
        assert (fits, output, formula) == (f.fits, f.output, f.formula()), s


def test_a_missing_browser_fails_when_required_and_is_skipped_with_the_reason_otherwise(
    monkeypatch,
):
    import shutil

    import browser as harness

    monkeypatch.setattr(shutil, "which", lambda name: None)  # no chromium, no chromedriver
    monkeypatch.setenv("CNNLAB_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="CNNLAB_REQUIRE_BROWSER=1: headless"):
        harness.start_browser()
    monkeypatch.delenv("CNNLAB_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="chromedriver and selenium are needed"):
        harness.start_browser()
