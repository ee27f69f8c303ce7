"""The splits a run trains, validates and tests on: :class:`TrainData` and
:func:`load_data` (the training split with a stratified, seeded validation hold-out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["TrainData", "load_data"]


@dataclass(frozen=True)
class TrainData:
    """The splits of a run: ``train`` (what the loop draws from), ``val`` (held out from the
    training split, or None), ``test`` (or None)."""

    train: Any  # cnnlab.data.Dataset
    val: Any | None
    test: Any | None

    @property
    def name(self) -> str:
        return self.train.name


def load_data(name: str, val_split: float = 0.1, seed: int = 0, **load_kwargs: Any) -> TrainData:
    """Load ``name``'s training and test splits and hold out ``val_split`` of the training
    split for validation (stratified, seeded by ``seed``; 0 holds out nothing)."""
    from cnnlab.data import load_dataset

    full = load_dataset(name, "train", **load_kwargs)
    try:
        test = load_dataset(name, "test", **load_kwargs)
    except CnnlabError:
        if not name.startswith("folder:"):
            raise
        test = None  # an image folder without a test/ subfolder: validation only
    if val_split:
        train, val = full.split_validation(val_split, seed=seed)
    else:
        train, val = full, None
    return TrainData(train, val, test)
