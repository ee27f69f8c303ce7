"""``val_every``: validation after every N epochs and after the last (0: the last only),
on real images; training itself is untouched by it, and what needs every epoch's
validation (early stopping, the plateau schedule) refuses it by name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_data_writers import real_fashion_dir
from test_resume import write_folder

from cnnlab.cli import main

SPEC = "conv3-8-bn-relu-maxpool-fc-10"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    real_fashion_dir()
    return write_folder(tmp_path_factory.mktemp("val-every"), n_train=160, n_test=40)


def train(folder, out, *extra) -> int:
    argv = ["train", SPEC, "--data", f"folder:{folder}", "--batch-size", "16", "--threads", "1",
            "--precision", "fp32", "--out", str(out), "--quiet", "--no-report", *extra]  # fmt: skip
    return main([str(a) for a in argv])


def epoch_rows(out) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if not r.get("final")]


def validated(out) -> list[int]:
    return [r["epoch"] for r in epoch_rows(out) if "val_top1" in r]


def test_every_second_epoch_and_the_last_and_training_is_the_same(folder, tmp_path):
    every, second, last = tmp_path / "every", tmp_path / "second", tmp_path / "last"
    assert train(folder, every, "--epochs", "5") == 0
    assert train(folder, second, "--epochs", "5", "--set", "val_every=2") == 0
    assert train(folder, last, "--epochs", "5", "--set", "val_every=0") == 0
    assert validated(every) == [1, 2, 3, 4, 5]
    assert validated(second) == [2, 4, 5]
    assert validated(last) == [5]
    # The validations that happen are the same numbers, and so are the weights: a
    # validation pass changes nothing in training.
    for out in (second, last):
        assert [r["train_loss"] for r in epoch_rows(out)] == [
            r["train_loss"] for r in epoch_rows(every)
        ]
        a, b = (
            load_file(out / "weights/final.safetensors"),
            load_file(every / "weights/final.safetensors"),
        )
        assert all(torch.equal(a[k], b[k]) for k in a)
    by_epoch = {r["epoch"]: r["val_top1"] for r in epoch_rows(every)}
    assert all(r["val_top1"] == by_epoch[r["epoch"]] for r in epoch_rows(second) if "val_top1" in r)
    # The best weights are the best of the validated epochs (the first of a tie).
    final = json.loads((second / "metrics.jsonl").read_text().splitlines()[-1])
    top = max(by_epoch[e] for e in (2, 4, 5))
    assert final["best_val_top1"] == top
    assert final["best_epoch"] == next(e for e in (2, 4, 5) if by_epoch[e] == top)


def test_a_run_of_iterations_is_validated_at_its_end_mid_epoch(folder, tmp_path):
    out = tmp_path / "run"
    # 144 training images in batches of 16: 9 steps an epoch; 22 steps end inside epoch 3.
    code = train(folder, out, "--set", "epochs=none", "--set", "iterations=22",
                 "--set", "val_every=0")  # fmt: skip
    assert code == 0
    assert validated(out) == [3] and epoch_rows(out)[-1]["step"] == 22


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--early-stop", "2"), "val_every=0: early_stop=2 watches the validation top-1"),
        (("--set", "schedule=plateau"), "val_every=0: schedule=plateau watches the validation"),
    ],
)
def test_what_watches_every_epochs_validation_refuses_it(folder, tmp_path, capsys, extra, says):
    code = train(folder, tmp_path / "run", "--epochs", "2", "--set", "val_every=0", *extra)
    err = capsys.readouterr().err
    assert code == 2 and says in err and "valid: val_every=1" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "run").exists()  # refused before a run folder is made


def test_a_negative_val_every_is_a_config_error(folder, tmp_path, capsys):
    code = train(folder, tmp_path / "run", "--epochs", "1", "--set", "val_every=-1")
    err = capsys.readouterr().err
    assert code == 2 and "val_every" in err and ">= 0" in err


def test_the_curves_of_a_run_validated_every_second_epoch_show_those_points(folder, tmp_path):
    from cnnlab.train.run import open_run
    from cnnlab.viz.curves import curves_figure, read_curves

    out = tmp_path / "run"
    assert train(folder, out, "--epochs", "3", "--set", "val_every=2") == 0
    curves = read_curves(open_run(out))
    assert curves.epochs == [1, 2, 3]
    assert [v is not None for v in curves.series["val_top1"]] == [False, True, True]
    fig = curves_figure(curves, "val_every=2")
    (line,) = [x for x in fig.axes[1].get_lines() if x.get_label() == "val_top1"]
    assert list(line.get_xdata()) == [2, 3]  # the validated epochs only, joined


def test_a_preset_validates_every_epoch_when_early_stopping_is_asked_for(folder, tmp_path, capsys):
    out = tmp_path / "run"  # the presets validate after their last epoch only, unless
    assert train(folder, out, "--target", "0.92", "--early-stop", "5") == 0
    # the run says which preset it took, and that its own network and batch change it
    (said,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("preset for")]
    assert said.startswith("preset for --target 0.92: 3 epochs of the fast network")
    assert f"changed by the network {SPEC!r}, --batch-size; not measured as such" in said
    assert validated(out) == [1, 2, 3]
