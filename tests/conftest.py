import os

import torch

# Two cores on CI: keep each test process to its share of them.
torch.set_num_threads(int(os.environ.get("CNNLAB_TEST_THREADS", "2")))
