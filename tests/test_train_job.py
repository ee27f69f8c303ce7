"""The library call behind `cnnlab train` (cnnlab.train.prepare): a script that names the
same request gets the same resolved run as the command, and trains it."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
from test_data_writers import real_fashion_dir

from cnnlab.errors import CnnlabError
from cnnlab.train import Request, prepare
from cnnlab.train.run import open_run

SPEC = "conv3-8-bn-relu-maxpool-maxpool-fc-10"
SETS = ["iterations=3", "epochs=none", "batch_size=64"]


def _config(run_dir):
    with open(run_dir / "config.toml", "rb") as f:
        config = tomllib.load(f)
    config.pop("environment")  # the machine and the command differ by design
    return config


def test_prepare_resolves_what_the_command_resolves_and_fit_trains_it(tmp_path):
    real_fashion_dir()
    job = prepare(
        Request(
            target=SPEC,
            data="fashion-mnist",
            recipe="fast",
            sets=SETS,
            flags={"seed": 5, "threads": 1},
            out=str(tmp_path / "lib"),
        )
    )
    assert job.path == tmp_path / "lib" and job.image_shape == (1, 28, 28)
    assert job.recipe.iterations == 3 and job.options.seed == 5
    result = job.fit()
    assert result.final["step"] == 3 and result.test is not None

    argv = ["train", SPEC, "--data", "fashion-mnist", "--recipe", "fast", "--seed", "5"]
    for s in SETS:
        argv += ["--set", s]
    argv += ["--threads", "1", "--out", str(tmp_path / "cli"), "--quiet", "--no-report"]
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert _config(tmp_path / "lib") == _config(tmp_path / "cli")
    # the same seed and data: the same weights after the same three steps
    lib, cli = open_run(tmp_path / "lib"), open_run(tmp_path / "cli")
    a = lib.build_model("final").state_dict()
    b = cli.build_model("final").state_dict()
    assert all((a[k] == b[k]).all() for k in a)


def test_a_request_without_data_is_a_user_mistake(tmp_path):
    with pytest.raises(CnnlabError, match="--data DATASET"):
        prepare(Request(target=SPEC, out=str(tmp_path / "x")))
