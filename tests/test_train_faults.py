"""Numerical and disk faults: a diverging run stops with the step, epoch and lr and exit
status 3, and never checkpoints non-finite weights; ``on_nan="skip"`` skips and counts; a
disk that fills up while saving (a real file-size limit) leaves the previous checkpoint
intact and says so; early stopping ends with the best epoch's weights."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_data_writers import real_fashion_dir
from test_resume import write_folder
from torch import nn

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train.checkpoint import checkpoint_paths, load_checkpoint, read_checkpoint
from cnnlab.train.device import placement
from cnnlab.train.loop import fit
from cnnlab.train.recipe import Recipe
from cnnlab.train.splits import TrainData

SPEC = "conv3-8-relu-maxpool-fc-10"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    real_fashion_dir()
    return write_folder(tmp_path_factory.mktemp("faults"), n_train=160, n_test=40)


def cnnlab(*argv, limit: int | None = None) -> subprocess.CompletedProcess:
    def file_size_limit():  # in the child, before cnnlab starts (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=file_size_limit if limit else None,
    )


def train_argv(folder: Path, out: Path, *extra) -> list:
    return ["train", SPEC, "--data", f"folder:{folder}", "--batch-size", "8", "--threads", "1",
            "--out", out, "--quiet", "--no-report", *extra]  # fmt: skip


def test_a_diverging_run_stops_naming_step_epoch_and_lr_with_status_3(folder, tmp_path):
    out = tmp_path / "run"
    proc = cnnlab(*train_argv(folder, out, "--epochs", "2", "--lr", "1e6", "--set",
                              "schedule=constant", "--checkpoint-every", "1"))  # fmt: skip
    assert proc.returncode == 3, proc.stderr  # documented in the README
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged: a non-finite")
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["stopped"] == "diverged"
    fault = f"at step {final['fault_step']} (epoch {final['fault_epoch']}, batch "
    assert fault in lines[0] and f"lr {final['fault_lr']:.3g}" in lines[0]
    # Checkpoints every step, yet none holds anything non-finite; the newest is the last good.
    paths = checkpoint_paths(out / "checkpoints")
    assert paths and read_checkpoint(paths[0]).step == final["step"] < final["fault_step"]
    for path in paths:
        ckpt = read_checkpoint(path)
        assert all(torch.isfinite(t).all() for t in ckpt.tensors.values() if t.is_floating_point())


class _FailsOnCall(nn.Module):
    """A real small network whose forward gives NaN on the ``bad``-th call (counted from 1)."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
        self.bad, self.calls = bad, 0

    def forward(self, x):
        self.calls += 1
        out = self.net(x)
        return out * float("nan") if self.calls == self.bad else out


def _data() -> TrainData:
    real_fashion_dir()
    train = load_dataset("fashion-mnist", "train").subset(torch.arange(128))
    return TrainData(train, None, None)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_on_nan_stop_keeps_the_weights_before_the_bad_step_and_skip_counts_it():
    recipe = Recipe(epochs=1, batch_size=16, lr=0.1, schedule="constant", weight_decay=0.0)
    cpu = placement("cpu", "fp32")
    torch.manual_seed(0)
    two_steps = _FailsOnCall(bad=0)
    start = _weights(two_steps)
    fit(two_steps, _data(), Recipe(iterations=2, epochs=None, batch_size=16, lr=0.1,
        schedule="constant", weight_decay=0.0), where=cpu)  # fmt: skip

    stops = _FailsOnCall(bad=3)
    stops.load_state_dict(start)
    result = fit(stops, _data(), recipe, where=cpu)
    assert result.stopped == "diverged"
    assert result.final["what"] == "loss" and result.final["fault_step"] == 3
    assert result.final["fault_epoch"] == 1 and result.final["fault_lr"] == pytest.approx(0.1)
    after = stops.state_dict()
    assert all(torch.equal(after[k], v) for k, v in two_steps.state_dict().items())

    skips = _FailsOnCall(bad=3)
    skips.load_state_dict(start)
    result = fit(skips, _data(), recipe, where=cpu, on_nan="skip")
    assert result.stopped == "completed" and result.state.step == 8
    assert result.history[-1]["skipped_steps"] == 1
    assert all(torch.isfinite(v).all() for v in skips.state_dict().values())


def test_a_full_disk_while_checkpointing_leaves_the_previous_checkpoint_and_says_so(
    folder, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main([str(a) for a in train_argv(folder, out, "--epochs", "1", "--lr", "0.5")]) == 0
    (previous,) = checkpoint_paths(out / "checkpoints")
    before = previous.read_bytes()
    weights = (out / "weights" / "best.safetensors").stat().st_size
    assert len(before) > 1.5 * weights  # so a limit between the two fails only checkpoints
    limit = (weights + len(before)) // 2
    full = cnnlab("train", "--resume", out, "--epochs", "2", "--quiet", "--no-report", limit=limit)
    assert full.returncode == 4, full.stderr  # documented in the README
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the checkpoint (File too large)" in lines[0]
    assert f"the previous checkpoint {previous} is intact" in lines[0]
    assert f"resume with: cnnlab train --resume {out}" in lines[0]
    assert checkpoint_paths(out / "checkpoints") == [previous]
    assert previous.read_bytes() == before
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    # room on the disk again
    again = cnnlab("train", "--resume", out, "--epochs", "2", "--quiet", "--no-report")
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(out / "checkpoints").step == 2 * 18


def test_early_stopping_ends_with_the_best_epochs_weights_and_says_which(folder, tmp_path,
                                                                        capsys):  # fmt: skip
    out = tmp_path / "run"
    # A rate so small that the validation top-1 cannot improve after epoch 1, while the
    # weights still change: patience 1 stops after epoch 2 and goes back to epoch 1 (not
    # whitened: a whitened first layer still improves the validation at this rate).
    code = main([str(a) for a in train_argv(folder, out, "--epochs", "6", "--lr", "1e-4",
                 "--set", "schedule=constant", "--set", "whiten=none", "--early-stop",
                 "1")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "early stop: no better validation top-1 for 1 epochs; the weights of epoch 1" in printed
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if not r.get("final")] == [1, 2]
    final = rows[-1]
    assert final["stopped"] == "early-stopped" and final["restored_epoch"] == 1
    assert "test_top1" in final
    last = load_checkpoint(out / "checkpoints").model_state()  # the weights after epoch 2
    kept = load_file(out / "weights" / "final.safetensors")
    best = load_file(out / "weights" / "best.safetensors")
    assert all(torch.equal(kept[k], best[k]) for k in best)
    assert not all(torch.equal(kept[k], last[k]) for k in kept)
