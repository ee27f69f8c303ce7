"""The loss a recipe trains with: cross-entropy with label smoothing, plus the auxiliary
heads' losses of a network that has them (GoogLeNet)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["loss_fn"]


def loss_fn(out: Any, y: torch.Tensor, label_smoothing: float = 0.0, aux_weight: float = 0.3):
    """Cross-entropy of the logits (mean over the batch), with label smoothing; a model that
    returns ``(logits, aux1, aux2, ...)`` in training (GoogLeNet, Szegedy et al. 2015,
    section 5) adds each auxiliary head's loss times ``aux_weight``.  Returns (loss, logits)."""
    if isinstance(out, tuple | list):
        logits, aux = out[0], out[1:]
    else:
        logits, aux = out, ()
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a, y, label_smoothing=label_smoothing)
    return loss, logits
