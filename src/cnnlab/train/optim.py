"""Optimizers and learning-rate schedules of the recipes.

SGD on the CPU is :class:`SGD`: torch.optim.SGD's arithmetic without torch.optim, whose
first use imports ``torch._dynamo`` (see :class:`SGD`); Adam and AdamW are torch's.

A :class:`Schedule` gives the learning rate of every optimizer step ``t`` (0-based) of a run
of ``total`` steps, ``steps_per_epoch`` to an epoch, with peak rate ``lr``:

* ``constant``: ``lr``;
* ``step``: ``lr * gamma**k``, k the milestones reached (``milestone_unit="epoch"``: epoch
  ``t // steps_per_epoch`` >= m; ``"iteration"``: ``t`` >= m);
* ``plateau``: ``max(lr * gamma**k, min_lr)``, k the reductions so far: after each epoch,
  when the validation top-1 has not improved for ``patience`` epochs, k grows by one (and
  the count starts again), as AlexNet, VGG and ResNet were trained;
* ``cosine``: after ``w = round(warmup * total)`` warm-up steps with ``lr * (t + 1) / w``,
  ``min_lr + (lr - min_lr) * (1 + cos(pi * (t - w) / (total - w))) / 2``;
* ``onecycle``: the same linear warm-up, then a linear decay
  ``lr - (lr - min_lr) * (t - w) / (total - w)`` (Smith & Topin 2019's one-cycle policy with
  linear annealing; momentum is not cycled).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["SGD", "Schedule", "make_optimizer", "param_groups"]


def _norm_types() -> tuple[type, ...]:
    return (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def param_groups(
    model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: with ``decay_norm_and_bias=False``, the parameters of
    normalisation layers and every parameter named ``bias`` go into a group without weight
    decay (decaying a BatchNorm scale only changes the effective learning rate of the layer
    it follows; Goyal et al. 2017, and the fast CIFAR-10 trainers, leave them undecayed)."""
    if decay_norm_and_bias:
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": weight_decay}]
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        is_norm = isinstance(module, _norm_types())
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if is_norm or name == "bias" else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, recipe: Any) -> Any:
    """The recipe's optimizer over ``model``'s trainable parameters, at the peak rate
    (``model`` already on its device): :class:`SGD` on the CPU, else torch's."""
    groups = param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias)
    lr = recipe.effective_lr()
    if recipe.optimizer == "sgd":
        on_cpu = all(p.device.type == "cpu" for g in groups for p in g["params"])
        sgd = SGD if on_cpu else torch.optim.SGD
        return sgd(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    betas = tuple(recipe.betas)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise CnnlabError(f"optimizer {recipe.optimizer!r}: expected sgd, adam or adamw")


class SGD:
    """Mini-batch SGD with momentum (optionally Nesterov's) and L2 weight decay, as
    ``torch.optim.SGD`` computes it for CPU tensors, without ``torch.optim``.

    Every ``torch.optim`` optimizer wraps ``add_param_group``, ``zero_grad`` and ``step`` to
    keep ``torch.compile`` out, and the wrappers import ``torch._dynamo`` on their first
    call: about 1.4 s of Python on a 2-core CPU before the first training step.  This class
    does torch's per-tensor update (the path ``torch.optim.SGD`` takes for CPU tensors; on
    CUDA it takes another, so runs there keep torch's optimizer): the same operations in the
    same order, so the weights come out bit for bit the same; its :meth:`state_dict` has
    torch's layout, so either optimizer's state loads into the other (the tests hold both).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if nesterov and momentum <= 0:
            raise CnnlabError("nesterov=true needs momentum > 0")
        # torch.optim.SGD's group keys, in its order (a checkpoint keeps them)
        self.defaults: dict[str, Any] = {
            "lr": lr,
            "momentum": momentum,
            "dampening": 0,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": False,
            "foreach": None,
            "differentiable": False,
            "fused": None,
        }
        self.state: dict[Any, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        for group in groups if groups and isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        params = group["params"]
        group = {**group, "params": [params] if isinstance(params, torch.Tensor) else list(params)}
        for key, value in self.defaults.items():  # after the group's own keys, as torch's
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (torch's ``_single_tensor_sgd``:
        ``g += wd * p``; ``b = g`` at first, then ``b = momentum * b + (1 - dampening) * g``;
        ``g = g + momentum * b`` (Nesterov) or ``g = b``; ``p -= lr * g``)."""
        for group in self.param_groups:
            wd, momentum, lr = group["weight_decay"], group["momentum"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if wd != 0:
                    grad = grad.add(p, alpha=wd)
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    else:
                        buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                    grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(grad, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {"momentum_buffer": tensor}}, "param_groups": [...]}``, the
        parameters numbered through the groups in order, as torch's."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed = {k: v for k, v in group.items() if k != "params"}
            groups.append({**packed, "params": [index[id(p)] for p in group["params"]]})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take ``state_dict`` (this class's or ``torch.optim.SGD``'s): its groups' settings
        and its buffers, cast to each parameter's dtype and device.  Raises ``ValueError``
        when its groups do not match these (in number, or in size)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("the state has another number of parameter groups")
        by_index: dict[int, Any] = {}
        for group, old in zip(self.param_groups, saved, strict=True):
            if len(group["params"]) != len(old["params"]):
                raise ValueError("a parameter group of the state has another size")
            by_index.update(zip(old["params"], group["params"], strict=True))
        self.state = {}
        for i, entry in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {
                k: v.to(dtype=p.dtype, device=p.device) if isinstance(v, torch.Tensor) else v
                for k, v in entry.items()
            }
        self.param_groups = [
            {**old, "params": group["params"]}
            for group, old in zip(self.param_groups, saved, strict=True)
        ]


class Schedule:
    """The learning rate of each step (see the module doc), with the plateau's state."""

    def __init__(self, recipe: Any, total: int, steps_per_epoch: int) -> None:
        self.kind = recipe.schedule
        self.peak = recipe.effective_lr()
        self.total = int(total)
        self.steps_per_epoch = int(steps_per_epoch)
        self.milestones = tuple(recipe.milestones)
        self.unit = recipe.milestone_unit
        self.gamma = recipe.gamma
        self.patience = recipe.patience
        self.min_lr = recipe.min_lr
        self.warmup_steps = round(recipe.warmup * self.total)
        # plateau state (part of a checkpoint)
        self.reductions = 0
        self.best = -math.inf
        self.bad_epochs = 0
        if self.kind == "step":
            end = self.total if self.unit == "iteration" else math.ceil(total / steps_per_epoch)
            late = [m for m in self.milestones if m >= end]
            if late:
                raise CnnlabError(
                    f"milestones={list(self.milestones)}: {late[0]} is past the end of "
                    f"training ({end} {self.unit}s: {self.total} steps of "
                    f"{self.steps_per_epoch} per epoch); valid: {self.unit}s 1..{end - 1}"
                )

    def lr(self, t: int) -> float:
        """Learning rate of step ``t`` (0-based)."""
        if self.kind == "constant":
            return self.peak
        if self.kind == "step":
            now = t if self.unit == "iteration" else t // self.steps_per_epoch
            return self.peak * self.gamma ** sum(now >= m for m in self.milestones)
        if self.kind == "plateau":
            return max(self.peak * self.gamma**self.reductions, self.min_lr)
        w = self.warmup_steps
        if t < w:
            return self.peak * (t + 1) / w
        frac = (t - w) / max(1, self.total - w)
        if self.kind == "cosine":
            return self.min_lr + (self.peak - self.min_lr) * (1 + math.cos(math.pi * frac)) / 2
        if self.kind == "onecycle":
            return self.peak - (self.peak - self.min_lr) * frac
        raise CnnlabError(f"schedule {self.kind!r}: unknown")  # pragma: no cover

    def epoch_end(self, val_top1: float | None) -> bool:
        """Tell the schedule an epoch's validation top-1; True when the rate was lowered."""
        if self.kind != "plateau" or val_top1 is None:
            return False
        if val_top1 > self.best:
            self.best, self.bad_epochs = val_top1, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return False
        self.bad_epochs = 0
        floor_reached = self.peak * self.gamma**self.reductions <= self.min_lr
        if not floor_reached:
            self.reductions += 1
        return not floor_reached

    def state_dict(self) -> dict[str, Any]:
        return {"reductions": self.reductions, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reductions = int(state["reductions"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
