"""What stops a run: SIGINT and SIGTERM, read at step boundaries (:class:`Stopper`), and
non-finite numbers (:func:`grad_norm`, :func:`finite_model`)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import torch
from torch import nn

__all__ = ["STOP_REASONS", "NonFiniteWeights", "Stopper", "finite_model", "grad_norm"]


class NonFiniteWeights(Exception):
    """Raised inside :func:`~cnnlab.train.loop.fit` when a checkpoint would hold non-finite
    weights."""


class Stopper:
    """SIGINT (Ctrl-C) and SIGTERM set a flag that the loop reads after each step, so a run
    stops at a step boundary with a consistent checkpoint; a second Ctrl-C stops at once."""

    def __init__(self, enabled: bool) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def close(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def finite_model(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
               if t.is_floating_point())  # fmt: skip


def grad_norm(model: nn.Module, clip: float | None) -> torch.Tensor:
    """The gradients' global L2 norm (after clipping it to ``clip`` when given)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if clip is not None:
        return nn.utils.clip_grad_norm_(model.parameters(), clip)
    if not grads:
        return torch.zeros(())
    return nn.utils.get_total_norm(grads)


STOP_REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
