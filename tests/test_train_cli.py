"""`cnnlab train` end to end in a subprocess, on the real Fashion-MNIST files: the printed
summary and epochs, and what the run folder holds; user mistakes are one error line."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
import torch
from test_data_writers import real_fashion_dir

from cnnlab.data import load_dataset
from cnnlab.train.device import cpu_info
from cnnlab.train.evaluate import evaluate
from cnnlab.train.run import open_run, read_record
from cnnlab.train.runs import measured_as

SPEC = "conv3-8-bn-relu-maxpool-maxpool-fc-10"


def cnnlab(*argv: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    real_fashion_dir()
    out = tmp_path_factory.mktemp("runs") / "run"
    proc = cnnlab(
        "train", SPEC, "--data", "fashion-mnist", "--recipe", "fast", "--epochs", "2",
        "--batch-size", "128", "--set", "label_smoothing=0.1", "--seed", "3", "--threads", "1",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_train_prints_the_summary_each_epoch_and_the_result(trained):
    out, proc = trained
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("net: 4,026 parameters, ")
    assert "M MACs per image" in lines[0] and "training memory" in lines[0]
    assert "at batch 128" in lines[0]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split()[1] for e in epochs] == ["1/2", "2/2"]
    assert all("val loss" in e and "img/s" in e for e in epochs)
    assert any(line.startswith("test accuracy ") for line in lines)
    assert f"run folder: {out}" in lines
    assert any(line.strip().startswith(f"cnnlab eval {out}") for line in lines)
    assert any(line.strip().startswith(f"cnnlab summary {out} ") for line in lines)


def test_the_run_folder_holds_what_the_contract_says(trained):
    out, _ = trained
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["target"] == SPEC and config["dataset"] == "fashion-mnist"
    recipe = config["recipe"]
    assert recipe["name"] == "fast" and recipe["epochs"] == 2 and recipe["batch_size"] == 128
    assert recipe["label_smoothing"] == 0.1  # --set reached the saved config
    opts = config["options"]
    assert opts["seed"] == 3 and opts["device"] == "cpu"
    # "auto" is recorded as what this machine chose, with the memory format that goes with it
    # (a measurement where the CPU has bf16 instructions: on a busy machine a second one,
    # here, may choose otherwise, so only what the CPU allows is compared)
    assert opts["precision"] in (("fp32", "bf16") if cpu_info().has_bf16 else ("fp32",))
    assert opts["channels_last"] == (opts["precision"] == "bf16")
    assert opts["threads"] == 1
    env = config["environment"]
    assert env["torch"] == torch.__version__ and env["python"] and env["cnnlab"]
    assert env["command"].startswith("cnnlab train ")

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("epoch") for r in rows[:2]] == [1, 2]
    for r in rows[:2]:
        assert set(r) >= {"train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr",
                          "seconds", "images_per_s"}  # fmt: skip
    final = rows[-1]
    assert final["final"] is True and final["stopped"] == "completed"
    assert 0.5 < final["test_top1"] <= final["test_top5"] <= 1
    csv = (out / "metrics.csv").read_text().splitlines()
    assert len(csv) == 4

    record = read_record(out / "weights" / "best.safetensors")
    assert record["kind"] == "notation" and record["target"] == SPEC
    assert record["input_size"] == [28, 28] and record["in_channels"] == 1
    assert record["classes"][0] == "T-shirt/top" and len(record["classes"]) == 10
    assert record["mean"] == pytest.approx([0.2860], abs=1e-4)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["batch"] == 128 and summary["totals"]["params"] > 0
    confusion = json.loads((out / "final.json").read_text())["confusion"]
    assert len(confusion) == 10 and sum(map(sum, confusion)) == 10_000

    # The run rebuilds its model, and the final weights give the logged test accuracy.
    run = open_run(out)
    test = load_dataset("fashion-mnist", "test")
    how = measured_as(run)  # flips, precision and memory format as the run measured
    assert how["flip"] == recipe["test_flip"] and how["precision"] == opts["precision"]
    result = evaluate(run.build_model("final"), test, mean=run.mean, std=run.std, **how)
    assert result.top1 == pytest.approx(final["test_top1"])


def test_a_non_empty_out_is_refused(trained):
    out, _ = trained
    proc = cnnlab("train", SPEC, "--data", "fashion-mnist", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: --out {out}: exists and is not empty; a run never overwrites another, "
        "give a new folder"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alexnet"], "error: alexnet cannot take fashion-mnist's 1x28x28 images: alexnet: input"),
        (["lenet5", "--set", "lr=-1"], "error: --set lr=-1.0: expected a value > 0"),
        (["lenet5", "--set", "weight_decy=0"], "did you mean 'weight_decay'?"),
        (["lenet5", "--recipe", "alexnet"], "dropout=0.5: lenet5 has no dropout layer"),
        (["lenet5", "--batch-size", "0"], "error: --batch-size: batch_size=0: expected a value"),
    ],
)
def test_mistakes_are_one_error_line_before_any_training(tmp_path, argv, message):
    real_fashion_dir()
    out = tmp_path / "never"
    proc = cnnlab("train", *argv, "--data", "fashion-mnist", "--out", str(out), timeout=120)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith(message) or message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not out.exists()  # nothing was created


def test_list_keys_and_help():
    proc = cnnlab("train", "--list-keys")
    assert proc.returncode == 0 and "label_smoothing" in proc.stdout
    proc = cnnlab("train", "--help")
    assert "cifar-resnet" in proc.stdout and "--eval-test-every-epoch" in proc.stdout


def _spinner() -> subprocess.Popen:
    """Another process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _machine_and_own() -> tuple[float, float]:
    import resource

    from cnnlab.train.device import _busy_seconds

    me = resource.getrusage(resource.RUSAGE_SELF)
    return _busy_seconds(), me.ru_utime + me.ru_stime


def test_cpu_use_counts_other_processes_and_not_this_ones_own_threads():
    import time

    from cnnlab.train.device import CpuUse, usable_cores

    spinner = _spinner()
    try:
        time.sleep(0.3)  # the interpreter is up and spinning
        use = CpuUse.now()
        time.sleep(1.0)
        assert use.others_cores() >= 0.7  # the spinner's core (and whatever else runs)
    finally:
        spinner.kill()
        spinner.wait()
    # This process busy: its own CPU time (every thread's, here read from getrusage) is
    # taken out of the machine's, whatever else runs beside it.
    before, start = _machine_and_own(), time.monotonic()
    use = CpuUse.now()
    while time.monotonic() - start < 1.0:
        pass
    others = use.others_cores()
    after, wall = _machine_and_own(), time.monotonic() - start
    machine, own = (a - b for a, b in zip(after, before, strict=True))
    assert own / wall > 0.2  # it did run
    assert others == pytest.approx((machine - own) / wall, abs=0.15)
    assert others <= usable_cores() + 0.15
    assert CpuUse.now().others_cores() is None  # too short a time to tell


def test_the_busy_note_says_when_threads_would_share_cores_with_other_work():
    from cnnlab.cli._train_display import busy_note

    note = busy_note(1.0, threads=2, cores=2)
    assert note.startswith("note: other processes kept 1.0 of the 2 cores busy")
    assert "--threads 1" in note
    assert busy_note(0.2, 2, 2) is None  # a quiet machine
    assert busy_note(1.0, 1, 2) is None  # one thread does not wait on another
    assert busy_note(1.0, 2, 8) is None  # cores enough for both
    assert busy_note(None, 2, 2) is None  # the machine does not say


def test_train_says_when_other_processes_keep_its_cores_busy(tmp_path):
    from cnnlab.train.device import usable_cores

    real_fashion_dir()
    spinner = _spinner()
    try:
        proc = cnnlab(
            "train", SPEC, "--data", "fashion-mnist", "--set", "iterations=1", "--set",
            "epochs=none", "--threads", str(max(2, usable_cores())), "--out",
            str(tmp_path / "run"), "--quiet", "--no-report",
        )  # fmt: skip
    finally:
        spinner.kill()
        spinner.wait()
    assert proc.returncode == 0, proc.stderr
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("note: other")]
    assert "busy as this run started" in note and "--threads 1" in note
