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
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.device import Placement, placement
from cnnlab.train.evaluate import Evaluation, autocast, evaluate
from cnnlab.train.optim import Schedule, make_optimizer
from cnnlab.train.recipe import Recipe

__all__ = ["STOP_REASONS", "FitResult", "TrainData", "TrainState", "fit", "load_data", "loss_fn"]

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


class _NonFiniteWeights(Exception):
    """Raised inside :func:`fit` when a checkpoint would hold non-finite weights."""


class _Stopper:
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


def _finite_model(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
               if t.is_floating_point())  # fmt: skip


def _grad_norm(model: nn.Module, clip: float | None) -> torch.Tensor:
    """The gradients' global L2 norm (after clipping it to ``clip`` when given)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if clip is not None:
        return nn.utils.clip_grad_norm_(model.parameters(), clip)
    if not grads:
        return torch.zeros(())
    return nn.utils.get_total_norm(grads)


STOP_REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


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
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: Any | None = None,
    early_stop: int | None = None,
    on_nan: str = "stop",
    log_steps: bool = False,
    config: dict[str, Any] | None = None,
    handle_signals: bool = True,
) -> FitResult:
    """Train ``model`` on ``data.train`` with ``recipe``; see the module doc.

    ``where``: device, precision and memory format (default: :func:`placement`'s automatic
    choice); the model is moved there.  ``seed`` seeds the batch order, the augmentation and
    dropout (initialise the model before calling).  ``run``: a
    :class:`~cnnlab.train.run.RunWriter` that receives every metrics row and the best and
    final weights, or None.  ``on_event``: called with plain dicts: ``{"event": "start"}``,
    ``"progress"`` (about every ``report_every`` seconds), ``"epoch"`` (the row), ``"end"``
    (the final row).

    Checkpoints (:mod:`cnnlab.train.checkpoint`) go to ``checkpoint_dir`` (default: the
    run's ``checkpoints/``; none without a run): after every epoch, every
    ``checkpoint_every`` steps, and when the run is stopped.  ``resume``: a
    :class:`~cnnlab.train.checkpoint.Checkpoint` to continue from, exactly (the same steps,
    losses and final weights as a run that was never stopped, on the CPU).

    Stopping: Ctrl-C (SIGINT) and SIGTERM stop at the end of the step in progress, with a
    checkpoint (``stopped`` is ``"interrupted"`` or ``"terminated"``; with
    ``handle_signals=False``, or outside the main thread, only KeyboardInterrupt does).  A
    non-finite loss or gradient norm stops before the update (``"diverged"``, the final row
    says the step, epoch and lr; no checkpoint is written after it), or with
    ``on_nan="skip"`` skips that update and counts it (``skipped_steps``).  ``early_stop``:
    stop when the validation top-1 has not improved for that many epochs, and end with the
    best epoch's weights (``"early-stopped"``, ``restored_epoch``).  ``log_steps``: each
    step's loss and lr go to the run's ``steps.jsonl``.
    """
    from cnnlab.data import Augment, pipeline_for
    from cnnlab.data.dataset import derive_seed
    from cnnlab.train.checkpoint import restore, save_checkpoint
    from cnnlab.train.distributed import all_gather_states, all_reduce_max, all_reduce_sum

    where = where or placement()
    emit = on_event or (lambda event: None)
    train = data.train
    if on_nan not in ("stop", "skip"):
        raise CnnlabError(f"on_nan={on_nan!r}: expected 'stop' or 'skip'")
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
    # Mirror test-time augmentation only where a mirror keeps the class (as the crop-and-flip
    # augmentation decides it).
    test_flip = recipe.test_flip and (train.info is None or train.info.hflip)
    batches = pipeline_for(  # in memory, or streamed from disk
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
    if resume is not None and resume.step >= total:
        raise CnnlabError(
            f"{resume.path}: the run has done all its {total} steps ({epochs} epochs); to "
            "train longer, resume with more epochs (--set epochs=N or --epochs N)"
        )
    if checkpoint_dir is None and run is not None:
        checkpoint_dir = Path(run.path) / "checkpoints"

    model.to(where.device)
    if where.channels_last:
        model.to(memory_format=torch.channels_last)
    distributed = where.world_size > 1
    net: nn.Module = model  # what the forward runs: the model, or DDP around it
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [where.device.index] if where.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    state = TrainState(
        model=model,
        optimizer=make_optimizer(model, recipe),
        schedule=Schedule(recipe, total, steps_per_epoch),
        step=0,
    )
    # Dropout masks (and anything of the user's model that draws from Python's or NumPy's
    # global generators); the data order has its own (seed, epoch) stream.
    # Rank 0 draws what one process would; other ranks their own stream (their dropout
    # masks differ from rank 0's).
    torch.manual_seed(seed if where.rank == 0 else derive_seed(seed, "rank", where.rank))
    random.seed(seed)
    np.random.seed(seed)
    # The running sums of the epoch in progress (part of a mid-epoch checkpoint).
    loss_sum = torch.zeros((), dtype=torch.float64, device=where.device)
    correct = torch.zeros((), dtype=torch.int64, device=where.device)
    seen = skipped = 0
    best_state: dict[str, torch.Tensor] | None = None
    if resume is not None:
        restore(state, resume)
        # The epoch's running sums are saved summed over the ranks: rank 0 carries them on,
        # so they stay right with another number of ranks.
        if where.rank == 0:
            loss_sum.copy_(resume.tensors["epoch/loss_sum"])
            correct.copy_(resume.tensors["epoch/correct"])
            seen = int(resume.state["seen"])
        skipped = int(resume.state["skipped"])
        own = f"rng/rank{where.rank}/torch"
        if where.rank and own in resume.tensors:
            torch.set_rng_state(resume.tensors[own])
        elif where.rank:  # saved with fewer ranks: a fresh stream of this rank and step
            torch.manual_seed(derive_seed(seed, "rank", where.rank, "step", resume.step))
        if run is not None:
            run.restart(state.history, state.step)
            if early_stop is not None and state.best_epoch is not None:
                best_state = run.load_weights("best")
    config = dict(config or {"recipe": recipe.to_dict(), "seed": seed})
    saved_step: int | None = resume.step if resume is not None else None

    def checkpoint() -> Path | None:
        """Save a checkpoint of the state now (a step boundary); None without a folder."""
        nonlocal saved_step
        if saved_step == state.step or (checkpoint_dir is None and not distributed):
            return None
        if not _finite_model(model):  # the same weights, so the same answer, on every rank
            raise _NonFiniteWeights
        # Collectives first, on every rank: the epoch's sums and every rank's generator.
        seen_t = torch.tensor(seen, dtype=torch.int64, device=where.device)
        total_loss, total_correct, total_seen = all_reduce_sum(loss_sum, correct, seen_t)
        tensors = {"epoch/loss_sum": total_loss, "epoch/correct": total_correct}
        if distributed:
            gathered = all_gather_states({"torch": torch.get_rng_state()})
            for r, states in enumerate(gathered[1:], 1):
                tensors[f"rng/rank{r}/torch"] = states["torch"]
        saved_step = state.step
        if checkpoint_dir is None:
            return None
        extra = {
            "config": config,
            "record": dict(run.record) if run is not None else None,
            "seen": int(total_seen),
            "skipped": skipped,
            "world_size": where.world_size,
            "tensors": tensors,
        }
        return save_checkpoint(checkpoint_dir, state, extra)

    def measure(split: Any) -> Evaluation:
        return evaluate(
            model,
            split,
            batch_size=eval_batch_size,
            device=where.device,
            precision=where.precision,
            channels_last=where.channels_last,
            rank=where.rank,
            world_size=where.world_size,
            flip=test_flip,
        )

    emit(
        {
            "event": "start",
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total,
            "train_images": len(train),
            "resumed_step": resume.step if resume is not None else None,
        }
    )
    stopper = _Stopper(handle_signals)
    stopped = "completed"
    boundary = True  # the state is consistent (between two steps, or two epochs)
    fault: dict[str, Any] | None = None
    halt = False
    try:
        while state.step < total and not halt:
            epoch = state.epoch
            model.train()
            started = time.perf_counter()
            last_report = started
            seen_before = seen
            for x, y in batches.epoch(epoch, start=state.batch):  # 1. sample a mini-batch
                boundary = False
                lr = state.schedule.lr(state.step)
                for group in state.optimizer.param_groups:
                    group["lr"] = lr
                if where.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(where.device, where.precision):
                    out = net(x)  # 2. forward ...
                    loss, logits = loss_fn(out, y, recipe.label_smoothing, recipe.aux_weight)
                state.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # 3. backward: the gradients
                norm = _grad_norm(model, recipe.grad_clip)
                finite = bool(torch.isfinite(loss.detach()) & torch.isfinite(norm))
                if finite:
                    state.optimizer.step()  # 4. update the weights
                elif on_nan == "skip":
                    skipped += 1  # the update is skipped; weights and optimizer unchanged
                else:
                    fault = {
                        "what": "loss" if not torch.isfinite(loss.detach()) else "gradient",
                        "fault_step": state.step + 1,
                        "fault_epoch": epoch + 1,
                        "fault_batch": state.batch + 1,
                        "fault_lr": lr,
                    }
                    stopped, halt = "diverged", True
                    boundary = True  # nothing was changed by this step
                    break
                state.step += 1
                state.batch += 1
                n = y.shape[0]
                if finite:
                    seen += n
                    loss_sum += loss.detach().double() * n
                    correct += (logits.detach().argmax(1) == y).sum()
                boundary = True
                if log_steps:  # the global batch's loss: the mean of the ranks' means
                    (step_loss,) = all_reduce_sum(loss.detach().double())
                    step_loss = float(step_loss) / where.world_size
                    if run is not None:
                        row = {"step": state.step, "epoch": epoch + 1, "loss": step_loss, "lr": lr}
                        run.log_step(row)
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
                            "loss": float(loss_sum) / max(seen, 1),
                            "top1": int(correct) / max(seen, 1),
                            "lr": lr,
                            "images_per_s": (seen - seen_before) / (now - started),
                        }
                    )
                # Every rank stops at the same step (a signal may reach them at different ones).
                sig = all_reduce_max(int(stopper.signal or 0)) if distributed else stopper.signal
                if sig:
                    stopped, halt = STOP_REASONS[sig], True
                    break
                if state.step >= total:
                    break
                # (at an epoch's last step, the epoch's own checkpoint follows)
                every = checkpoint_every and state.step % checkpoint_every == 0
                if every and state.batch < steps_per_epoch:
                    checkpoint()
            if halt:
                break
            boundary = False
            train_seconds = time.perf_counter() - started
            seen_t = torch.tensor(seen, dtype=torch.int64, device=where.device)
            all_loss, all_correct, all_seen = all_reduce_sum(loss_sum, correct, seen_t)
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": state.step,
                "train_loss": float(all_loss) / max(int(all_seen), 1),
                "train_top1": int(all_correct) / max(int(all_seen), 1),
                "lr": state.schedule.lr(state.step - 1),
            }
            if skipped:
                row["skipped_steps"] = skipped
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
            images = (
                (int(all_seen) - seen_before * where.world_size)
                if distributed
                else seen - seen_before
            )
            row["images_per_s"] = images / train_seconds if train_seconds else None
            score = row.get("val_top1")
            improved = score is not None and score > state.best_top1
            if improved:
                state.best_top1, state.best_epoch = score, epoch + 1
            state.history.append(row)
            state.epoch, state.batch = epoch + 1, 0
            loss_sum.zero_()
            correct.zero_()
            seen = skipped = 0
            boundary = True
            if improved:
                if run is not None:
                    run.save_weights(model, "best")
                if early_stop is not None:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if run is not None:
                run.log(row)
            checkpoint()
            emit({"event": "epoch", **row, "epochs": epochs})
            if (
                early_stop is not None
                and state.best_epoch is not None
                and state.epoch - state.best_epoch >= early_stop
                and state.step < total
            ):
                stopped = "early-stopped"
                break
            sig = all_reduce_max(int(stopper.signal or 0)) if distributed else stopper.signal
            if sig:
                stopped = STOP_REASONS[sig]
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    except _NonFiniteWeights:
        # A finite loss and gradient gave non-finite weights (an overflowing update): the
        # run stops here, and the last checkpoint, written from finite weights, stays.
        stopped, boundary = "diverged", False
        fault = {
            "what": "weights",
            "fault_step": state.step,
            "fault_epoch": state.epoch + (0 if state.batch == 0 else 1),
            "fault_batch": state.batch,
            "fault_lr": state.schedule.lr(max(state.step - 1, 0)),
        }
    finally:
        stopper.close()

    final: dict[str, Any] = {
        "final": True,
        "stopped": stopped,
        "epoch": state.epoch + (1 if state.batch else 0),
        "step": state.step,
        "total_steps": total,
        "best_epoch": state.best_epoch,
        "best_val_top1": state.best_top1 if state.best_epoch is not None else None,
    }
    if fault is not None:
        final.update(fault)
    if stopped in ("interrupted", "terminated"):
        if boundary:
            path = checkpoint()
            final["checkpoint"] = str(path) if path else None
        else:
            final["checkpoint"] = None  # stopped inside a step: the last checkpoint stays
    if stopped == "early-stopped" and best_state is not None:
        model.load_state_dict(best_state)
        final["restored_epoch"] = state.best_epoch
    if run is not None and _finite_model(model):
        run.save_weights(model, "final")
        if state.best_epoch is None:  # no validation split: the final weights are the best
            run.save_weights(model, "best")
    test = None
    if stopped in ("completed", "early-stopped") and data.test is not None:
        test = measure(data.test)
        final.update(test_loss=test.loss, test_top1=test.top1, test_top5=test.top5)
        if run is not None:
            run.write_json("final.json", {"weights": "final", "split": "test", **test.to_dict()})
    if run is not None:
        run.log(final)
    emit({"event": "end", **final})
    model.eval()
    return FitResult(history=list(state.history), final=final, test=test, state=state)
