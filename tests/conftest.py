import os

import torch
from hypothesis import HealthCheck, settings

# Two cores on CI: keep each test process to its share of them.
torch.set_num_threads(int(os.environ.get("CNNLAB_TEST_THREADS", "2")))

# A loaded 2-core CI machine can make example generation slow; that says nothing about the
# code under test, so Hypothesis' speed health check is off (deadlines are off per test).
settings.register_profile("cnnlab", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cnnlab")
