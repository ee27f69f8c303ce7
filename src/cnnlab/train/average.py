"""An exponential moving average of a model's weights (Polyak & Juditsky 1992; the "EMA"
of the fast CIFAR-10 training records, e.g. Jordan 2024, airbench).

``WeightAverage(model, decay)`` keeps a copy of every floating-point tensor of
``model.state_dict()`` (parameters and BatchNorm's running statistics); after each optimizer
step, ``update(model)`` moves the copy toward the model:

    average <- d * average + (1 - d) * weights,   d = min(decay, (1 + n) / (10 + n))

where ``n`` counts the updates so far: the warm-up of TensorFlow's
``ExponentialMovingAverage(num_updates=...)``, so that the first steps' random weights do not
linger in the average of a short run.  Integer buffers (BatchNorm's batch counters) are
copied.  The average is what a run evaluates and saves; the optimizer keeps training the
model's own weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s weights with ``decay`` in (0, 1) (see the module
    doc); ``state_dict()`` has the model's keys, ``load_into(model)`` puts it in a model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay {decay!r}: expected a number in (0, 1)")
        self.decay = decay
        self.updates = 0
        self.tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._floats = [k for k, v in self.tensors.items() if v.is_floating_point()]
        self._others = [k for k, v in self.tensors.items() if not v.is_floating_point()]

    def rate(self) -> float:
        """The decay of the next update (the warm-up's, then ``decay``)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward ``model``'s weights now (one optimizer step's worth)."""
        now = model.state_dict()
        weight = 1.0 - self.rate()
        averages = [self.tensors[k] for k in self._floats]
        torch._foreach_lerp_(averages, [now[k].detach() for k in self._floats], weight)
        for k in self._others:
            self.tensors[k].copy_(now[k])
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, under the model's ``state_dict`` keys."""
        return dict(self.tensors)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        """Continue from a saved average (``updates``: how many it had had)."""
        for k, v in tensors.items():
            self.tensors[k].copy_(v)
        self.updates = int(updates)

    def load_into(self, model: nn.Module) -> None:
        """Put the averaged weights into ``model`` (the same architecture)."""
        model.load_state_dict(self.tensors)

    def evaluated(self, model: nn.Module) -> Any:
        """A context: ``model`` holds the averaged weights inside it, its own weights again
        after (for an evaluation in the middle of training)."""
        return _Swapped(self, model)


class _Swapped:
    def __init__(self, average: WeightAverage, model: nn.Module) -> None:
        self.average, self.model = average, model

    def __enter__(self) -> nn.Module:
        self.saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.average.load_into(self.model)
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.load_state_dict(self.saved)
