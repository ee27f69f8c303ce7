"""The recipe's dropout, applied to a built model.

The papers' initialisations (:func:`apply_init`, :data:`INITS`) live with the layers, in
:mod:`cnnlab.layers.init`, where the zoo and the notation use them too; they are re-exported
here for the training code.
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers.init import INITS, apply_init

__all__ = ["INITS", "apply_init", "set_dropout"]


def set_dropout(model: nn.Module, p: float | None, name: str = "the model") -> int:
    """Set the probability of every dropout layer of ``model`` to ``p`` (None: leave them);
    returns how many there are.  Raises :class:`CnnlabError` when ``p`` is given and the
    model has no dropout layer (the recipe does not fit the model)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if p is None:
        return len(layers)
    if not layers:
        raise CnnlabError(
            f"dropout={p}: {name} has no dropout layer; valid: dropout=none (or a model with "
            "dropout)"
        )
    for m in layers:
        m.p = float(p)
    return len(layers)
