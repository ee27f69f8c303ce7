"""The weights' moving average (recipe key ``ema``): the formula, what a run evaluates and
saves, and an exact resume with it (real Fashion-MNIST images, in process)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_data_writers import real_fashion_dir
from torch import nn

from cnnlab.train.average import WeightAverage


def test_the_average_follows_the_formula_with_its_warm_up_and_copies_integer_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(model, 0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for n in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 3))  # BatchNorm's running stats and counter move
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
        average.update(model)
    got = average.state_dict()
    for k, v in expected.items():
        assert torch.allclose(got[k], v, atol=1e-6), k
    assert int(got["1.num_batches_tracked"]) == 30
    assert average.updates == 30 and average.rate() == pytest.approx(31 / 40)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with average.evaluated(model) as m:
        assert torch.equal(m[0].weight, got["0.weight"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="decay 1.0"):
        WeightAverage(model, 1.0)


def _fit(tmp_path, epochs, resume=None, ema=0.9):
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
    test = load_dataset("fashion-mnist", "test").subset(torch.arange(200))
    target = "conv3-4-bn-relu-maxpool-fc-10"
    record = {"kind": "notation", "target": target, "kwargs": {}, "in_channels": 1,
              "input_size": [28, 28], "num_classes": 10, "classes": list(full.classes),
              "mean": list(full.mean), "std": list(full.std), "dataset": full.name}  # fmt: skip
    torch.manual_seed(0)
    net = build_spec(target, in_channels=1, input_size=28)
    run = RunWriter(tmp_path, record, tensorboard=False)
    recipe = Recipe(epochs=epochs, batch_size=32, lr=0.1, schedule="constant", ema=ema)
    result = fit(net, TrainData(train, val, test), recipe, where=placement("cpu", "fp32"),
                 run=run, resume=resume,
                 config={"recipe": Recipe(epochs=3, ema=ema).to_dict()})  # fmt: skip
    run.close()
    return net, result


def test_a_run_with_ema_evaluates_saves_and_returns_the_average(tmp_path):
    from cnnlab.train.evaluate import evaluate
    from cnnlab.train.run import load_weights

    net, result = _fit(tmp_path / "a", 2)
    raw, _ = _fit(tmp_path / "b", 2, ema=0.0)
    _, final = load_weights(tmp_path / "a" / "weights" / "final.safetensors")
    assert all(torch.equal(final[k], v) for k, v in net.state_dict().items())
    # The same training steps (the average never feeds back), other weights at the end.
    assert not torch.equal(net[0].weight, raw[0].weight)
    # The reported test accuracy is the average's.
    from cnnlab.data import load_dataset

    test = load_dataset("fashion-mnist", "test").subset(torch.arange(200))
    again = evaluate(net, test, flip=False)
    assert result.test.top1 == again.top1 and result.test.loss == pytest.approx(again.loss)


def test_a_run_with_ema_resumed_from_a_checkpoint_ends_bit_identical(tmp_path):
    from cnnlab.train.checkpoint import load_checkpoint

    straight, _ = _fit(tmp_path / "straight", 3)
    _fit(tmp_path / "split", 2)
    ckpt = load_checkpoint(tmp_path / "split" / "checkpoints")
    assert any(k.startswith("average/") for k in ckpt.tensors)
    resumed, _ = _fit(tmp_path / "resumed", 3, resume=ckpt)
    for k, v in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    ref = load_file(tmp_path / "straight" / "weights" / "final.safetensors")
    assert all(torch.equal(ref[k], v) for k, v in straight.state_dict().items())
