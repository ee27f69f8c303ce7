"""Exact resume, with real processes and real signals: a run killed (SIGKILL) between or
during epochs, or stopped by SIGTERM, and resumed in a new process, has the same per-step
losses and bit-identical final weights, optimizer and generator states as a run that was
never stopped.  The data: a folder of a few hundred real Fashion-MNIST images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_data_writers import real_fashion_dir

from cnnlab.train.checkpoint import checkpoint_paths, load_checkpoint, read_checkpoint

# BatchNorm (buffers) and dropout (the torch generator) make the state worth restoring.
SPEC = "conv3-8-bn-relu-maxpool-dropout-fc-10"
STEPS_PER_EPOCH = 36  # 288 training images (320 less 10% validation) in batches of 8
EPOCHS = 4


def write_folder(root: Path, n_train: int = 320, n_test: int = 100) -> Path:
    """A folder dataset (train/ and test/, one subfolder per class) of real Fashion-MNIST
    images written as PNG files."""
    from PIL import Image

    from cnnlab.data import load_dataset

    for split, n in (("train", n_train), ("test", n_test)):
        ds = load_dataset("fashion-mnist", split)
        for i in range(n):
            folder = root / split / ds.classes[int(ds.labels[i])].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ds.images[i, 0].numpy(), "L").save(folder / f"{i:05d}.png")
    return root


def train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cnnlab", "train", SPEC, "--data", f"folder:{data}",
        "--batch-size", "8", "--epochs", str(EPOCHS), "--lr", "0.4", "--threads", "1",
        "--set", "log_steps=true", "--out", str(out), "--quiet", "--no-report", *extra,
    ]  # fmt: skip


def resume_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", "train", "--resume", str(out), "--quiet", "--no-report",
            *extra]  # fmt: skip


def run(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def steps_done(out: Path) -> int:
    try:
        return (out / "steps.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def signal_after(argv: list[str], out: Path, steps: int, sig: int) -> subprocess.CompletedProcess:
    """Start ``argv``, send ``sig`` once its steps.jsonl has ``steps`` lines, wait for it."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while steps_done(out) < steps:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.002)
        os.kill(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def step_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


def assert_same_run(ref: Path, other: Path) -> None:
    assert step_rows(other) == step_rows(ref)  # every step's loss and lr, in order
    for name in ("final", "best"):
        a = load_file(ref / "weights" / f"{name}.safetensors")
        b = load_file(other / "weights" / f"{name}.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # The newest checkpoints: weights, every optimizer tensor, the generators, the counts.
    ca, cb = load_checkpoint(ref / "checkpoints"), load_checkpoint(other / "checkpoints")
    assert ca.step == cb.step == EPOCHS * STEPS_PER_EPOCH
    assert ca.tensors.keys() == cb.tensors.keys()
    assert any(k.startswith("optimizer/") for k in ca.tensors) and "rng/torch" in ca.tensors
    assert all(torch.equal(ca.tensors[k], cb.tensors[k]) for k in ca.tensors)
    for key in ("optimizer", "schedule", "rng", "best_top1", "best_epoch", "epoch", "batch"):
        assert ca.state[key] == cb.state[key], key
    metrics = [json.loads(x) for x in (other / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    assert untimed(metrics) == untimed(expected)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    real_fashion_dir()
    return write_folder(tmp_path_factory.mktemp("fashion-folder"))


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """The run that was never stopped."""
    out = tmp_path_factory.mktemp("ref") / "run"
    run(train_argv(folder, out))
    assert len(step_rows(out)) == EPOCHS * STEPS_PER_EPOCH
    return out


def test_sigkill_between_epochs_then_resume_is_exact(folder, reference, tmp_path):
    out = tmp_path / "run"
    # Checkpoints only at the ends of epochs: the kill, in epoch 2, resumes from epoch 1's.
    killed = signal_after(train_argv(folder, out), out, STEPS_PER_EPOCH + 4, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    newest = read_checkpoint(checkpoint_paths(out / "checkpoints")[0])
    assert newest.state["batch"] == 0 and newest.step % STEPS_PER_EPOCH == 0
    assert newest.step < EPOCHS * STEPS_PER_EPOCH
    resumed = run(resume_argv(out))
    assert f"resuming from {newest.path.name}: step {newest.step}" in resumed.stdout
    assert_same_run(reference, out)


def test_sigterm_and_sigkill_during_epochs_then_resume_is_exact(folder, reference, tmp_path):
    out = tmp_path / "run"
    argv = train_argv(folder, out, "--checkpoint-every", "5")
    stopped = signal_after(argv, out, 12, signal.SIGTERM)
    assert stopped.returncode == 143, stopped.stderr  # documented: 128 + SIGTERM
    assert "stopped by SIGTERM" in stopped.stdout
    assert f"resume with: cnnlab train --resume {out}" in stopped.stdout
    at_stop = read_checkpoint(checkpoint_paths(out / "checkpoints")[0])
    assert at_stop.step == steps_done(out) and 0 < at_stop.state["batch"] < STEPS_PER_EPOCH

    # Resumed, then killed again in the same epoch: back to a mid-epoch checkpoint.
    again = signal_after(resume_argv(out), out, at_stop.step + 10, signal.SIGKILL)
    assert again.returncode == -signal.SIGKILL
    newest = read_checkpoint(checkpoint_paths(out / "checkpoints")[0])
    assert newest.step > at_stop.step and 0 < newest.state["batch"] < STEPS_PER_EPOCH
    assert newest.step % 5 == 0
    run(resume_argv(out))
    assert_same_run(reference, out)


def test_a_resume_that_contradicts_the_run_is_refused_naming_the_difference(reference):
    proc = subprocess.run(resume_argv(reference, "--batch-size", "16"), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --resume")
    assert "recipe.batch_size is 8 in the run and 16 now" in proc.stderr
    assert "only epochs, iterations" in proc.stderr


def _small_fit(tmp_path: Path, **kwargs):
    """fit() on 256 real images in memory, writing a run folder with checkpoints."""
    from cnnlab import build_spec
    from cnnlab.data import load_dataset
    from cnnlab.train.device import placement
    from cnnlab.train.loop import fit
    from cnnlab.train.recipe import Recipe
    from cnnlab.train.run import RunWriter
    from cnnlab.train.splits import TrainData

    real_fashion_dir()
    full = load_dataset("fashion-mnist", "train")
    train, val = full.subset(torch.arange(256)).split_validation(0.25)
    record = {"kind": "notation", "target": "conv3-4-relu-maxpool-fc-10", "kwargs": {},
              "in_channels": 1, "input_size": [28, 28], "num_classes": 10,
              "classes": list(full.classes), "mean": list(full.mean), "std": list(full.std),
              "dataset": full.name}  # fmt: skip
    torch.manual_seed(0)
    net = build_spec(record["target"], in_channels=1, input_size=28)
    run = RunWriter(tmp_path, record, tensorboard=False)
    recipe = Recipe(epochs=3, batch_size=32, lr=0.05, schedule="constant", **kwargs)
    result = fit(net, TrainData(train, val, None), recipe, where=placement("cpu", "fp32"),
                 run=run, checkpoint_every=4)  # fmt: skip
    run.close()
    return result


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_saying_so(tmp_path):
    _small_fit(tmp_path)
    folder = tmp_path / "checkpoints"
    newest, previous = checkpoint_paths(folder)  # the newest two are kept
    assert newest.name == "step-000000018.safetensors"
    # A temporary file left by a write that was killed never counts.
    (folder / f".{newest.name}.tmp-12345").write_bytes(b"half a checkpoint")
    assert checkpoint_paths(folder) == [newest, previous]
    blob = bytearray(newest.read_bytes())
    blob[-3] ^= 0x01  # one bit of the tensor data
    newest.write_bytes(bytes(blob))
    ckpt = load_checkpoint(folder)
    assert ckpt.path == previous
    assert len(ckpt.notes) == 1 and str(newest) in ckpt.notes[0]
    assert "does not match the SHA-256" in ckpt.notes[0] and previous.name in ckpt.notes[0]
    for content in (b"", blob[: len(blob) // 2]):
        newest.write_bytes(bytes(content))
        assert load_checkpoint(folder).path == previous
    previous.write_bytes(b"")
    with pytest.raises(Exception, match="no valid checkpoint is left"):
        load_checkpoint(folder)
