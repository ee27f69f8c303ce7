import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from run_fixtures import make_runs

# Two cores on CI: keep each test process to its share of them.
torch.set_num_threads(int(os.environ.get("CNNLAB_TEST_THREADS", "2")))

# A loaded 2-core CI machine can make example generation slow; that says nothing about the
# code under test, so Hypothesis' speed health check is off (deadlines are off per test).
settings.register_profile("cnnlab", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cnnlab")


# ---- real small runs, shared by the tests of eval, predict, ensemble, export and runs ----------


@pytest.fixture(scope="session")
def small_runs(tmp_path_factory):
    """Three real runs (a tiny notation network, seeds 0, 1, 2, trained briefly on real
    Fashion-MNIST) in one folder; built once per test process.  Read-only for the tests."""
    return make_runs(tmp_path_factory.mktemp("runs"), seeds=(0, 1, 2))


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (tests/browser.py) for every browser test of a test process."""
    from browser import start_browser, stop_browser

    d = start_browser()
    yield d
    stop_browser(d)
