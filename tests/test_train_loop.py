"""The training loop on the real Fashion-MNIST files: it really learns, it is deterministic,
it keeps its length, it stops cleanly on Ctrl-C, and it fills the run folder."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_data_writers import real_fashion_dir
from torch import nn

from cnnlab import build_spec, create_model
from cnnlab.data import Dataset, load_dataset
from cnnlab.train.config import resolve_config
from cnnlab.train.device import placement
from cnnlab.train.evaluate import evaluate
from cnnlab.train.init import apply_init
from cnnlab.train.loop import fit
from cnnlab.train.recipe import Recipe
from cnnlab.train.recipes import RECIPES
from cnnlab.train.run import RunWriter, open_run
from cnnlab.train.splits import TrainData, load_data

CPU = placement("cpu", "fp32")


@pytest.fixture(scope="module")
def fashion() -> TrainData:
    real_fashion_dir()
    return load_data("fashion-mnist", val_split=0.1, seed=0)


def _small(ds: Dataset, n: int) -> Dataset:
    return ds.subset(torch.arange(n))


@pytest.fixture
def one_thread():
    """The suite runs two workers on two cores: one thread each keeps the longest test from
    fighting the other worker for the cores (two threads per worker were several times
    slower on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_lenet5_learns_fashion_mnist_in_one_epoch(fashion, one_thread):
    """The lenet recipe, one epoch over the 54,000 training images: >= 85% on the whole
    10,000-image test split."""
    recipe, _ = resolve_config("lenet", flags={"epochs": 1})
    torch.manual_seed(0)
    model = apply_init(create_model("lenet5", input_size=28), recipe.init)
    result = fit(model, fashion, recipe, where=CPU, seed=0)
    assert result.stopped == "completed"
    assert result.test.n == 10_000
    assert result.test.top1 >= 0.85, result.final
    assert result.final["test_top1"] == result.test.top1
    (row,) = result.history
    assert row["val_top1"] >= 0.83 and row["train_loss"] < 1.0
    assert row["step"] == 54_000 // 64  # the last partial batch is dropped


def test_a_tiny_notation_network_overfits_64_images():
    real_fashion_dir()
    train = _small(load_dataset("fashion-mnist", "train"), 64)
    torch.manual_seed(0)
    net = build_spec("conv3-16-relu-maxpool-fc-64-relu-fc-10", in_channels=1, input_size=28)
    recipe = Recipe(
        epochs=80, batch_size=64, lr=0.01, optimizer="adam", weight_decay=0.0,
        schedule="constant",
    )  # fmt: skip
    result = fit(net, TrainData(train, None, None), recipe, where=CPU)
    assert result.history[-1]["train_loss"] < 0.05
    again = evaluate(net, train)
    assert again.top1 == 1.0 and again.n == 64


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not():
    real_fashion_dir()
    train = _small(load_dataset("fashion-mnist", "train"), 256)
    recipe = Recipe(epochs=2, batch_size=64, lr=0.05, schedule="cosine", augment="standard")

    def once(seed):
        torch.manual_seed(seed)
        net = build_spec("conv3-8-bn-relu-maxpool-dropout-fc-10", in_channels=1, input_size=28)
        fit(net, TrainData(train, None, None), recipe, where=CPU, seed=seed)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert torch.equal(once(3), once(3))
    assert not torch.equal(once(3), once(4))


def test_iterations_set_the_length_and_the_last_epoch_is_partial():
    real_fashion_dir()
    full = _small(load_dataset("fashion-mnist", "train"), 256)
    recipe = Recipe(epochs=None, iterations=10, batch_size=64, schedule="constant")
    events = []
    net = build_spec("conv3-4-relu-maxpool-fc-10", in_channels=1, input_size=28)
    result = fit(net, TrainData(full, None, None), recipe, where=CPU, on_event=events.append)
    assert [row["step"] for row in result.history] == [4, 8, 10]
    assert result.final["step"] == 10 and result.final["stopped"] == "completed"
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3


class _WithAux(nn.Module):
    """Returns (logits, aux) in training, logits in evaluation, as GoogLeNet does."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
        self.aux = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    def forward(self, x):
        out = self.body(x)
        return (out, self.aux(x)) if self.training else out


def test_auxiliary_heads_train_and_are_ignored_at_evaluation():
    real_fashion_dir()
    full = load_dataset("fashion-mnist", "train")
    train, val = _small(full, 1024).split_validation(0.25)
    torch.manual_seed(0)
    net = _WithAux()
    aux_before = net.aux[1].weight.detach().clone()
    recipe = Recipe(epochs=2, batch_size=64, lr=0.05, schedule="constant", aux_weight=0.3)
    result = fit(net, TrainData(train, val, None), recipe, where=CPU)
    assert result.history[-1]["val_top1"] > 0.5
    assert not torch.equal(net.aux[1].weight, aux_before)  # the auxiliary head learned too


def test_ctrl_c_stops_cleanly_and_keeps_the_weights(tmp_path):
    real_fashion_dir()
    full = load_dataset("fashion-mnist", "train")
    train, val = _small(full, 640).split_validation(0.2)
    record = {"kind": "notation", "target": "conv3-4-relu-maxpool-fc-10", "kwargs": {},
              "in_channels": 1, "input_size": [28, 28], "num_classes": 10,
              "classes": list(full.classes), "mean": list(full.mean), "std": list(full.std),
              "dataset": full.name}  # fmt: skip
    net = build_spec(record["target"], in_channels=1, input_size=28)
    run = RunWriter(tmp_path, record, tensorboard=False)
    run.write_config({"target": record["target"]})

    def press_ctrl_c(event):
        if event["event"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    recipe = Recipe(epochs=5, batch_size=64, lr=0.05, schedule="constant")
    result = fit(net, TrainData(train, val, None), recipe, where=CPU, run=run,
                 on_event=press_ctrl_c)  # fmt: skip
    assert result.stopped == "interrupted"
    assert result.final["epoch"] == 2 and result.final["step"] == 2 * (512 // 64)
    opened = open_run(tmp_path)
    assert [r["epoch"] for r in opened.epochs] == [1, 2]
    assert opened.final["stopped"] == "interrupted" and "test_top1" not in opened.final
    x = torch.zeros(1, 1, 28, 28)
    assert torch.equal(opened.build_model("final")(x), net.eval()(x))


def test_fit_fills_the_run_folder(tmp_path):
    real_fashion_dir()
    full = load_dataset("fashion-mnist", "train")
    test = _small(load_dataset("fashion-mnist", "test"), 500)
    train, val = _small(full, 1280).split_validation(0.25)
    spec = "conv3-8-bn-relu-maxpool-fc-10"
    record = {"kind": "notation", "target": spec, "kwargs": {}, "in_channels": 1,
              "input_size": [28, 28], "num_classes": 10, "classes": list(full.classes),
              "mean": list(full.mean), "std": list(full.std), "dataset": full.name}  # fmt: skip
    torch.manual_seed(0)
    net = build_spec(spec, in_channels=1, input_size=28)
    recipe = dataclasses.replace(RECIPES["fast"], epochs=3, batch_size=64)
    run = RunWriter(tmp_path, record, tensorboard=False)
    run.write_config({"target": spec, "recipe": recipe.to_dict()})
    result = fit(net, TrainData(train, val, test), recipe, where=CPU, run=run,
                 eval_test_every_epoch=True)  # fmt: skip
    opened = open_run(tmp_path)
    rows = opened.epochs
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr",
                    "seconds", "images_per_s", "test_top1"):  # fmt: skip
            assert isinstance(r[key], float), key
        assert r["test_peek"] is True  # test each epoch is marked
    best = max(rows, key=lambda r: r["val_top1"])
    assert opened.final["best_epoch"] == best["epoch"]
    final = json.loads((tmp_path / "final.json").read_text())
    assert sum(map(sum, final["confusion"])) == 500
    assert final["top1"] == pytest.approx(opened.final["test_top1"])
    # the saved final weights give the recorded test accuracy again
    again = evaluate(opened.build_model("final"), test, mean=opened.mean, std=opened.std,
                     flip=recipe.test_flip)  # fmt: skip
    assert again.top1 == pytest.approx(result.test.top1)
    best_eval = evaluate(opened.build_model("best"), val, flip=recipe.test_flip)
    assert best_eval.top1 == pytest.approx(best["val_top1"])
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 + 1 and lines[0].startswith("epoch,final,train_loss")
