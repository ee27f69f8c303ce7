"""What a run is trained with: :class:`Recipe` and :class:`Options`, typed and frozen.

A :class:`Recipe` is a frozen, typed dataclass in human units (epochs, the global batch size,
the learning rate *and the batch size it refers to*, weight decay, schedule, augmentation,
label smoothing, dropout, initialisation).  :class:`Options` holds what is not a property of
the recipe (seed, device, precision, threads, validation split).  Each field carries its
documentation and its checks (choices, bounds) in its metadata, which
:mod:`cnnlab.train.config` reads to type-check a run's configuration.  The papers' recipes
are in :mod:`cnnlab.train.recipes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["EVAL_BATCH_SIZE", "ConfigError", "Options", "Recipe"]

# Images per evaluation batch, wherever a model is measured.  Not larger: on a CPU a batch's
# activations should stay in the caches; at 1000 images (25 MB of them in the fast net's
# second layer, in bf16) a one-thread validation pass with flips took 1.3-1.5x as long as at
# 128 or 256 (the fast net 1.27 s against 0.96, the residual one 6.0 against 4.05).
EVAL_BATCH_SIZE = 256


class ConfigError(CnnlabError):
    """A configuration key that is unknown, of the wrong type or impossible."""


def _key(default: Any, doc: str, **rules: Any) -> Any:
    """A dataclass field with its documentation and checks (``choices``, ``lo``, ``hi``,
    ``lo_open``, ``hi_open``) in its metadata."""
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata={"doc": doc, **rules})


@dataclass(frozen=True)
class Recipe:
    """How to train: every hyperparameter, in human units (see the module doc)."""

    name: str = _key("custom", "the recipe's name")
    about: str = _key("", "what the paper used and what cnnlab uses instead, and why")
    model: str | None = _key(None, "the network the recipe brings (when TARGET is left out)")
    # ---- length ----
    epochs: int | None = _key(10, "passes over the training split", lo=1)
    iterations: int | None = _key(
        None, "optimizer steps instead of epochs (He et al.'s CIFAR schedule: 64000)", lo=1
    )
    # ---- mini-batch and optimizer ----
    batch_size: int = _key(128, "global mini-batch (split across ranks)", lo=1)
    lr: float = _key(0.1, "learning rate at lr_batch images per step", lo=0, lo_open=True)
    lr_batch: int | None = _key(
        None,
        "the batch size lr refers to; lr scales linearly to batch_size (None: no scaling)",
        lo=1,
    )
    optimizer: str = _key("sgd", "optimizer", choices=("sgd", "adam", "adamw"))
    momentum: float = _key(0.9, "SGD momentum", lo=0, hi=1, hi_open=True)
    nesterov: bool = _key(False, "Nesterov momentum (SGD)")
    betas: tuple[float, ...] = _key((0.9, 0.999), "Adam/AdamW betas", lo=0, hi=1, hi_open=True)
    weight_decay: float = _key(5e-4, "L2 weight decay (AdamW: decoupled)", lo=0)
    decay_norm_and_bias: bool = _key(
        True, "apply weight decay to BatchNorm weights and biases too (False: exclude them)"
    )
    # ---- learning-rate schedule ----
    schedule: str = _key(
        "constant",
        "constant | step (x gamma at milestones) | plateau (x gamma when validation top-1 "
        "stalls) | cosine | onecycle (linear warm-up, linear decay)",
        choices=("constant", "step", "plateau", "cosine", "onecycle"),
    )
    milestones: tuple[int, ...] = _key((), "step schedule: where lr is multiplied by gamma", lo=1)
    milestone_unit: str = _key("epoch", "unit of milestones", choices=("epoch", "iteration"))
    gamma: float = _key(0.1, "step/plateau factor", lo=0, hi=1, lo_open=True, hi_open=True)
    patience: int = _key(5, "plateau: epochs without a better validation top-1", lo=1)
    min_lr: float = _key(0.0, "floor of plateau; end of cosine and onecycle", lo=0)
    warmup: float = _key(
        0.0,
        "fraction of the steps with a linear warm-up (cosine, onecycle)",
        lo=0,
        hi=1,
        hi_open=True,
    )
    # ---- loss and gradients ----
    label_smoothing: float = _key(0.0, "cross-entropy label smoothing", lo=0, hi=1, hi_open=True)
    aux_weight: float = _key(0.3, "weight of each auxiliary head's loss (GoogLeNet)", lo=0)
    grad_clip: float | None = _key(None, "clip the gradients' global L2 norm", lo=0, lo_open=True)
    ema: float = _key(
        0.0,
        "decay per step of an exponential moving average of the weights, which is what the "
        "run evaluates, saves and returns (0: off; 0.99 averages about the last 100 steps)",
        lo=0,
        hi=1,
        hi_open=True,
    )
    # ---- data ----
    augment: str = _key(
        "none",
        "none | standard (random crop with zero padding + horizontal flip where it keeps the "
        "class)",
        choices=("none", "standard"),
    )
    crop_padding: int | None = _key(None, "standard augment: padding (None: dataset's)", lo=0)
    alternate_flip: bool = _key(
        False,
        "standard augment: mirror each image in every other epoch (a random half in the even "
        "epochs, the others in the odd ones; Jordan 2024) instead of at random each epoch",
    )
    erase: float = _key(0.0, "random erasing probability", lo=0, hi=1)
    test_flip: bool = _key(
        False,
        "evaluate (validation and test) on each image and its mirror, logits averaged "
        "(test-time augmentation), where the data's flips keep the class (not for digits)",
    )
    # ---- model ----
    dropout: float | None = _key(
        None,
        "dropout probability of the model's dropout layers (None: the model's own)",
        lo=0,
        hi=1,
        hi_open=True,
    )
    init: str = _key(
        "default",
        "default (the builder's) | he | glorot | lenet (uniform +-2.4/fan-in)",
        choices=("default", "he", "glorot", "lenet"),
    )
    whiten: str = _key(
        "none",
        "none | init (the first convolution's filters: a whitening of the training images' "
        "patches) | frozen (so, and not trained)",
        choices=("none", "init", "frozen"),
    )

    def effective_lr(self) -> float:
        """``lr`` scaled linearly to ``batch_size`` (Goyal et al. 2017) when ``lr_batch``
        is set; the peak learning rate of the run."""
        return self.lr * self.batch_size / self.lr_batch if self.lr_batch else self.lr

    def augmentation(self, train: Any) -> Any:
        """This recipe's batched augmentation of the split ``train`` (a
        :class:`cnnlab.data.Augment`: crop and flip as the dataset allows, erasing)."""
        from cnnlab.data import Augment

        if self.augment == "standard":
            augment = Augment.standard(train, erase_p=self.erase)
            padding = augment.crop_padding if self.crop_padding is None else self.crop_padding
            return dataclasses.replace(
                augment, crop_padding=padding, alternate_flip=self.alternate_flip
            )
        return Augment(erase_p=self.erase) if self.erase else Augment()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Options:
    """What a run needs beside its recipe."""

    seed: int = _key(0, "seed of initialisation, order, augmentation and dropout", lo=0)
    val_split: float = _key(
        0.1,
        "fraction of the training split held out (stratified, fixed seed) for validation",
        lo=0,
        hi=1,
        hi_open=True,
    )
    device: str = _key(
        "auto", "auto (CUDA when present) | cpu | cuda", choices=("auto", "cpu", "cuda")
    )
    precision: str = _key(
        "auto",
        "auto (bf16 autocast on CUDA; on a CPU the faster, measured once per machine) | fp32 "
        "| bf16",
        choices=("auto", "fp32", "bf16"),
    )
    channels_last: bool | None = _key(None, "channels_last memory format (None: on CUDA)")
    threads: int | None = _key(None, "CPU threads (None: the cores this process may use)", lo=1)
    eval_test_every_epoch: bool = _key(
        False, "evaluate the test split after every epoch too (marked in the logs)"
    )
    eval_batch_size: int = _key(EVAL_BATCH_SIZE, "batch size of evaluation", lo=1)
    val_every: int = _key(
        1,
        "validate after every N epochs and after the last (0: after the last only; a pass "
        "costs a third of a training epoch's work per image, twice with flips)",
        lo=0,
    )
    checkpoint_every: int | None = _key(
        None, "also checkpoint every N steps (always: after each epoch, and when stopped)", lo=1
    )
    early_stop: int | None = _key(
        None,
        "stop after N epochs without a better validation top-1; end with the best weights",
        lo=1,
    )
    on_nan: str = _key(
        "stop",
        "a non-finite loss or gradient: stop (exit status 3) | skip the update and count it",
        choices=("stop", "skip"),
    )
    log_steps: bool = _key(False, "write each step's loss and lr to the run's steps.jsonl")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
