"""cnnlab's SGD is torch.optim.SGD's arithmetic on the CPU, bit for bit, with torch's
state_dict (either optimizer's state loads into the other), and a training run on the CPU
imports no torch._dynamo (what any torch.optim optimizer imports on its first use)."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cnnlab.train.optim import SGD, make_optimizer, param_groups
from cnnlab.train.recipe import Recipe

# (nesterov, momentum, weight decay, norm and bias undecayed in their own group)
SETTINGS = [(True, 0.9, 5e-4, True), (False, 0.9, 5e-4, False), (False, 0.0, 0.0, False),
            (False, 0.0, 1e-2, True), (True, 0.85, 0.0, False)]  # fmt: skip


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )  # fmt: skip


def _train(model: nn.Module, opt, steps: int, seed: int = 1) -> None:
    """``steps`` updates on random batches, the rate changed every step as the loop does."""
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=gen)
        y = torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        for group in opt.param_groups:
            group["lr"] = 0.1 * (1 - t / (steps + 1))
        opt.step()


def _both(nesterov: bool, momentum: float, wd: float, split: bool):
    made = []
    for cls in (SGD, torch.optim.SGD):
        model = _net()
        groups = param_groups(model, wd, decay_norm_and_bias=not split)
        made.append((model, cls(groups, lr=0.1, momentum=momentum, nesterov=nesterov)))
    return made


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _same_state(a: dict, b: dict) -> bool:
    if a["param_groups"] != b["param_groups"] or a["state"].keys() != b["state"].keys():
        return False
    return all(
        a["state"][i].keys() == b["state"][i].keys()
        and all(torch.equal(a["state"][i][k], b["state"][i][k]) for k in a["state"][i])
        for i in a["state"]
    )


@pytest.mark.parametrize(("nesterov", "momentum", "wd", "split"), SETTINGS)
def test_sgd_gives_torchs_weights_and_state_bit_for_bit(nesterov, momentum, wd, split):
    (ours, ours_opt), (theirs, theirs_opt) = _both(nesterov, momentum, wd, split)
    _train(ours, ours_opt, 6)
    _train(theirs, theirs_opt, 6)
    assert _same_weights(ours, theirs)
    a, b = ours_opt.state_dict(), theirs_opt.state_dict()
    assert _same_state(a, b)
    assert [list(g) for g in a["param_groups"]] == [list(g) for g in b["param_groups"]]
    assert len(a["state"]) == (sum(p.numel() > 0 for p in ours.parameters()) if momentum else 0)


@pytest.mark.parametrize("into_ours", [True, False])
def test_either_optimizers_state_resumes_in_the_other(into_ours):
    (ours, ours_opt), (theirs, theirs_opt) = _both(True, 0.9, 5e-4, True)
    _train(ours, ours_opt, 3)
    _train(theirs, theirs_opt, 3)
    source, target = (theirs_opt, ours_opt) if into_ours else (ours_opt, theirs_opt)
    for group in target.param_groups:
        group["lr"] = 123.0  # the loaded state's settings replace these
    target.load_state_dict(copy.deepcopy(source.state_dict()))  # as from a checkpoint file
    assert target.param_groups[0]["lr"] != 123.0
    _train(ours, ours_opt, 3, seed=2)
    _train(theirs, theirs_opt, 3, seed=2)
    assert _same_weights(ours, theirs)
    assert _same_state(ours_opt.state_dict(), theirs_opt.state_dict())


def test_a_state_of_other_groups_is_refused():
    model = _net()
    one = SGD(model.parameters(), lr=0.1, momentum=0.9)
    two = SGD(param_groups(model, 0.1, decay_norm_and_bias=False), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="number of parameter groups"):
        one.load_state_dict(two.state_dict())
    part = SGD([{"params": list(model.parameters())[:2]}], lr=0.1)
    with pytest.raises(ValueError, match="another size"):
        one.load_state_dict(part.state_dict())


def test_zero_grad_sets_none_or_zeros():
    model = _net()
    opt = SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_the_recipes_sgd_on_the_cpu_is_ours_and_adam_is_torchs():
    model = _net()
    assert isinstance(make_optimizer(model, Recipe(momentum=0.9, nesterov=True)), SGD)
    assert isinstance(make_optimizer(model, Recipe(optimizer="adam")), torch.optim.Adam)


def test_a_training_run_on_the_cpu_imports_no_dynamo(tmp_path):
    # The precision probe (--precision auto), the run, its checkpoint and its report.
    code = textwrap.dedent(
        f"""
        import sys
        from cnnlab.cli import main
        args = ["train", "conv3-4-relu-maxpool-fc-10", "--data", "fashion-mnist",
                "--recipe", "fast", "--threads", "1", "--set", "iterations=3",
                "--set", "epochs=none", "--quiet", "--out", {str(tmp_path / "run")!r}]
        assert main(args) == 0
        print(sorted(m for m in ("torch._dynamo", "torch.optim") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    # torch imports torch.optim itself; what must be missing is what its first use imports
    assert out.stdout.strip().splitlines()[-1] == "['torch.optim']", out.stdout + out.stderr
