"""Using finished runs: the data split a run is measured on, and the table of a folder of runs.

* :func:`run_split` gives the images a run is evaluated on: its test split, or exactly the
  validation images it held out (the same ``val_split`` fraction and ``seed`` from its
  ``config.toml``, so :meth:`~cnnlab.data.Dataset.split_validation` draws the same images),
  or the training images it learned from (the rest);
* :func:`evaluate_run` measures a run's weights on such a split
  (:func:`~cnnlab.train.evaluate.evaluate`: loss, top-1/top-5, per-class, confusion);
* :func:`list_runs` reads every run folder in a folder into one :class:`RunRow` each, for
  ``cnnlab runs``; folders that are not runs are counted, not fatal.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.train.recipe import EVAL_BATCH_SIZE

__all__ = [
    "RunRow",
    "RunTable",
    "SPLITS",
    "check_compatible",
    "evaluate_run",
    "list_runs",
    "measured_as",
    "measures_flipped",
    "run_split",
]

SPLITS = ("test", "val", "train")


def _options(run: Any) -> dict[str, Any]:
    options = run.config.get("options")
    return options if isinstance(options, dict) else {}


def run_split(
    run: Any,
    split: str = "test",
    *,
    data: str | None = None,
    data_dir: str | Path | None = None,
) -> Any:
    """The :class:`~cnnlab.data.Dataset` split ``split`` of ``run`` (a :class:`Run`).

    ``data`` is the dataset (default: the run's own); ``"val"`` is the run's held-out
    validation images and ``"train"`` the images it trained on, both drawn as training drew
    them (fraction ``options.val_split`` and ``options.seed`` of its config).  The dataset's
    images must have the run's input shape and its class list must be the run's.
    """
    from cnnlab.data import load_dataset

    if split not in SPLITS:
        raise CnnlabError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    name = data or run.dataset
    if split == "test":
        ds = load_dataset(name, "test", data_dir=data_dir)
    else:
        fraction, seed = _options(run).get("val_split", 0.0), _options(run).get("seed", 0)
        if not fraction:
            if split == "val":
                raise CnnlabError(
                    f"{run.path}: the run held out no validation images (val_split = 0 in "
                    f"its config.toml); use --split test or --split train"
                )
            ds = load_dataset(name, "train", data_dir=data_dir)
        else:
            full = load_dataset(name, "train", data_dir=data_dir)
            train, val = full.split_validation(float(fraction), seed=int(seed))
            ds = val if split == "val" else train
    _check_data(run, ds)
    return ds


def _check_data(run: Any, ds: Any) -> None:
    if tuple(ds.image_shape) != tuple(run.input_shape):
        c, h, w = ds.image_shape
        rc, rh, rw = run.input_shape
        raise CnnlabError(
            f"{ds.name} has {c}x{h}x{w} images (CxHxW); the model of {run.path} takes "
            f"{rc}x{rh}x{rw}"
        )
    if tuple(ds.classes) != tuple(run.classes):
        raise CnnlabError(
            f"{ds.name}'s classes ({_names(ds.classes)}) are not those of {run.path} "
            f"({_names(run.classes)})"
        )


def _names(classes: Any, n: int = 4) -> str:
    classes = list(classes)
    shown = ", ".join(classes[:n])
    return f"{len(classes)}: {shown}" + (", ..." if len(classes) > n else "")


def evaluate_run(
    run: Any,
    split: str = "test",
    *,
    weights: str = "best",
    data: str | None = None,
    data_dir: str | Path | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
) -> Any:
    """:func:`~cnnlab.train.evaluate.evaluate` of ``run``'s ``weights`` on
    :func:`run_split` ``(run, split, data=..., data_dir=...)``, normalised with the run's
    own mean and std, and with flip test-time augmentation when the run's recipe measured
    with it (``test_flip``, where the data's mirror keeps the class), so that it gives the
    run's own numbers again.  Returns the :class:`~cnnlab.train.evaluate.Evaluation`."""
    from cnnlab.train.evaluate import evaluate

    ds = run_split(run, split, data=data, data_dir=data_dir)
    model = run.build_model(weights)
    how = measured_as(run, ds.info)
    return evaluate(model, ds, batch_size=batch_size, mean=run.mean, std=run.std, **how)


def measured_as(run: Any, info: Any = ()) -> dict[str, Any]:
    """How ``run`` measured its images, as keyword arguments of
    :func:`~cnnlab.train.evaluate.evaluate` and
    :func:`~cnnlab.train.evaluate.probabilities`: ``flip`` (:func:`measures_flipped`),
    ``precision`` and ``channels_last`` (as its config.toml recorded them; fp32 in NCHW
    for a run that recorded none).  Evaluation, ensembles and predictions of the run use
    them, so that they give its own numbers: bf16 autocast rounds apart from fp32, enough
    to move a validation accuracy by a few images."""
    options = _options(run)
    precision = options.get("precision")
    return {
        "flip": measures_flipped(run, info),
        "precision": precision if precision in ("fp32", "bf16") else "fp32",
        "channels_last": bool(options.get("channels_last", False)),
    }


def measures_flipped(run: Any, info: Any = ()) -> bool:
    """Whether ``run`` measured with flip test-time augmentation: its recipe's ``test_flip``,
    where the data's mirror keeps the class (``info``: the data's
    :class:`~cnnlab.data.catalog.DatasetInfo`, None for an image folder; by default the
    catalogue's entry of the run's dataset); part of :func:`measured_as`."""
    if not (run.config.get("recipe") or {}).get("test_flip"):
        return False
    if info == ():
        from cnnlab.data.catalog import dataset_info

        try:
            info = dataset_info(run.dataset)
        except CnnlabError:
            info = None  # an image folder: flipped, as its training flipped it
    return info is None or bool(info.hflip)


def check_compatible(runs: list[Any]) -> None:
    """Raise :class:`CnnlabError` naming both runs when two of ``runs`` differ in their class
    list or input shape (they cannot be compared image by image or averaged)."""
    first = runs[0]
    for other in runs[1:]:
        if tuple(other.input_shape) != tuple(first.input_shape):
            a = "x".join(map(str, first.input_shape))
            b = "x".join(map(str, other.input_shape))
            raise CnnlabError(
                f"{first.path} takes {a} inputs (CxHxW) but {other.path} takes {b}; "
                "only runs on the same input shape can be combined"
            )
        if tuple(other.classes) != tuple(first.classes):
            raise CnnlabError(
                f"{first.path} has classes ({_names(first.classes)}) but {other.path} has "
                f"({_names(other.classes)}); only runs with the same class list can be combined"
            )


# ---- the table of runs ---------------------------------------------------------------------
@dataclass(frozen=True)
class RunRow:
    """One run folder, summarised: accuracies in [0, 1] (None when not measured), ``seconds``
    the training time summed over its epochs, ``stopped`` why it ended early ("interrupted",
    "diverged"; None when it completed or when the log does not say)."""

    path: Path
    model: str
    dataset: str
    recipe: str
    epochs: int
    best_val_top1: float | None
    test_top1: float | None
    seconds: float | None
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "model": self.model,
            "dataset": self.dataset,
            "recipe": self.recipe,
            "epochs": self.epochs,
            "best_val_top1": self.best_val_top1,
            "test_top1": self.test_top1,
            "seconds": self.seconds,
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class RunTable:
    """The runs of ``folder`` (sorted by name) and the sub-folders that are not runs."""

    folder: Path
    rows: list[RunRow]
    skipped: list[tuple[Path, str]]  # (folder, why it is not a run)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _stopped(value: Any) -> str | None:
    """Why a run ended before its schedule did ("interrupted", "diverged"), or None."""
    return value if isinstance(value, str) and value != "completed" else None


def _row(run: Any) -> RunRow:
    epochs = run.epochs
    vals = [v for v in (_number(m.get("val_top1")) for m in epochs) if v is not None]
    secs = [s for s in (_number(m.get("seconds")) for m in epochs) if s is not None]
    final = run.final or {}
    recipe = run.config.get("recipe")
    return RunRow(
        path=run.path,
        model=str(run.record.get("target", "?")),
        dataset=run.dataset,
        recipe=str(recipe.get("name", "?")) if isinstance(recipe, dict) else "?",
        epochs=len(epochs),
        best_val_top1=max(vals) if vals else None,
        test_top1=_number(final.get("test_top1")),
        seconds=sum(secs) if secs else None,
        stopped=_stopped(final.get("stopped")),
    )


def list_runs(folder: str | Path = "runs") -> RunTable:
    """Every run folder directly inside ``folder`` (``folder`` itself, if it is a run).

    A sub-folder that is not a run (or an incomplete or damaged one) is listed in
    ``skipped`` with the reason; hidden entries and plain files are ignored.
    """
    from cnnlab.train.run import open_run

    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise CnnlabError(f"{folder}: {what}; expected a folder of runs (cnnlab train --out)")
    try:
        return RunTable(folder, [_row(open_run(folder))], [])
    except CnnlabError:
        pass
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise CnnlabError(f"{folder}: cannot be listed ({exc.strerror or exc})") from None
    rows, skipped = [], []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            rows.append(_row(open_run(entry.path)))
        except (CnnlabError, OSError) as exc:
            skipped.append((Path(entry.path), str(exc)))
    return RunTable(folder, rows, skipped)
