"""The training loop: the lecture's mini-batch SGD, with validation, test and a run folder.

:func:`fit` repeats the lecture's four steps: (1) sample a mini-batch, (2) forward it and
compute the loss, (3) backward to get the gradients, (4) update the weights, then evaluates
on the validation split after each epoch and on the test split at the end.  It returns plain
data (:class:`FitResult`); progress goes to an optional ``on_event`` function as plain dicts,
which the CLI renders.

Everything a resumed or distributed run needs is in one :class:`TrainState` (model,
optimizer, schedule, step, epoch, the position in the epoch's data, the generators' state),
and the data position is the pipeline's ``epoch(e, start=k)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.device import Placement, placement
from cnnlab.train.evaluate import Evaluation, autocast, evaluate
from cnnlab.train.optim import Schedule, make_optimizer
from cnnlab.train.recipe import Recipe

__all__ = ["FitResult", "TrainData", "TrainState", "fit", "load_data", "loss_fn"]

Event = dict[str, Any]


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


def fit(
    model: nn.Module,
    data: TrainData,
    recipe: Recipe,
    *,
    where: Placement | None = None,
    seed: int = 0,
    eval_test_every_epoch: bool = False,
    eval_batch_size: int = 1000,
    run: Any | None = None,
    on_event: Callable[[Event], None] | None = None,
    report_every: float = 0.5,
) -> FitResult:
    """Train ``model`` on ``data.train`` with ``recipe``; see the module doc.

    ``where``: device, precision and memory format (default: :func:`placement`'s automatic
    choice); the model is moved there.  ``seed`` seeds the batch order, the augmentation and
    dropout (initialise the model before calling).  ``run``: a
    :class:`~cnnlab.train.run.RunWriter` that receives every metrics row and the best and
    final weights, or None.  ``on_event``: called with plain dicts: ``{"event": "start"}``,
    ``"progress"`` (about every ``report_every`` seconds), ``"epoch"`` (the row), ``"end"``
    (the final row).  Ctrl-C (KeyboardInterrupt) stops after saving the final weights; the
    result then says ``stopped="interrupted"`` and where.
    """
    from cnnlab.data import Augment, BatchPipeline

    where = where or placement()
    emit = on_event or (lambda event: None)
    train = data.train
    if recipe.batch_size % where.world_size:
        raise CnnlabError(
            f"batch_size={recipe.batch_size}: the global batch must split evenly across "
            f"{where.world_size} ranks"
        )
    if recipe.batch_size > len(train):
        raise CnnlabError(
            f"batch_size={recipe.batch_size}: larger than the {len(train)} training images; "
            f"valid: 1..{len(train)}"
        )
    augment = Augment()
    if recipe.augment == "standard":
        augment = Augment.standard(train, erase_p=recipe.erase)
        if recipe.crop_padding is not None:
            augment = Augment(recipe.crop_padding, augment.flip, recipe.erase)
    elif recipe.erase:
        augment = Augment(erase_p=recipe.erase)
    batches = BatchPipeline(
        train,
        recipe.batch_size // where.world_size,
        device=where.device,
        augment=augment,
        seed=seed,
        rank=where.rank,
        world_size=where.world_size,
        drop_last=True,  # equal steps; no BatchNorm batch of one at the end
    )
    steps_per_epoch = len(batches)
    total = recipe.iterations or recipe.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)

    model.to(where.device)
    if where.channels_last:
        model.to(memory_format=torch.channels_last)
    state = TrainState(
        model=model,
        optimizer=make_optimizer(model, recipe),
        schedule=Schedule(recipe, total, steps_per_epoch),
        step=0,
    )
    torch.manual_seed(seed)  # dropout masks; the data order has its own (seed, epoch) stream

    def measure(split: Any) -> Evaluation:
        return evaluate(
            model,
            split,
            batch_size=eval_batch_size,
            device=where.device,
            precision=where.precision,
            channels_last=where.channels_last,
        )

    emit(
        {
            "event": "start",
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total,
            "train_images": len(train),
        }
    )
    stopped = "completed"
    try:
        while state.step < total:
            epoch = state.epoch
            model.train()
            started = time.perf_counter()
            last_report = started
            loss_sum = torch.zeros((), dtype=torch.float64, device=where.device)
            correct = torch.zeros((), dtype=torch.int64, device=where.device)
            seen = 0
            for x, y in batches.epoch(epoch, start=state.batch):  # 1. sample a mini-batch
                lr = state.schedule.lr(state.step)
                for group in state.optimizer.param_groups:
                    group["lr"] = lr
                if where.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(where.device, where.precision):
                    out = model(x)  # 2. forward ...
                    loss, logits = loss_fn(out, y, recipe.label_smoothing, recipe.aux_weight)
                state.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # 3. backward: the gradients
                if recipe.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                state.optimizer.step()  # 4. update the weights
                state.step += 1
                state.batch += 1
                n = y.shape[0]
                seen += n
                loss_sum += loss.detach().double() * n
                correct += (logits.detach().argmax(1) == y).sum()
                now = time.perf_counter()
                if on_event is not None and now - last_report >= report_every:
                    last_report = now
                    emit(
                        {
                            "event": "progress",
                            "epoch": epoch + 1,
                            "epochs": epochs,
                            "batch": state.batch,
                            "steps": steps_per_epoch,
                            "step": state.step,
                            "total_steps": total,
                            "loss": float(loss_sum) / seen,
                            "top1": int(correct) / seen,
                            "lr": lr,
                            "images_per_s": seen / (now - started),
                        }
                    )
                if state.step >= total:
                    break
            train_seconds = time.perf_counter() - started
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": state.step,
                "train_loss": float(loss_sum) / max(seen, 1),
                "train_top1": int(correct) / max(seen, 1),
                "lr": state.schedule.lr(state.step - 1),
            }
            state.epoch, state.batch = epoch + 1, 0
            if not math.isfinite(row["train_loss"]):
                stopped = "diverged"
            if data.val is not None:
                val = measure(data.val)
                row.update(val_loss=val.loss, val_top1=val.top1, val_top5=val.top5)
                if state.schedule.epoch_end(val.top1):
                    row["lr_lowered"] = True
            if eval_test_every_epoch and data.test is not None:
                test = measure(data.test)
                # Marked: a number chosen by looking at the test split every epoch is no
                # longer an unbiased estimate of the error.
                row.update(
                    test_loss=test.loss, test_top1=test.top1, test_top5=test.top5, test_peek=True
                )
            row["seconds"] = time.perf_counter() - started
            row["images_per_s"] = seen / train_seconds if train_seconds > 0 else None
            state.history.append(row)
            score = row.get("val_top1")
            if score is not None and score > state.best_top1:
                state.best_top1, state.best_epoch = score, epoch + 1
                if run is not None:
                    run.save_weights(model, "best")
            if run is not None:
                run.log(row)
            emit({"event": "epoch", **row, "epochs": epochs})
            if stopped == "diverged":
                break
    except KeyboardInterrupt:
        stopped = "interrupted"

    final: dict[str, Any] = {
        "final": True,
        "stopped": stopped,
        "epoch": state.epoch + (1 if state.batch else 0),
        "step": state.step,
        "total_steps": total,
        "best_epoch": state.best_epoch,
        "best_val_top1": state.best_top1 if state.best_epoch is not None else None,
    }
    if run is not None:
        run.save_weights(model, "final")
        if state.best_epoch is None:  # no validation split: the final weights are the best
            run.save_weights(model, "best")
    test = None
    if stopped == "completed" and data.test is not None:
        test = measure(data.test)
        final.update(test_loss=test.loss, test_top1=test.top1, test_top5=test.top5)
        if run is not None:
            run.write_json("final.json", {"weights": "final", "split": "test", **test.to_dict()})
    if run is not None:
        run.log(final)
    emit({"event": "end", **final})
    model.eval()
    return FitResult(history=list(state.history), final=final, test=test, state=state)
