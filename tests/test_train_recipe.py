"""Recipes and configuration, schedules against their formulas, the loss and weight decay
against hand computations, and the papers' initialisations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import create_model
from cnnlab.errors import CnnlabError
from cnnlab.layers import ConnectionTableConv2d
from cnnlab.train.config import resolve_config
from cnnlab.train.init import apply_init, set_dropout
from cnnlab.train.loss import loss_fn
from cnnlab.train.optim import Schedule, make_optimizer, param_groups
from cnnlab.train.recipe import ConfigError, Recipe
from cnnlab.train.recipes import RECIPES, default_recipe

# ---- recipes --------------------------------------------------------------------------------


def test_the_papers_recipes_say_what_the_issue_and_the_papers_say():
    a = RECIPES["alexnet"]
    assert (a.optimizer, a.momentum, a.lr, a.batch_size, a.weight_decay, a.dropout) == (
        "sgd", 0.9, 0.01, 128, 5e-4, 0.5)  # fmt: skip
    assert a.schedule == "plateau" and a.gamma == 0.1 and a.augment == "standard"
    v = RECIPES["vgg"]
    assert (v.momentum, v.batch_size, v.lr, v.weight_decay, v.dropout, v.init) == (
        0.9, 256, 0.01, 5e-4, 0.5, "he")  # fmt: skip
    r = RECIPES["resnet"]
    assert (r.lr, r.batch_size, r.weight_decay, r.dropout, r.init, r.schedule) == (
        0.1, 256, 1e-4, None, "he", "plateau")  # fmt: skip
    assert "1e-5" in r.about and "1e-4" in r.about  # the lecture's slide against the paper
    c = RECIPES["cifar-resnet"]
    assert (c.iterations, c.milestones, c.milestone_unit, c.batch_size, c.weight_decay) == (
        64_000, (32_000, 48_000), "iteration", 128, 1e-4)  # fmt: skip
    assert c.augment == "standard" and c.epochs is None
    assert RECIPES["lenet"].optimizer == "sgd" and RECIPES["lenet"].momentum > 0
    assert RECIPES["fast"].model is not None
    for recipe in RECIPES.values():
        assert recipe.about, recipe.name
        resolve_config(recipe.name)  # each is valid as written


def test_each_model_family_has_a_default_recipe():
    from cnnlab import list_models

    expected = {"lenet5": "lenet", "alexnet": "alexnet", "vgg16": "vgg", "resnet50": "resnet",
                "resnet20": "cifar-resnet", "resnet1202": "cifar-resnet",
                "googlenet": "googlenet", "zfnet": "alexnet"}  # fmt: skip
    for name, recipe in expected.items():
        assert default_recipe(name) == recipe
    for name in list_models():
        assert default_recipe(name) in RECIPES
    assert default_recipe("conv3-8-relu-fc-10") == "fast"


# ---- layering ---------------------------------------------------------------------------------


def test_layers_recipe_then_toml_then_set_then_flags(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("lr = 0.1\nepochs = 3\n[options]\nseed = 7\n[recipe]\nmomentum = 0.8\n")
    r, o = resolve_config("lenet")
    assert r.lr == 0.05 and r.epochs == 12 and o.seed == 0
    r, o = resolve_config("lenet", config_file=toml)
    assert (r.lr, r.epochs, r.momentum, o.seed) == (0.1, 3, 0.8, 7)
    r, o = resolve_config("lenet", config_file=toml, sets=["lr=0.2", "seed=3"])
    assert (r.lr, r.epochs, o.seed) == (0.2, 3, 3)
    r, o = resolve_config(
        "lenet", config_file=toml, sets=["lr=0.2"], flags={"lr": 0.3, "batch_size": None}
    )
    assert r.lr == 0.3 and r.batch_size == RECIPES["lenet"].batch_size  # None: not given


def test_set_values_are_read_as_the_keys_types():
    r, o = resolve_config(
        "cifar-resnet",
        sets=["milestones=100,200", "iterations=300", "nesterov=true", "grad_clip=none",
              "betas=[0.8, 0.9]", "lr=1e-2", "threads=2", "val_split=0.2"],
    )  # fmt: skip
    assert r.milestones == (100, 200) and r.iterations == 300 and r.nesterov is True
    assert r.grad_clip is None and r.betas == (0.8, 0.9) and r.lr == 0.01
    assert o.threads == 2 and o.val_split == 0.2


def test_epochs_flag_replaces_an_iteration_count():
    r, _ = resolve_config("cifar-resnet", sets=["milestones=2,3"], flags={"epochs": 4})
    assert r.epochs == 4 and r.iterations is None


def test_a_saved_config_can_be_given_back(tmp_path):
    from cnnlab.train.run import RunWriter

    record = {"kind": "zoo", "target": "lenet5", "kwargs": {}, "in_channels": 1,
              "input_size": [28, 28], "num_classes": 2, "classes": ["a", "b"], "mean": [0.5],
              "std": [0.5], "dataset": "toy"}  # fmt: skip
    r, o = resolve_config("vgg", sets=["lr=0.02"])
    writer = RunWriter(tmp_path, record, tensorboard=False)
    writer.write_config({"target": "lenet5", "dataset": "toy", "recipe": r.to_dict(),
                         "options": o.to_dict(), "environment": {"torch": "x"}})  # fmt: skip
    again, o2 = resolve_config("lenet", config_file=tmp_path / "config.toml")
    assert again == r and o2 == o


BAD = [
    (["bacth_size=3"], "unknown key 'bacth_size'; did you mean 'batch_size'?"),
    (["batch_size=0"], "batch_size=0: expected a value >= 1"),
    (["batch_size=3.5"], "batch_size='3.5': expected int"),
    (["lr=-0.1"], "lr=-0.1: expected a value > 0"),
    (["lr=fast"], "lr='fast': expected float"),
    (["lr=nan"], "lr=nan: expected a finite number"),
    (["momentum=1"], r"momentum=1.0: expected a value in \[0, 1\)"),
    (["optimizer=sdg"], "optimizer='sdg': did you mean 'sgd'\\? valid: sgd, adam, adamw"),
    (["schedule=cosin"], "did you mean 'cosine'"),
    (["nesterov=maybe"], "nesterov='maybe': expected true or false"),
    (["label_smoothing=1"], r"label_smoothing=1.0: expected a value in \[0, 1\)"),
    (["epochs=none"], "neither set"),
    (["iterations=100"], "both set"),
    (["schedule=step"], "needs milestones"),
    (["schedule=step", "milestones=4,19"], "19 is past the end of training \\(12 epochs\\)"),
    (["milestones=5,3"], "milestones must increase"),
    (["schedule=plateau", "val_split=0"], "val_split=0 holds out none"),
    (["augment=none", "crop_padding=2"], "crop_padding=2 is part of the standard augmentation"),
    (["augment=none", "alternate_flip=true"], "alternate_flip=true is part of the standard"),
    (["min_lr=1"], "min_lr=1.0: must be below the learning rate"),
    (["optimizer=adam"], "nesterov=true needs optimizer='sgd'"),
    (["val_split=1"], r"val_split=1.0: expected a value in \[0, 1\)"),
    (["device=gpu"], "device='gpu': .*valid: auto, cpu, cuda"),
    (["betas=0.9"], "expected two numbers"),
    (["lr"], "expected KEY=VALUE"),
]


@pytest.mark.parametrize(("sets", "message"), BAD, ids=[s[0][-1] for s in BAD])
def test_every_bad_value_is_one_error_naming_key_value_and_what_is_valid(sets, message):
    with pytest.raises(ConfigError, match=message) as err:
        resolve_config("lenet", sets=sets)
    assert "\n" not in str(err.value)


def test_bad_toml_files(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("lr = 'high'\n")
    with pytest.raises(ConfigError, match=r"c.toml: lr='high': expected a number"):
        resolve_config("lenet", config_file=f)
    f.write_text("epochs = true\n")
    with pytest.raises(ConfigError, match="epochs=True: expected int"):
        resolve_config("lenet", config_file=f)
    f.write_text("[recipe]\nsead = 1\n")
    with pytest.raises(ConfigError, match=r"unknown .*\[recipe\] key 'sead'"):
        resolve_config("lenet", config_file=f)
    f.write_text("lr = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_config("lenet", config_file=f)
    with pytest.raises(ConfigError, match="no such file"):
        resolve_config("lenet", config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown recipe 'resnt'; did you mean 'resnet'"):
        resolve_config("resnt")


def test_a_recipe_that_does_not_fit_the_model():
    with pytest.raises(CnnlabError, match="dropout=0.5: lenet5 has no dropout layer"):
        set_dropout(create_model("lenet5"), 0.5, "lenet5")
    alex = create_model("alexnet", input_size=67, num_classes=3)
    assert set_dropout(alex, 0.3) == 2
    assert all(m.p == 0.3 for m in alex.modules() if isinstance(m, nn.Dropout))
    recipe, _ = resolve_config("cifar-resnet", flags={"epochs": 2})
    with pytest.raises(CnnlabError, match=r"32000 is past the end of training \(1000 iteration"):
        Schedule(recipe, total=1000, steps_per_epoch=500)


# ---- schedules against their formulas -------------------------------------------------------


def _curve(recipe: Recipe, total: int, per_epoch: int) -> list[float]:
    s = Schedule(recipe, total, per_epoch)
    return [s.lr(t) for t in range(total)]


def test_step_schedule_in_epochs_and_in_iterations():
    r = Recipe(epochs=6, lr=0.1, schedule="step", milestones=(2, 4), gamma=0.1)
    curve = _curve(r, 60, 10)
    for t, lr in enumerate(curve):
        epoch = t // 10
        assert lr == pytest.approx(0.1 * 0.1 ** ((epoch >= 2) + (epoch >= 4)))
    r = Recipe(epochs=None, iterations=50, lr=0.1, schedule="step", milestones=(25, 40),
               milestone_unit="iteration", gamma=0.5)  # fmt: skip
    curve = _curve(r, 50, 7)
    assert curve[24] == pytest.approx(0.1) and curve[25] == pytest.approx(0.05)
    assert curve[39] == pytest.approx(0.05) and curve[40] == pytest.approx(0.025)


def test_lr_scales_with_the_batch_it_refers_to():
    r = Recipe(lr=0.1, lr_batch=256, batch_size=64)
    assert r.effective_lr() == pytest.approx(0.025)
    assert _curve(r, 3, 3) == [pytest.approx(0.025)] * 3


def test_cosine_with_warmup():
    r = Recipe(epochs=10, lr=0.4, schedule="cosine", warmup=0.1, min_lr=0.01)
    total = 100
    curve = _curve(r, total, 10)
    for t in range(10):
        assert curve[t] == pytest.approx(0.4 * (t + 1) / 10)
    for t in range(10, total):
        cos = math.cos(math.pi * (t - 10) / 90)
        assert curve[t] == pytest.approx(0.01 + 0.39 * (1 + cos) / 2)


def test_onecycle_is_a_linear_warmup_and_a_linear_decay():
    r = Recipe(epochs=4, lr=0.2, schedule="onecycle", warmup=0.25, min_lr=0.0)
    curve = _curve(r, 40, 10)
    assert curve[:10] == [pytest.approx(0.2 * (t + 1) / 10) for t in range(10)]
    assert curve[10:] == [pytest.approx(0.2 - 0.2 * (t - 10) / 30) for t in range(10, 40)]
    assert max(curve) == pytest.approx(0.2)


def test_plateau_divides_by_ten_after_patience_and_stops_at_the_floor():
    r = Recipe(lr=0.1, schedule="plateau", patience=2, gamma=0.1, min_lr=0.001)
    s = Schedule(r, 100, 10)
    accs = [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    lrs, lowered = [], []
    for acc in accs:
        lowered.append(s.epoch_end(acc))
        lrs.append(s.lr(0))
    # no better accuracy at epochs 3 and 4 -> /10 after epoch 4; again after 7, 9; floor
    assert lowered == [False, False, False, True, False, False, True, False, True,
                       False, False, False, False]  # fmt: skip
    assert lrs[3] == pytest.approx(0.01) and lrs[6] == pytest.approx(0.001)
    assert lrs[-1] == pytest.approx(0.001)  # the floor holds
    restored = Schedule(r, 100, 10)
    restored.load_state_dict(s.state_dict())
    assert restored.lr(0) == s.lr(0)


# ---- loss and weight decay by hand -------------------------------------------------------------


def test_label_smoothing_against_the_hand_formula():
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 0.2
    loss, _ = loss_fn(logits, y, label_smoothing=eps)
    logp = torch.log_softmax(logits, dim=1)
    hand = sum(-(1 - eps) * logp[i, y[i]] - eps / 5 * logp[i].sum() for i in range(6)) / 6
    assert loss.item() == pytest.approx(hand.item(), rel=1e-6)


def test_auxiliary_heads_count_with_their_weight():
    torch.manual_seed(0)
    main, a1, a2 = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 1])
    loss, logits = loss_fn((main, a1, a2), y, aux_weight=0.3)
    hand = F.cross_entropy(main, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
    assert loss.item() == pytest.approx(hand.item()) and logits is main


def _bn_net():
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, bias=True), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)
    )


def test_weight_decay_exclusion_against_a_hand_step():
    torch.manual_seed(0)
    net = _bn_net()
    groups = param_groups(net, 0.1, decay_norm_and_bias=False)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in net.named_parameters() if id(p) in decayed}
    assert names == {"0.weight", "3.weight"}
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 4

    recipe = Recipe(lr=0.5, momentum=0.9, weight_decay=0.1, decay_norm_and_bias=False)
    opt = make_optimizer(net, recipe)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    net(torch.randn(4, 1, 6, 6)).square().sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    opt.step()
    for n, p in net.named_parameters():
        wd = 0.1 if n in names else 0.0
        # first SGD step: buffer = grad + wd * w; w -= lr * buffer
        expected = before[n] - 0.5 * (grads[n] + wd * before[n])
        torch.testing.assert_close(p.detach(), expected, msg=n)


def test_all_parameters_decay_by_default():
    groups = param_groups(_bn_net(), 0.1)
    assert len(groups) == 1 and len(groups[0]["params"]) == 6


# ---- initialisation ------------------------------------------------------------------------------


def test_lenet_initialisation_is_uniform_in_2_4_over_fan_in():
    torch.manual_seed(0)
    model = apply_init(create_model("lenet5", input_size=28), "lenet")
    c1 = model.c1.weight
    assert c1.abs().max() <= 2.4 / 25 and c1.abs().max() > 0.9 * 2.4 / 25
    assert model.c1.bias.abs().max() == 0
    c3: ConnectionTableConv2d = model.c3
    start = 0
    for row in c3.table:
        bound = 2.4 / (len(row) * 25)
        block = c3.weight[start : start + len(row)]
        assert block.abs().max() <= bound
        start += len(row)
    assert model.f6.weight.abs().max() <= 2.4 / 120
    assert model.s2.weight.eq(0.25).all()  # subsampling keeps its average-pooling start


def test_he_initialisation_std():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    apply_init(nn.Sequential(conv), "he")
    expected = math.sqrt(2 / (3 * 3 * 128))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    with pytest.raises(CnnlabError, match="init 'xavier'"):
        apply_init(conv, "xavier")
