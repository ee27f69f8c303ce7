"""`cnnlab train --stream` with real processes and a real SIGKILL: a streamed run killed in
the middle of an epoch and resumed in a new process trains exactly as a run that held the
folder in memory and was never stopped (the same per-step losses, bit-identical weights)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from test_data_writers import real_fashion_dir
from test_resume import resume_argv, run, signal_after, step_rows, steps_done, write_folder

from cnnlab.train.checkpoint import checkpoint_paths, read_checkpoint

SPEC = "conv3-8-bn-relu-maxpool-dropout-fc-10"
STEPS_PER_EPOCH = 18  # 144 training images (160 less 10% validation) in batches of 8


def argv(data, out, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cnnlab", "train", SPEC, "--data", f"folder:{data}",
        "--batch-size", "8", "--epochs", "2", "--lr", "0.4", "--threads", "1",
        "--set", "log_steps=true", "--set", "augment=standard", "--out", str(out), "--quiet",
        "--no-report", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    real_fashion_dir()
    return write_folder(tmp_path_factory.mktemp("fashion-folder"), n_train=160, n_test=40)


def test_a_streamed_run_killed_mid_epoch_resumes_to_the_in_memory_run(folder, tmp_path):
    ref = tmp_path / "memory"
    run(argv(folder, ref))
    assert "streamed = true" not in (ref / "config.toml").read_text()  # this folder fits
    out = tmp_path / "streamed"
    killed = signal_after(
        argv(folder, out, "--stream", "--workers", "1", "--checkpoint-every", "5"),
        out,
        STEPS_PER_EPOCH + 12,
        signal.SIGKILL,
    )
    assert killed.returncode == -signal.SIGKILL
    newest = read_checkpoint(checkpoint_paths(out / "checkpoints")[0])
    assert newest.state["batch"] > 0  # inside epoch 2: the pipeline resumes mid-epoch
    resumed = run(resume_argv(out, "--workers", "2"))  # streams again, with other workers
    assert f"resuming from {newest.path.name}: step {newest.step}" in resumed.stdout
    assert "streamed = true" in (out / "config.toml").read_text()
    assert step_rows(out) == step_rows(ref)  # every step's loss and lr
    for name in ("final", "best"):
        a = load_file(ref / "weights" / f"{name}.safetensors")
        b = load_file(out / "weights" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    final = json.loads((out / "final.json").read_text())
    assert final == json.loads((ref / "final.json").read_text())


def test_workers_without_streamed_data_is_refused(folder, tmp_path):
    proc = subprocess.run(
        argv(folder, tmp_path / "r", "--workers", "2"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: --workers 2: folder:{folder} is held in memory")
    assert not (tmp_path / "r").exists()


def test_ctrl_c_to_the_whole_process_group_stops_a_streamed_run_with_a_checkpoint(folder, tmp_path):
    """A terminal's Ctrl-C reaches the training process and its decoding workers alike: the
    workers ignore it, the training process stops at a step boundary and saves."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        argv(folder, out, "--stream", "--workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        while steps_done(out) < 5:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "DataLoader" not in stderr
    assert f"cnnlab train --resume {out}" in stdout + stderr
    newest = read_checkpoint(checkpoint_paths(out / "checkpoints")[0])
    assert newest.step >= 5 and newest.step == len(step_rows(out))
