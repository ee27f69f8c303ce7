"""Optimizers and learning-rate schedules of the recipes.

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
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["Schedule", "make_optimizer", "param_groups"]


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


def make_optimizer(model: nn.Module, recipe: Any) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``model``'s trainable parameters, at the peak rate."""
    groups = param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias)
    lr = recipe.effective_lr()
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    betas = tuple(recipe.betas)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise CnnlabError(f"optimizer {recipe.optimizer!r}: expected sgd, adam or adamw")


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
