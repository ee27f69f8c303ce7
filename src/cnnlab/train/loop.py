"""The training loop: the lecture's mini-batch SGD, with validation, test and a run folder.

:func:`fit` repeats the lecture's four steps: (1) sample a mini-batch, (2) forward it and
compute the loss, (3) backward to get the gradients, (4) update the weights, then evaluates
on the validation split after each epoch and on the test split at the end.  Each is one
method of the run in progress (``_Loop``): ``_train_epoch`` samples, ``_step`` calls
``_forward_loss``, ``_backward`` and ``_update``; ``_end_epoch`` evaluates and
``checkpoint`` saves; ``_finish`` writes the final row.  It returns plain
data (:class:`FitResult`); progress goes to an optional ``on_event`` function as plain dicts,
which the CLI renders.

Everything a resumed or distributed run needs is in one
:class:`~cnnlab.train.state.TrainState` (model,
optimizer, schedule, step, epoch, the position in the epoch's data, the generators' state),
and the data position is the pipeline's ``epoch(e, start=k)``.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.arguments import check_fit_arguments
from cnnlab.train.average import WeightAverage
from cnnlab.train.device import Placement, channels_last_gradients, placement
from cnnlab.train.evaluate import Evaluation, autocast, evaluate
from cnnlab.train.kernels import matmul_weight_gradients
from cnnlab.train.loss import loss_fn
from cnnlab.train.optim import Schedule, make_optimizer
from cnnlab.train.recipe import EVAL_BATCH_SIZE, Recipe
from cnnlab.train.splits import TrainData
from cnnlab.train.state import FitResult, TrainState
from cnnlab.train.stopping import (
    STOP_REASONS,
    NonFiniteWeights,
    Stopper,
    finite_model,
    grad_norm,
)

__all__ = ["STOP_REASONS", "fit"]

Event = dict[str, Any]


def fit(
    model: nn.Module,
    data: TrainData,
    recipe: Recipe,
    *,
    where: Placement | None = None,
    seed: int = 0,
    eval_test_every_epoch: bool = False,
    eval_batch_size: int = EVAL_BATCH_SIZE,
    val_every: int = 1,
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
    step's loss and lr go to the run's ``steps.jsonl``.  ``val_every``: validate after every
    that many epochs and after the last (0: after the last only); the best weights are
    chosen among the validated epochs.
    """
    where = where or placement()
    check_fit_arguments(data, recipe, where, on_nan, early_stop, val_every)
    loop = _Loop(
        model, data, recipe, where, seed=seed, eval_test_every_epoch=eval_test_every_epoch,
        eval_batch_size=eval_batch_size, val_every=val_every, run=run, on_event=on_event,
        report_every=report_every, checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every, resume=resume, early_stop=early_stop, on_nan=on_nan,
        log_steps=log_steps, config=config,
    )  # fmt: skip
    return loop.run(handle_signals)


class _Loop:
    """One :func:`fit` in progress: the lecture's four steps (:meth:`_step`), each epoch's
    evaluation (:meth:`_end_epoch`), checkpoints (:meth:`checkpoint`) and the final row
    (:meth:`_finish`), sharing the run's state as attributes."""

    def __init__(self, model: nn.Module, data: TrainData, recipe: Recipe, where: Placement,
                 **settings: Any) -> None:  # fmt: skip
        from cnnlab.data import pipeline_for
        from cnnlab.data.dataset import derive_seed

        self.model, self.data, self.recipe, self.where = model, data, recipe, where
        self.seed: int = settings["seed"]
        self.run_writer: Any = settings["run"]
        self.on_event: Callable[[Event], None] | None = settings["on_event"]
        self.emit: Callable[[Event], None] = self.on_event or (lambda event: None)
        self.report_every: float = settings["report_every"]
        self.checkpoint_every: int | None = settings["checkpoint_every"]
        self.early_stop: int | None = settings["early_stop"]
        self.on_nan: str = settings["on_nan"]
        self.log_steps: bool = settings["log_steps"]
        self.eval_test_every_epoch: bool = settings["eval_test_every_epoch"]
        self.eval_batch_size: int = settings["eval_batch_size"]
        self.val_every: int = settings["val_every"]
        resume = settings["resume"]
        self.resume = resume
        train = data.train
        # Mirror test-time augmentation only where a mirror keeps the class (as the
        # crop-and-flip augmentation decides it).
        self.test_flip = recipe.test_flip and (train.info is None or train.info.hflip)
        self.batches = pipeline_for(  # in memory, or streamed from disk
            train,
            recipe.batch_size // where.world_size,
            device=where.device,
            augment=recipe.augmentation(train),
            seed=self.seed,
            rank=where.rank,
            world_size=where.world_size,
            drop_last=True,  # equal steps; no BatchNorm batch of one at the end
        )
        self.steps_per_epoch = len(self.batches)
        self.total = recipe.iterations or recipe.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total / self.steps_per_epoch)
        if resume is not None and resume.step >= self.total:
            raise CnnlabError(
                f"{resume.path}: the run has done all its {self.total} steps ({self.epochs} "
                "epochs); to train longer, resume with more epochs (--set epochs=N or "
                "--epochs N)"
            )
        checkpoint_dir = settings["checkpoint_dir"]
        if checkpoint_dir is None and self.run_writer is not None:
            checkpoint_dir = Path(self.run_writer.path) / "checkpoints"
        self.checkpoint_dir = checkpoint_dir

        model.to(where.device)
        self.layout_hooks: list[Any] = []
        if where.channels_last:
            model.to(memory_format=torch.channels_last)
            self.layout_hooks = channels_last_gradients(model)  # removed when fit returns
        if where.device.type == "cpu" and where.precision == "bf16":
            self.layout_hooks += matmul_weight_gradients(model)  # where measured faster
        self.distributed = where.world_size > 1
        self.net: nn.Module = model  # what the forward runs: the model, or DDP around it
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [where.device.index] if where.device.type == "cuda" else None
            self.net = DistributedDataParallel(model, device_ids=ids)
        self.state = TrainState(
            model=model,
            optimizer=make_optimizer(model, recipe),
            schedule=Schedule(recipe, self.total, self.steps_per_epoch),
            step=0,
        )
        # The weights' moving average (recipe.ema): what is evaluated, saved and returned.
        self.average = WeightAverage(model, recipe.ema) if recipe.ema else None
        # Dropout masks (and anything of the user's model that draws from Python's or
        # NumPy's global generators); the data order has its own (seed, epoch) stream.
        # Rank 0 draws what one process would; other ranks their own stream (their dropout
        # masks differ from rank 0's).
        seed = self.seed
        torch.manual_seed(seed if where.rank == 0 else derive_seed(seed, "rank", where.rank))
        random.seed(seed)
        np.random.seed(seed)
        # The running sums of the epoch in progress (part of a mid-epoch checkpoint).
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=where.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=where.device)
        self.seen = self.skipped = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        if resume is not None:
            self._restore(resume)
        self.config = dict(settings["config"] or {"recipe": recipe.to_dict(), "seed": seed})
        self.saved_step: int | None = resume.step if resume is not None else None
        # How the run is ending: "completed" until a signal, a fault or early stopping.
        self.stopped = "completed"
        self.boundary = True  # the state is consistent (between two steps, or two epochs)
        self.fault: dict[str, Any] | None = None
        self.halt = False

    def _restore(self, resume: Any) -> None:
        """Continue from the checkpoint ``resume``: state, the epoch's sums, generators."""
        from cnnlab.train.checkpoint import restore, restore_rank_generator

        where = self.where
        restore(self.state, resume)
        # The epoch's running sums are saved summed over the ranks: rank 0 carries them on,
        # so they stay right with another number of ranks.
        if where.rank == 0:
            self.loss_sum.copy_(resume.tensors["epoch/loss_sum"])
            self.correct.copy_(resume.tensors["epoch/correct"])
            self.seen = int(resume.state["seen"])
        self.skipped = int(resume.state["skipped"])
        if self.average is not None:
            averaged = {k[8:]: v for k, v in resume.tensors.items() if k.startswith("average/")}
            self.average.load_state_dict(averaged, resume.state["average_updates"])
        restore_rank_generator(resume, where.rank, self.seed)
        if self.run_writer is not None:
            self.run_writer.restart(self.state.history, self.state.step)
            if self.early_stop is not None and self.state.best_epoch is not None:
                self.best_state = self.run_writer.load_weights("best")

    # ---- checkpoints and evaluation ---------------------------------------------------------
    def checkpoint(self) -> Path | None:
        """Save a checkpoint of the state now (a step boundary); None without a folder."""
        from cnnlab.train.checkpoint import rank_generators, save_checkpoint
        from cnnlab.train.distributed import all_reduce_sum

        where, state = self.where, self.state
        if self.saved_step == state.step or (self.checkpoint_dir is None and not self.distributed):
            return None
        if not finite_model(self.model):  # the same weights, so the same answer, on every rank
            raise NonFiniteWeights
        # Collectives first, on every rank: the epoch's sums and every rank's generator.
        seen_t = torch.tensor(self.seen, dtype=torch.int64, device=where.device)
        total_loss, total_correct, total_seen = all_reduce_sum(self.loss_sum, self.correct, seen_t)
        tensors = {"epoch/loss_sum": total_loss, "epoch/correct": total_correct}
        if self.average is not None:
            tensors.update({f"average/{k}": v for k, v in self.average.state_dict().items()})
        tensors.update(rank_generators(self.distributed))
        self.saved_step = state.step
        if self.checkpoint_dir is None:
            return None
        extra = {
            "config": self.config,
            "record": dict(self.run_writer.record) if self.run_writer is not None else None,
            "seen": int(total_seen),
            "skipped": self.skipped,
            "world_size": where.world_size,
            "average_updates": self.average.updates if self.average is not None else None,
            "tensors": tensors,
        }
        return save_checkpoint(self.checkpoint_dir, state, extra)

    def evaluated(self) -> Any:
        """A context holding the weights a run evaluates and saves: the model's own, or
        (recipe.ema) their average, swapped in for the context's length."""
        if self.average is None:
            return contextlib.nullcontext(self.model)
        return self.average.evaluated(self.model)

    def measure(self, split: Any) -> Evaluation:
        where = self.where
        with self.evaluated() as model:
            return evaluate(
                model,
                split,
                batch_size=self.eval_batch_size,
                device=where.device,
                precision=where.precision,
                channels_last=where.channels_last,
                rank=where.rank,
                world_size=where.world_size,
                flip=self.test_flip,
            )

    def _signal(self, stopper: Stopper) -> int | None:
        """The signal that stops the run, if any: every rank stops at the same step (a signal
        may reach them at different ones)."""
        from cnnlab.train.distributed import all_reduce_max

        if self.distributed:
            return all_reduce_max(int(stopper.signal or 0))
        return stopper.signal

    # ---- the run -----------------------------------------------------------------------------
    def run(self, handle_signals: bool) -> FitResult:
        state, resume = self.state, self.resume
        self.emit(
            {
                "event": "start",
                "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total,
                "train_images": len(self.data.train),
                "resumed_step": resume.step if resume is not None else None,
            }
        )
        stopper = Stopper(handle_signals)
        try:
            while state.step < self.total and not self.halt:
                seen_before, started = self._train_epoch(stopper)
                if self.halt or self._end_epoch(stopper, seen_before, started):
                    break
        except KeyboardInterrupt:
            self.stopped = "interrupted"
        except NonFiniteWeights:
            # A finite loss and gradient gave non-finite weights (an overflowing update): the
            # run stops here, and the last checkpoint, written from finite weights, stays.
            self.stopped, self.boundary = "diverged", False
            self.fault = {
                "what": "weights",
                "fault_step": state.step,
                "fault_epoch": state.epoch + (0 if state.batch == 0 else 1),
                "fault_batch": state.batch,
                "fault_lr": state.schedule.lr(max(state.step - 1, 0)),
            }
        finally:
            stopper.close()
            for handle in self.layout_hooks:
                handle.remove()
        return self._finish()

    def _train_epoch(self, stopper: Stopper) -> tuple[int, float]:
        """Train until the epoch's end, or a stop; returns (images seen before, start time)."""
        state = self.state
        self.model.train()
        started = time.perf_counter()
        self.last_report = started
        seen_before = self.seen
        for x, y in self.batches.epoch(state.epoch, start=state.batch):  # 1. sample a batch
            if not self._step(x, y, seen_before, started, stopper):
                break
        return seen_before, started

    def _step(self, x: torch.Tensor, y: torch.Tensor, seen_before: int, started: float,
              stopper: Stopper) -> bool:  # fmt: skip
        """One step of the lecture's four (the batch is sampled): forward and loss, backward,
        update, then the step's bookkeeping.  False when the epoch's loop must stop."""
        state = self.state
        self.boundary = False
        lr = state.schedule.lr(state.step)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        loss, logits = self._forward_loss(x, y)  # 2. forward and loss
        norm = self._backward(loss)  # 3. backward: the gradients
        finite = bool(torch.isfinite(loss.detach()) & torch.isfinite(norm))
        if not self._update(finite, loss, lr):  # 4. update the weights
            return False
        state.step += 1
        state.batch += 1
        if finite:
            n = y.shape[0]
            self.seen += n
            self.loss_sum += loss.detach().double() * n
            self.correct += (logits.detach().argmax(1) == y).sum()
        self.boundary = True
        self._log_step(loss, lr)
        self._report(lr, seen_before, started)
        sig = self._signal(stopper)
        if sig:
            self.stopped, self.halt = STOP_REASONS[sig], True
            return False
        if state.step >= self.total:
            return False
        # (at an epoch's last step, the epoch's own checkpoint follows)
        every = self.checkpoint_every and state.step % self.checkpoint_every == 0
        if every and state.batch < self.steps_per_epoch:
            self.checkpoint()
        return True

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Step 2: the forward pass and the loss (under the placement's precision)."""
        where, recipe = self.where, self.recipe
        if where.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(where.device, where.precision):
            out = self.net(x)
            return loss_fn(out, y, recipe.label_smoothing, recipe.aux_weight)

    def _backward(self, loss: torch.Tensor) -> torch.Tensor:
        """Step 3: the gradients; returns their global norm (clipped by the recipe's
        ``grad_clip``)."""
        self.state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return grad_norm(self.model, self.recipe.grad_clip)

    def _update(self, finite: bool, loss: torch.Tensor, lr: float) -> bool:
        """Step 4: the optimizer's update, when the loss and gradients are finite; else the
        update is skipped (``on_nan="skip"``, counted) or the run stops as diverged (False)."""
        state = self.state
        if finite:
            state.optimizer.step()
            if self.average is not None:
                self.average.update(self.model)
        elif self.on_nan == "skip":
            self.skipped += 1  # the update is skipped; weights and optimizer unchanged
        else:
            self.fault = {
                "what": "loss" if not torch.isfinite(loss.detach()) else "gradient",
                "fault_step": state.step + 1,
                "fault_epoch": state.epoch + 1,
                "fault_batch": state.batch + 1,
                "fault_lr": lr,
            }
            self.stopped, self.halt = "diverged", True
            self.boundary = True  # nothing was changed by this step
            return False
        return True

    def _log_step(self, loss: torch.Tensor, lr: float) -> None:
        """``log_steps``: the global batch's loss (the mean of the ranks' means) and lr."""
        from cnnlab.train.distributed import all_reduce_sum

        if not self.log_steps:
            return
        (step_loss,) = all_reduce_sum(loss.detach().double())
        step_loss = float(step_loss) / self.where.world_size
        if self.run_writer is not None:
            state = self.state
            row = {"step": state.step, "epoch": state.epoch + 1, "loss": step_loss, "lr": lr}
            self.run_writer.log_step(row)

    def _report(self, lr: float, seen_before: int, started: float) -> None:
        """A progress event, about every ``report_every`` seconds."""
        now = time.perf_counter()
        if self.on_event is None or now - self.last_report < self.report_every:
            return
        self.last_report = now
        state, seen = self.state, self.seen
        self.emit(
            {
                "event": "progress",
                "epoch": state.epoch + 1,
                "epochs": self.epochs,
                "batch": state.batch,
                "steps": self.steps_per_epoch,
                "step": state.step,
                "total_steps": self.total,
                "loss": float(self.loss_sum) / max(seen, 1),
                "top1": int(self.correct) / max(seen, 1),
                "lr": lr,
                "images_per_s": (seen - seen_before) / (now - started),
            }
        )

    def _end_epoch(self, stopper: Stopper, seen_before: int, started: float) -> bool:
        """The epoch's row: its training sums, the validation (and test) evaluation, the
        best weights, a checkpoint.  True when the run stops here (early stop, signal)."""
        state = self.state
        self.boundary = False
        row = self._evaluate_epoch(seen_before, started)
        score = row.get("val_top1")
        improved = score is not None and score > state.best_top1
        if improved:
            state.best_top1, state.best_epoch = score, state.epoch + 1
        state.history.append(row)
        state.epoch, state.batch = state.epoch + 1, 0
        self.loss_sum.zero_()
        self.correct.zero_()
        self.seen = self.skipped = 0
        self.boundary = True
        if improved:
            with self.evaluated() as model:
                if self.run_writer is not None:
                    self.run_writer.save_weights(model, "best")
                if self.early_stop is not None:
                    self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.run_writer is not None:
            self.run_writer.log(row)
        self.checkpoint()
        self.emit({"event": "epoch", **row, "epochs": self.epochs})
        if (
            self.early_stop is not None
            and state.best_epoch is not None
            and state.epoch - state.best_epoch >= self.early_stop
            and state.step < self.total
        ):
            self.stopped = "early-stopped"
            return True
        sig = self._signal(stopper)
        if sig:
            self.stopped = STOP_REASONS[sig]
            return True
        return False

    def _evaluate_epoch(self, seen_before: int, started: float) -> dict[str, Any]:
        """The metrics row of the epoch that just ended."""
        from cnnlab.train.distributed import all_reduce_sum

        state, where, data = self.state, self.where, self.data
        train_seconds = time.perf_counter() - started
        seen_t = torch.tensor(self.seen, dtype=torch.int64, device=where.device)
        all_loss, all_correct, all_seen = all_reduce_sum(self.loss_sum, self.correct, seen_t)
        row: dict[str, Any] = {
            "epoch": state.epoch + 1,
            "step": state.step,
            "train_loss": float(all_loss) / max(int(all_seen), 1),
            "train_top1": int(all_correct) / max(int(all_seen), 1),
            "lr": state.schedule.lr(state.step - 1),
        }
        if self.skipped:
            row["skipped_steps"] = self.skipped
        if data.val is not None and self._validates(state.epoch + 1, state.step):
            val = self.measure(data.val)
            row.update(val_loss=val.loss, val_top1=val.top1, val_top5=val.top5)
            if state.schedule.epoch_end(val.top1):
                row["lr_lowered"] = True
        if self.eval_test_every_epoch and data.test is not None:
            test = self.measure(data.test)
            # Marked: a number chosen by looking at the test split every epoch is no
            # longer an unbiased estimate of the error.
            row.update(
                test_loss=test.loss, test_top1=test.top1, test_top5=test.top5, test_peek=True
            )
        row["seconds"] = time.perf_counter() - started
        images = (
            (int(all_seen) - seen_before * where.world_size)
            if self.distributed
            else self.seen - seen_before
        )
        row["images_per_s"] = images / train_seconds if train_seconds else None
        return row

    def _validates(self, epoch: int, step: int) -> bool:
        """Whether the epoch ``epoch`` (1-based) that ended at ``step`` is validated: every
        ``val_every``-th and the last."""
        every = self.val_every
        return step >= self.total or (every > 0 and epoch % every == 0)

    def _finish(self) -> FitResult:
        """The final row (how and where the run ended), the last checkpoint and weights, and
        the test evaluation of the final weights."""
        state, run, model = self.state, self.run_writer, self.model
        stopped = self.stopped
        final: dict[str, Any] = {
            "final": True,
            "stopped": stopped,
            "epoch": state.epoch + (1 if state.batch else 0),
            "step": state.step,
            "total_steps": self.total,
            "best_epoch": state.best_epoch,
            "best_val_top1": state.best_top1 if state.best_epoch is not None else None,
        }
        if self.fault is not None:
            final.update(self.fault)
        if stopped in ("interrupted", "terminated"):
            if self.boundary:
                path = self.checkpoint()
                final["checkpoint"] = str(path) if path else None
            else:
                final["checkpoint"] = None  # stopped inside a step: the last checkpoint stays
        if self.average is not None:  # from here on the model holds what was evaluated
            self.average.load_into(model)
            self.average = None
        if stopped == "early-stopped" and self.best_state is not None:
            model.load_state_dict(self.best_state)
            final["restored_epoch"] = state.best_epoch
        if run is not None and finite_model(model):
            run.save_weights(model, "final")
            if state.best_epoch is None:  # no validation split: the final weights are the best
                run.save_weights(model, "best")
        test = None
        if stopped in ("completed", "early-stopped") and self.data.test is not None:
            test = self.measure(self.data.test)
            final.update(test_loss=test.loss, test_top1=test.top1, test_top5=test.top5)
            if run is not None:
                run.write_json(
                    "final.json", {"weights": "final", "split": "test", **test.to_dict()}
                )
        if run is not None:
            run.log(final)
        self.emit({"event": "end", **final})
        model.eval()
        return FitResult(history=list(state.history), final=final, test=test, state=state)
