"""Speed machinery: the per-machine precision policy, flip test-time augmentation, and the
speed benchmarks' own scripts run for real (their quick modes)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_data_writers import real_fashion_dir
from torch import nn

from cnnlab import build_spec
from cnnlab.data import load_dataset
from cnnlab.data.catalog import dataset_info
from cnnlab.errors import CnnlabError
from cnnlab.train.device import (
    _BF16_GAIN,
    _FLAGS,
    cpu_info,
    cpu_precision,
    matmul_gflops,
    placement,
    train_step_seconds,
)
from cnnlab.train.evaluate import evaluate
from cnnlab.train.loop import fit
from cnnlab.train.recipe import Recipe
from cnnlab.train.recipes import RECIPES
from cnnlab.train.splits import TrainData

ROOT = Path(__file__).resolve().parents[1]


def test_the_cpu_is_described_by_its_own_flags_and_torchs_capability():
    info = cpu_info()
    assert info.capability == torch.backends.cpu.get_cpu_capability()
    flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].splitlines()[0].split())
    assert set(info.flags) == {f for f in _FLAGS if f in flags}
    assert info.has_bf16 == bool({"avx512_bf16", "amx_bf16"} & flags)
    assert info.model in info.describe()


def test_auto_precision_on_the_cpu_is_the_measured_choice():
    choice, why = cpu_precision()
    assert choice in ("fp32", "bf16") and cpu_info().model in why
    if not cpu_info().has_bf16:  # no measurement: fp32
        assert choice == "fp32" and " ms " not in why
    else:  # measured: the reason gives both step times, and the choice follows them
        times = [float(t) for t in re.findall(r"([0-9.]+) ms in", why)]
        assert len(times) == 2
        assert (choice == "bf16") == (times[1] / times[0] >= _BF16_GAIN - 0.01)
    assert 0 < train_step_seconds(nn.Conv2d(1, 2, 3), (1, 8, 8), False, batch=4) < 60
    where = placement("cpu")
    assert where.precision == choice
    assert where.channels_last == (choice == "bf16")  # NHWC goes with oneDNN's bf16 convs
    assert placement("cpu", "fp32").precision == "fp32"
    assert matmul_gflops(torch.float32, 128, 2) > 0


@pytest.fixture
def fresh_precision(tmp_path, monkeypatch):
    """cpu_precision with an empty user cache in ``tmp_path`` (and its in-process memo
    cleared before and after, so that other tests see this machine's own choice)."""
    from cnnlab.train import device

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    device.cpu_precision.cache_clear()
    yield device, tmp_path / "cnnlab" / device.PRECISION_FILE
    device.cpu_precision.cache_clear()


def test_the_measured_precision_is_remembered_for_the_next_process(fresh_precision, monkeypatch):
    device, path = fresh_precision
    real = cpu_info()
    fake = dataclasses.replace(real, model="Test CPU 9000", flags=("avx512f", "avx512_bf16"))
    monkeypatch.setattr(device, "cpu_info", lambda: fake)
    other = {"some other machine": {"precision": "fp32", "reason": "its own"}}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(other))
    choice, why = device.cpu_precision()  # measured (the probe runs on any CPU) and written
    assert " ms in bf16 vs " in why and str(path) in why
    saved = json.loads(path.read_text())
    (key,) = [k for k in saved if "Test CPU 9000" in k]
    assert (
        saved[key]["precision"] == choice
        and saved["some other machine"] == other["some other machine"]
    )  # the other machine's choice is kept
    assert torch.__version__ in key and str(_BF16_GAIN) in key  # a new torch measures again

    # The next process reads the choice instead of measuring: shown by an edited one.
    flipped = {"fp32": "bf16", "bf16": "fp32"}[choice]
    saved[key] = {"precision": flipped, "reason": "Test CPU 9000: edited by the test"}
    path.write_text(json.dumps(saved))
    device.cpu_precision.cache_clear()
    assert device.cpu_precision() == (
        flipped,
        f"Test CPU 9000: edited by the test; remembered in {path}",
    )
    assert device.placement("cpu").precision == flipped

    # A damaged file is measured again and rewritten, never trusted.
    path.write_text('{"' + key[:20])
    device.cpu_precision.cache_clear()
    assert " ms in bf16 vs " in device.cpu_precision()[1]
    assert key in json.loads(path.read_text())


def test_a_cpu_without_bf16_is_fp32_with_nothing_measured_or_written(fresh_precision, monkeypatch):
    device, path = fresh_precision
    fake = dataclasses.replace(cpu_info(), model="Test CPU 100", flags=("avx2", "fma"))
    monkeypatch.setattr(device, "cpu_info", lambda: fake)
    choice, why = device.cpu_precision()
    assert choice == "fp32" and "no bf16 instructions" in why and " ms " not in why
    assert not path.exists()


def test_gradients_stay_channels_last_through_global_pooling_with_the_same_values():
    from cnnlab.train.device import channels_last_gradients

    def grads(hooked: bool) -> tuple[dict, bool]:
        torch.manual_seed(0)
        net = build_spec("conv3-8-bn-relu-conv3-16-bn-relu-gap-fc-10", in_channels=1,
                         input_size=12).to(memory_format=torch.channels_last)  # fmt: skip
        handles = channels_last_gradients(net) if hooked else []
        seen = {}
        relu = [m for m in net.modules() if isinstance(m, nn.ReLU)][-1]
        relu.register_full_backward_hook(
            lambda m, gin, gout: seen.update(
                cl=gout[0].is_contiguous(memory_format=torch.channels_last)
            )
        )
        x = torch.randn(6, 1, 12, 12).contiguous(memory_format=torch.channels_last)
        net(x).square().mean().backward()
        for h in handles:
            h.remove()
        assert not any(m._forward_pre_hooks for m in net.modules())  # removed: as before
        return {k: p.grad for k, p in net.named_parameters()}, seen["cl"]

    plain, plain_cl = grads(False)
    hooked, hooked_cl = grads(True)
    assert not plain_cl and hooked_cl  # torch hands back NCHW there; the hook makes it NHWC
    for k in plain:
        torch.testing.assert_close(hooked[k], plain[k])


def test_fit_in_channels_last_leaves_no_hook_on_the_model(tmp_path):
    real_fashion_dir()
    full = load_dataset("fashion-mnist", "train")
    train, val = full.subset(torch.arange(96)).split_validation(0.25)
    net = build_spec("conv3-4-bn-relu-gap-fc-10", in_channels=1, input_size=28)
    recipe = Recipe(epochs=1, batch_size=24, lr=0.05, schedule="constant")
    fit(net, TrainData(train, val, None), recipe, where=placement("cpu", "bf16"))
    assert not any(m._forward_pre_hooks for m in net.modules())
    assert not any("_conv_forward" in m.__dict__ for m in net.modules())  # its own forward


class _Mirrored(nn.Module):
    """``net`` looking at the mirror image of its input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flip(-1))


def test_flip_tta_averages_an_image_and_its_mirror():
    real_fashion_dir()
    test = load_dataset("fashion-mnist", "test").subset(torch.arange(300))
    torch.manual_seed(0)
    net = build_spec("conv3-8-bn-relu-maxpool-fc-10", in_channels=1, input_size=28).eval()
    plain, flipped = evaluate(net, test), evaluate(net, test, flip=True)
    mirrored = evaluate(_Mirrored(net).eval(), test, flip=True)
    # the average over {x, mirror(x)} does not care which of the two the net looks at
    assert mirrored.confusion == flipped.confusion
    assert mirrored.loss == pytest.approx(flipped.loss, rel=1e-5)
    assert flipped.loss != pytest.approx(plain.loss, rel=1e-3)  # a random net is no mirror
    # the same as averaging the logits by hand
    x = (test.images.float() / 255 - test.mean[0]) / test.std[0]
    with torch.no_grad():
        logits = (net(x) + net(x.flip(-1))) / 2
    by_hand = torch.nn.functional.cross_entropy(logits, test.labels).item()
    assert flipped.loss == pytest.approx(by_hand, rel=1e-4)  # (a random net's top-1 is ties)


def test_flip_tta_refuses_digits_and_fit_leaves_it_off_for_them():
    real_fashion_dir()
    train = load_dataset("fashion-mnist", "train").subset(torch.arange(256))
    digits = dataclasses.replace(train, info=dataset_info("mnist"))  # a class-changing mirror
    net = build_spec("conv3-8-bn-relu-maxpool-fc-10", in_channels=1, input_size=28)
    with pytest.raises(CnnlabError, match="flip"):
        evaluate(net, digits, flip=True)
    recipe = Recipe(epochs=1, batch_size=64, lr=0.05, schedule="constant", test_flip=True)
    result = fit(net, TrainData(digits, digits, digits), recipe, where=placement("cpu", "fp32"))
    assert result.test.top1 == evaluate(net, digits).top1  # evaluated without the mirror
    assert RECIPES["fast"].test_flip


def _bench(script: str, *args: str, timeout: int = 600) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_throughput_benchmark_prints_the_machine_and_both_sides():
    real_fashion_dir()
    out = _bench("throughput.py", "--nets", "fast", "--images", "512", "--rounds", "1",
                 "--threads", "1")  # fmt: skip
    assert cpu_info().model in out and "load average" in out and "peak: fp32 matmul" in out
    (row,) = [line for line in out.splitlines() if line.startswith("fast ")]
    cells = row.split()
    # The fast recipe's network, its parameters and multiply-adds counted here with hooks.
    from cnnlab.train.recipes import RECIPES

    net = build_spec(RECIPES["fast"].model, in_channels=1, input_size=28, num_classes=10)
    params = sum(p.numel() for p in net.parameters())
    macs = []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            m.register_forward_hook(lambda m, i, o: macs.append(o.numel() * m.weight[0].numel()))
    net.eval()(torch.zeros(1, 1, 28, 28))
    macs = sum(macs)
    assert cells[1] == f"{params:,}" and cells[2] == f"{macs / 1e6:.2f}M", (params, macs)
    ours, theirs, ratio = (float(c.rstrip("x").replace(",", "")) for c in cells[4:7])
    assert ours > 0 and theirs > 0 and ratio == pytest.approx(ours / theirs, rel=0.03)


def test_the_kernels_benchmark_prints_each_layer_and_both_steps(tmp_path, monkeypatch):
    from cnnlab.train.kernels import _GAIN

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # verdicts into a fresh cache
    out = _bench("kernels.py", "--nets", "fast", "--batch", "32", "--rounds", "1",
                 "--threads", "1")  # fmt: skip
    assert cpu_info().model in out and "load average before" in out
    layers = re.findall(r": +([\d.]+) / +([\d.]+) ms \(([\d.]+)x, (\w+)\)", out)
    assert len(layers) == 4  # fast's four convolutions
    for onednn, product, gain, verdict in layers:
        assert float(gain) == pytest.approx(float(onednn) / float(product), rel=0.1, abs=0.02)
        assert (verdict == "switches") == (float(gain) >= _GAIN)
    steps = dict(re.findall(r"step, +(\w+): +([\d.]+) ms", out))
    assert set(steps) == {"oneDNN", "switched"} and min(map(float, steps.values())) > 0
    (ratio,) = re.findall(r"ratio: ([\d.]+)x", out)
    assert float(ratio) == pytest.approx(
        float(steps["oneDNN"]) / float(steps["switched"]), rel=0.05, abs=0.01
    )


def test_the_step_time_benchmark_times_networks_in_turn_against_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the switch's verdicts, fresh
    out = _bench("step_time.py", "--net", "fast", "--net", "small=conv3-8-maxpool-bn-relu-gap-"
                 "fc-10", "--batch", "16", "--steps", "3", "--threads", "1")  # fmt: skip
    assert cpu_info().model in out and "load average before" in out
    rows = {r[0]: r for r in (line.split() for line in out.splitlines()) if r[:1] in
            (["fast"], ["small"])}  # fmt: skip
    assert rows["fast"][1] == "9.98M" and rows["small"][1] == "0.06M"
    assert rows["fast"][5] == "1.000"  # the reference against itself
    assert 0 < float(rows["small"][5]) < 1  # an eighth of the first layer, nothing after
    for r in rows.values():
        median_ms, fastest_ms = float(r[2]), float(r[3])
        assert 0 < fastest_ms <= median_ms
        # (the median is printed to 0.005 ms, the images/s from the unrounded median)
        rounding = 0.005 / median_ms
        assert int(r[4].replace(",", "")) == pytest.approx(16 / median_ms * 1e3,
                                                           rel=0.01 + rounding, abs=1)  # fmt: skip


@pytest.mark.parametrize(
    ("script", "option", "value", "says"),
    [
        ("kernels.py", "--batch", "0", "0 is too small"),
        ("step_time.py", "--steps", "0", "0 is too small"),
        ("throughput.py", "--rounds", "-1", "-1 is too small"),
        ("time_to_accuracy.py", "--seeds", "0", "0 is too small"),
        ("contention.py", "--steps", "two", "'two' is not a whole number"),
        ("data.py", "--workers", "-1", "-1 is too small"),
    ],
)
def test_a_benchmark_refuses_a_count_it_cannot_run_with_one_line(script, option, value, says):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), option, value],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    least = 0 if option == "--workers" else 1
    assert f"argument {option}: {says}; valid: a whole number >= {least}" in proc.stderr


def test_the_time_to_accuracy_benchmark_quick_mode_runs_both_sides():
    """Both sides really train and report a test accuracy; the table has every target."""
    real_fashion_dir()
    # two cnnlab sides against the one baseline run: the test after every epoch, and only
    # after the last one (as a user's run)
    out = _bench("time_to_accuracy.py", "--quick", "--fast-args=",
                 "--fast-args-at-end=--lr 0.2", timeout=1200)  # fmt: skip
    epochs = [line.split() for line in out.splitlines() if "epochs 1:" in line]
    assert [cells[0] for cells in epochs] == ["baseline", "cnnlab", "cnnlab"]
    commands = [line for line in out.splitlines() if line.startswith("cnnlab:   cnnlab train")]
    assert len(commands) == 2 and "--eval-test-every-epoch" in commands[0]
    assert "--lr 0.2" in commands[1] and "--eval-test-every-epoch" not in commands[1]
    for cells in epochs:
        top1 = float(cells[-1].rstrip("%")) / 100
        assert 0.5 < top1 < 1.0  # a few thousand images already learn most classes
    targets = [line.split()[0] for line in out.splitlines() if line.strip()[:3] in
               ("90%", "91%", "92%", "93%", "94%", "95%")]  # fmt: skip
    assert targets == ["90%", "91%", "92%", "93%", "94%", "95%"] * 2
    assert "load average" in out and cpu_info().model in out


def test_the_contention_benchmark_measures_each_wait_policy_quiet_and_beside_a_busy_process():
    out = _bench("contention.py", "--nets", "fast", "--steps", "1", "--rounds", "1", timeout=600)
    lines = out.splitlines()
    head = [c.strip() for c in next(x for x in lines if x.startswith("| net |")).split("|")[1:-1]]
    rows = [[c.strip() for c in x.split("|")[1:-1]] for x in lines if x.startswith("| fast |")]
    assert [r[1] for r in rows] == ["quiet", "one busy neighbour"]
    policies = ("spin", "short spin", "passive", "1 thread")
    for row in rows:
        cell = dict(zip(head, row, strict=True))
        rate = {p: float(cell[f"{p} img/s"].replace(",", "")) for p in policies}
        assert min(rate.values()) > 0
        ratio = float(cell["passive / spin"].rstrip("x"))
        assert ratio == pytest.approx(rate["passive"] / rate["spin"], rel=0.02, abs=0.01)
    assert "load average before" in out and cpu_info().model in out


def test_fast_presets_choose_network_and_length_for_a_target_or_a_budget():
    from cnnlab import analyze
    from cnnlab.train.config import resolve_config
    from cnnlab.train.recipes import FAST_PRESETS, fast_preset, parse_budget

    assert fast_preset(0.93)[1] == ["epochs=6", "val_every=0"]  # validated at the end
    assert fast_preset(0.935)[0].target == 0.94  # the cheapest that claims at least it
    for preset in FAST_PRESETS:  # each preset's network is what it says it is
        recipe, _ = resolve_config("fast", sets=list(preset.sets))
        net = build_spec(recipe.model, in_channels=1, input_size=28, num_classes=10)
        assert analyze(net, (1, 28, 28)).totals.macs == pytest.approx(preset.macs, rel=1e-3)
        assert recipe.epochs == preset.epochs
    with pytest.raises(CnnlabError, match="--target 0.97"):
        fast_preset(0.97)
    # a budget: the most accurate preset whose estimate fits, else fewer epochs of the first
    assert fast_preset(budget=parse_budget("20min"), flops_per_s=1e12)[0].target == 0.95
    first, sets = fast_preset(budget=60.0, flops_per_s=10e9)
    assert first.target == 0.92 and sets == ["epochs=1", "val_every=0"]
    # where the 93% preset fits and the 94% one does not: the 94% one cut to the epochs
    # that fit, when they are at least its fewest, else the 93% preset whole
    res = FAST_PRESETS[2]
    assert res.target == 0.94 and 1 <= res.fewest < res.epochs
    rate = 1e11
    epoch = 1.3 * 54_000 * 6 * res.macs / rate  # the estimate of one epoch of it, seconds
    assert 6 * 1.3 * 54_000 * 6 * FAST_PRESETS[1].macs / rate < (res.fewest - 0.5) * epoch
    for epochs in (res.fewest, res.epochs - 1):
        preset, sets = fast_preset(budget=10 + (epochs + 0.5) * epoch, flops_per_s=rate)
        assert preset is res and f"epochs={epochs}" in sets and f"model={res.model}" in sets
    preset, sets = fast_preset(budget=10 + (res.fewest - 0.5) * epoch, flops_per_s=rate)
    assert preset is FAST_PRESETS[1] and sets == list(FAST_PRESETS[1].sets)
    # measured here (a few SGD steps of the fast net in each precision): a day fits every
    # preset, and 20 s (10 of them for the start) fit fewer epochs of the first than its 3
    for precision in ("fp32", "auto"):
        assert fast_preset(budget=86_400.0, precision=precision)[0].target == 0.95
        first, sets = fast_preset(budget=20.0, precision=precision)
        assert first.target == 0.92 and sets[0].startswith("epochs=")
        assert 1 <= int(sets[0].split("=")[1]) < first.epochs
    assert parse_budget("5min") == 300 and parse_budget("90s") == 90 and parse_budget("2") == 2
    assert parse_budget("2 minutes") == 120 and parse_budget("1hour") == 3600
    for bad in ("soon", "-1min", "5 parsecs"):
        with pytest.raises(CnnlabError, match="--budget"):
            parse_budget(bad)


def test_presets_belong_to_the_fast_recipe_on_the_command_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "lenet5", "--data", "fashion-mnist",
         "--recipe", "lenet", "--target", "0.93"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: --target/--budget") and "--recipe fast" in line


def test_without_recipe_the_family_default_decides_whether_a_preset_applies():
    from cnnlab.cli import build_parser
    from cnnlab.cli.train import _preset

    parser = build_parser()
    # lenet5 trains with the 'lenet' recipe: no fast preset, and the message says why
    args = parser.parse_args(["train", "lenet5", "--data", "fashion-mnist", "--target", "0.93"])
    with pytest.raises(CnnlabError, match="lenet5 trains with 'lenet'"):
        _preset(args)
    # a notation network trains with 'fast' by default, so the preset applies
    args = parser.parse_args(["train", "conv3-8-relu-gap-fc-10", "--data", "fashion-mnist",
                              "--target", "0.93"])  # fmt: skip
    preset, sets = _preset(args)
    assert preset.target == 0.93 and "epochs=6" in sets
    # `--budget 5 min`: the unit is not taken for the model to train
    for unit in ("min", "Minutes"):
        args = parser.parse_args(["train", "--recipe", "fast", "--budget", "5", unit])
        with pytest.raises(CnnlabError, match=f"--budget 5 {unit}: write the time as one "
                                              f"word, --budget 5{unit}$"):  # fmt: skip
            _preset(args)


def test_the_budget_benchmark_prints_each_presets_estimate_and_what_a_budget_takes():
    from cnnlab.train.recipes import FAST_PRESETS

    out = _bench("budget.py", "--budget", "1h", timeout=300)
    assert cpu_info().model in out and "load average before" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit() and "M " in line]
    assert [(r[0], r[3]) for r in rows] == [
        (f"{p.target:.0%}", precision) for precision in ("fp32", "auto") for p in FAST_PRESETS
    ]
    for r in rows:  # GFLOP/s, the estimate with its 30% and without: 10 s + 1.3 x training
        rate, whole, bare = float(r[4]), float(r[5]), float(r[7])
        assert rate > 0 and bare > 10
        assert whole == pytest.approx(10 + 1.3 * (bare - 10), abs=1.5)
    (line,) = [x for x in out.splitlines() if x.startswith("--budget 1h: the ")]
    assert " preset, " in line and line.split(" preset, ")[1].split()[0].isdigit()


def test_a_budget_probes_the_networks_in_the_precision_the_run_trains_in(tmp_path):
    from cnnlab.cli import build_parser
    from cnnlab.cli.train import run_precision
    from cnnlab.train.recipes import fast_preset

    parser = build_parser()
    config = tmp_path / "run.toml"
    config.write_text('precision = "fp32"\n')
    for extra, precision in (
        ([], "auto"),  # no flag: the run's default, not fp32
        (["--precision", "fp32"], "fp32"),
        (["--set", "precision=bf16"], "bf16"),
        (["--precision", "bf16", "--set", "precision=fp32"], "bf16"),  # the flag first
        (["--config", str(config)], "fp32"),  # a configuration file too
        (["--config", str(config), "--set", "precision=bf16"], "bf16"),
    ):
        args = parser.parse_args(["train", "--recipe", "fast", "--data", "fashion-mnist",
                                  "--budget", "5min", *extra])  # fmt: skip
        assert run_precision(args) == precision
    args = parser.parse_args(["train", "--recipe", "fast", "--data", "fashion-mnist",
                              "--budget", "5min", "--set", "precision=fp16"])  # fmt: skip
    with pytest.raises(CnnlabError, match=r"^--set precision='fp16': did you mean 'bf16'\? "
                                          r"valid: auto, fp32, bf16$"):  # fmt: skip
        run_precision(args)
    with pytest.raises(CnnlabError, match="precision None: valid: auto, fp32, bf16"):
        fast_preset(budget=60.0, precision=None)


def test_a_run_says_what_its_preset_trains_and_measured_and_when_it_falls_short():
    from cnnlab.cli._train_display import preset_lines
    from cnnlab.train.recipes import FAST_PRESETS, FastPreset, fast_preset

    preset, sets = fast_preset(0.94)
    ((line, to_stderr),) = preset_lines(preset, sets, 0.94, None, [])
    assert not to_stderr and line.startswith("preset for --target 0.94: 10 epochs of a residual")
    assert f"measured {100 * preset.measured:.2f}% test accuracy" in line
    # asked for more than any preset measured: a warning, on stderr
    best, sets = fast_preset(0.95)
    lines = preset_lines(best, sets, 0.95, None, [], FAST_PRESETS)
    assert lines[1] == (f"warning: this preset measured {100 * best.measured:.2f}%, short of "
                        "the 95.00% asked; no preset has reached it yet", True)  # fmt: skip
    assert best is FAST_PRESETS[-1] and best.measured < 0.95
    # one short of its target while a dearer one reached it: that one is named
    short = FastPreset(0.93, ("epochs=6",), 9.98e6, 0.9299)
    (_, (warning, _)) = preset_lines(short, ["epochs=6"], 0.93, None, [], FAST_PRESETS)
    assert warning.endswith(f"--target 0.94 measured {100 * FAST_PRESETS[2].measured:.2f}%")
    # the user's own settings, or a budget's fewer epochs: not what the preset measured
    ((line, _),) = preset_lines(preset, list(preset.sets), 0.94, None, ["--lr"])
    assert "changed by --lr; not measured as such" in line
    # a network's whole notation would fill the line: the first 40 characters of it
    from argparse import Namespace

    from cnnlab.cli.train import _changes

    long = f"model={FAST_PRESETS[2].model}"
    args = Namespace(target=None, epochs=None, batch_size=512, lr=None, sets=[long, "seed=1"])
    assert _changes(args) == ["--batch-size", f"--set {long[:37]}..."]
    first = FAST_PRESETS[0]
    ((line, _),) = preset_lines(first, ["epochs=1", "val_every=0"], None, "20s", [])
    assert line.startswith("preset for --budget 20s: 1 epoch of the 92% preset's 3, cut for")
    assert "not measured as such" in line
    for p in FAST_PRESETS:  # measured accuracies, in the order of the presets' costs
        assert 0.9 < p.measured < 1
    assert sorted(p.measured for p in FAST_PRESETS) == [p.measured for p in FAST_PRESETS]


def test_the_network_probe_builds_the_candidates_the_readme_compares():
    sys.path.insert(0, str(ROOT / "bench"))
    from probe_nets import _macs, network

    from cnnlab import analyze

    for text, macs in (("base", 7.45e6), ("32p,64p,128p", 7.45e6),
                       ("32p,64p,128,128p", 14.68e6), ("s32,64p,128,128p", 14.55e6)):  # fmt: skip
        net = network(text)
        assert _macs(net) == analyze(net, (1, 28, 28)).totals.macs
        assert _macs(net) == pytest.approx(macs, rel=2e-3), text
    pooled_first = [type(m).__name__ for m in network("32p")][:4]
    assert pooled_first == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in network("base")][:4] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]  # fmt: skip
