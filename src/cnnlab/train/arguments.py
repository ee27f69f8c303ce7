"""The mistakes :func:`cnnlab.train.loop.fit` refuses before it starts: each a
:class:`~cnnlab.errors.CnnlabError` naming the argument, what was wrong and what is valid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.errors import CnnlabError

if TYPE_CHECKING:  # no torch to import: the config's checks use this module too
    from cnnlab.train.device import Placement
    from cnnlab.train.recipe import Recipe
    from cnnlab.train.splits import TrainData

__all__ = ["check_fit_arguments", "check_val_every"]


def check_val_every(val_every: int, early_stop: int | None, schedule: str) -> None:
    """``val_every`` is an int >= 0, and 1 where something watches every epoch's
    validation top-1 (early stopping, the plateau schedule)."""
    if not isinstance(val_every, int) or isinstance(val_every, bool) or val_every < 0:
        raise CnnlabError(f"val_every={val_every!r}: expected an int >= 0 (0: the last only)")
    if val_every == 1:
        return
    watcher = ("early_stop", early_stop) if early_stop is not None else None
    if schedule == "plateau":
        watcher = ("schedule", "plateau")
    if watcher:
        raise CnnlabError(
            f"val_every={val_every}: {watcher[0]}={watcher[1]} watches the validation top-1 "
            "after every epoch; valid: val_every=1"
        )


def check_fit_arguments(
    data: TrainData,
    recipe: Recipe,
    where: Placement,
    on_nan: str,
    early_stop: int | None,
    val_every: int,
) -> None:
    """The mistakes :func:`fit` refuses before it starts (CnnlabError naming the argument)."""
    if on_nan not in ("stop", "skip"):
        raise CnnlabError(f"on_nan={on_nan!r}: expected 'stop' or 'skip'")
    check_val_every(val_every, early_stop, recipe.schedule)
    if early_stop is not None and data.val is None:
        raise CnnlabError(
            f"early_stop={early_stop}: early stopping watches the validation top-1, and this "
            "run holds out no validation split; valid: val_split > 0"
        )
    if recipe.batch_size % where.world_size:
        raise CnnlabError(
            f"batch_size={recipe.batch_size}: the global batch must split evenly across "
            f"{where.world_size} ranks"
        )
    if recipe.batch_size > len(data.train):
        raise CnnlabError(
            f"batch_size={recipe.batch_size}: larger than the {len(data.train)} training "
            f"images; valid: 1..{len(data.train)}"
        )
