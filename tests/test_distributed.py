"""Distributed training with real torchrun processes (gloo, CPU, loopback only): two ranks
train the same parameters as one process with the same global batch (float32 tolerance);
with --max-restarts=2, a worker killed by SIGKILL mid-run makes torchrun restart the group,
which continues from the last checkpoint and ends as the run that was never killed; two
"nodes" (two torchrun launchers, c10d rendezvous on 127.0.0.1) agree with one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_data_writers import real_fashion_dir
from test_resume import write_folder

# No BatchNorm (its statistics are per rank under DDP) and no dropout (each rank draws its
# own masks): what is left must be the same function of the same global batches.  A modest
# rate: rounding differences (1e-7) grow with it, and at --lr 0.5 a flipped max-pool choice
# made two correct runs differ by 3e-5 within 18 steps.
SPEC = "conv3-8-relu-maxpool-fc-10"
STEPS = 2 * 9  # 2 epochs of 144 training images in global batches of 16


def train_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", SPEC, "--data", f"folder:{folder}", "--batch-size", "16", "--epochs", "2",
        "--lr", "0.2", "--set", "log_steps=true", "--quiet", "--no-report", "--out", str(out),
        # float32, whatever this CPU would choose: the ranks' weights are compared with
        # float32's tolerance (bf16 autocast rounds each rank's half of a batch apart).
        "--precision", "fp32", *extra,
    ]  # fmt: skip


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args, "-m", "cnnlab"]


def env() -> dict[str, str]:
    # One thread per rank: two ranks share this machine's two cores.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}


def finished(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400, env=env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def end_group(launcher: subprocess.Popen) -> None:
    """Kill a launcher that is still running together with its workers (its own session)."""
    if launcher.poll() is None:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "weights" / "final.safetensors")


def losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "steps.jsonl").read_text().splitlines()]


def final_row(out: Path) -> dict:
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def assert_float32_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k])  # float32: rtol 1.3e-6, atol 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, and two ranks started by ``cnnlab train --nproc 2``."""
    real_fashion_dir()
    root = tmp_path_factory.mktemp("ddp")
    folder = write_folder(root / "data", n_train=160, n_test=40)
    one, two = root / "one", root / "two"
    finished([sys.executable, "-m", "cnnlab", *train_args(folder, one, "--threads", "1")])
    started = finished([sys.executable, "-m", "cnnlab", *train_args(folder, two, "--nproc", "2")])
    return folder, one, two, started


def test_two_ranks_train_what_one_process_trains_with_the_same_global_batch(runs):
    _, one, two, started = runs
    assert "run folder:" in started.stdout and started.stdout.count("epoch 2/2") == 1  # rank 0
    assert len(losses(two)) == len(losses(one)) == STEPS
    assert_float32_close(weights(two), weights(one))
    # Each loss is a mean summed in another order (two halves, then their mean).
    torch.testing.assert_close(torch.tensor(losses(two)), torch.tensor(losses(one)))
    # Evaluation counts each test image once, summed over the ranks.
    a, b = final_row(one), final_row(two)
    assert a["test_top1"] == b["test_top1"] and a["best_val_top1"] == b["best_val_top1"]
    assert json.loads((two / "final.json").read_text())["n"] == 40
    env_ = (two / "config.toml").read_text()
    assert "ranks = 2" in env_


def _worker(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker process of ``rank`` (a child of ``parent``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_a_killed_worker_is_restarted_from_the_checkpoint_and_ends_as_if_never_killed(
    runs, tmp_path
):
    folder, _, two, _ = runs
    out = tmp_path / "run"
    # Two restarts allowed: the kill takes one; the other absorbs a transient failure of the
    # restarted group on a loaded machine (seen once on CI: gloo's "Connection closed by
    # peer", never reproduced in seven runs here, three of them with both cores busy).  A
    # restart that always fails still fails the test, and the result must still be exact.
    argv = torchrun("--standalone", "--nproc-per-node=2", "--max-restarts=2")
    argv += train_args(folder, out, "--checkpoint-every", "4")
    launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env(), start_new_session=True)  # fmt: skip
    try:
        steps = out / "steps.jsonl"
        while not steps.is_file() or steps.read_bytes().count(b"\n") < 6:
            assert launcher.poll() is None, launcher.communicate()
            time.sleep(0.005)
        victim = _worker(launcher.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=400)
    finally:
        end_group(launcher)
    assert launcher.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "resuming from step-0000000" in stdout  # the restarted group read a checkpoint
    assert losses(out) == losses(two)
    a, b = weights(out), weights(two)
    assert all(torch.equal(a[k], b[k]) for k in a)  # two ranks both times: bit for bit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_agree_with_one_process(runs, tmp_path):
    folder, one, _, _ = runs
    out = tmp_path / "run"
    rdzv = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "--rdzv-id=cnnlab-test"]  # fmt: skip
    nodes = [
        subprocess.Popen(
            torchrun(*rdzv) + train_args(folder, out),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
            start_new_session=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        results = [n.communicate(timeout=400) for n in nodes]
    finally:
        for n in nodes:
            end_group(n)
    for n, (stdout, stderr) in zip(nodes, results, strict=True):
        assert n.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert sum("run folder:" in stdout for stdout, _ in results) >= 1
    assert_float32_close(weights(out), weights(one))
    assert final_row(out)["test_top1"] == final_row(one)["test_top1"]
