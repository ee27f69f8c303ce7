"""A real headless Chromium for the tests of the pages cnnlab writes (Selenium driving
Debian's chromium with its chromium-driver).

The browser starts with no network features (the machine may have none, and a page must
need none) and a fresh profile.  Where Chromium or its driver is missing, the tests fail
under ``make test`` (which sets CNNLAB_REQUIRE_BROWSER=1) and are skipped, with the reason,
elsewhere.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def start_browser():
    """A Selenium Chrome driver on the system Chromium, logging the console and the
    network (Chrome DevTools performance log)."""
    required = os.environ.get("CNNLAB_REQUIRE_BROWSER") == "1"
    browser = _find("chromium", "chromium-browser", "google-chrome")
    driver = _find("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        browser = None
    if browser is None or driver is None:
        why = "headless Chromium, chromedriver and selenium are needed (make setup installs them)"
        if required:
            pytest.fail(f"CNNLAB_REQUIRE_BROWSER=1: {why}", pytrace=False)
        pytest.skip(why)
    profile = tempfile.mkdtemp(prefix="cnnlab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    d.cnnlab_profile = profile
    return d


def stop_browser(d) -> None:
    try:
        d.quit()
    finally:
        shutil.rmtree(d.cnnlab_profile, ignore_errors=True)


def open_page(d, path: Path) -> None:
    """Load a local file, clearing the logs of earlier pages first."""
    d.get_log("browser")
    d.get_log("performance")
    d.get("file://" + str(Path(path).resolve()))


def console_errors(d) -> list[str]:
    return [e["message"] for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def requested_urls(d) -> list[str]:
    """Every URL asked for since the page was opened (DevTools Network events), except the
    browser's own internal pages (``chrome://``), which a page cannot load."""
    import json

    urls = []
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(("chrome://", "chrome-untrusted://")):
                urls.append(url)
    return urls


def screenshot(d):
    """The viewport as a Pillow RGB image."""
    from PIL import Image

    png = base64.b64decode(d.get_screenshot_as_base64())
    return Image.open(io.BytesIO(png)).convert("RGB")
