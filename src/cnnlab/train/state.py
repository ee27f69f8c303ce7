"""What changes while training (:class:`TrainState`, what a checkpoint saves) and what
:func:`~cnnlab.train.loop.fit` returns (:class:`FitResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.train.evaluate import Evaluation
from cnnlab.train.optim import Schedule

__all__ = ["FitResult", "TrainState"]


@dataclass
class TrainState:
    """All that changes while training, in one place (what a checkpoint saves).

    ``step``: optimizer steps done; ``epoch``: the current epoch (0-based); ``batch``: steps
    done within it (the pipeline resumes with ``epoch(epoch, start=batch)``); ``best_top1``
    and ``best_epoch``: the best validation top-1 so far; ``history``: the metrics rows.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_top1: float = -1.0
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "history": list(self.history),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }


@dataclass
class FitResult:
    """What :func:`fit` returns: the epoch rows, the final row (test metrics; ``stopped``
    is ``"completed"``, ``"interrupted"`` or ``"diverged"``), the test evaluation of the
    final weights, and the state it ended in."""

    history: list[dict[str, Any]]
    final: dict[str, Any]
    test: Evaluation | None
    state: TrainState

    @property
    def stopped(self) -> str:
        return self.final["stopped"]
