"""Evaluating a model on a dataset split: loss, top-1, top-5, per-class accuracy, confusion.

One function for every place that measures a model: validation after each epoch, the test at
the end of training, ``cnnlab eval``, ``predict`` and ``ensemble``.  Images are normalised
exactly as the training pipeline normalised them (:class:`~cnnlab.data.BatchPipeline`, with
the run's ``mean``/``std``), in dataset order, and each image is counted exactly once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.recipe import EVAL_BATCH_SIZE

__all__ = ["Evaluation", "autocast", "evaluate", "probabilities"]

_PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured: mean cross-entropy ``loss`` (no label smoothing),
    ``top1``/``top5`` accuracy in [0, 1] (top-5 is top-k with k = min(5, classes)), ``n``
    images, ``per_class`` accuracy (NaN for a class with no image), ``confusion[true][pred]``
    counts."""

    loss: float
    top1: float
    top5: float
    n: int
    per_class: list[float]
    confusion: list[list[int]]
    classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "top1": self.top1,
            "top5": self.top5,
            "n": self.n,
            "classes": list(self.classes),
            "per_class": [None if v != v else v for v in self.per_class],  # NaN -> null
            "confusion": self.confusion,
        }


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``precision == "bf16"``, else nothing."""
    if precision not in _PRECISIONS:
        raise CnnlabError(f"precision {precision!r}: expected one of {', '.join(_PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _logits(out: Any) -> torch.Tensor:
    # Models with auxiliary heads (GoogLeNet) return (logits, aux...) in training mode only;
    # a user model might do so always: the first tensor is the prediction.
    return out[0] if isinstance(out, tuple | list) else out


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device = "cpu",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    flip: bool = False,
) -> Evaluation:
    """Evaluate ``model`` (already on ``device``) on a :class:`~cnnlab.data.Dataset` split.

    ``mean``/``std``: the normalisation the model was trained with (pixel/255 units; the
    dataset's own when None).  ``flip``: test-time augmentation, the logits of each image
    and of its mirror image averaged (Krizhevsky et al. 2012 averaged ten crops; the fast
    CIFAR-10 trainers use the mirror alone); a dataset whose flips change the class (digits)
    raises :class:`CnnlabError`.  The model is put in eval mode and given back in the mode it
    had.  Raises :class:`CnnlabError` when the model's outputs do not match the classes.

    With ``world_size > 1`` (every rank of a process group calls it), rank ``r`` measures
    the ``r``-th of ``world_size`` contiguous slices of the split and the sums are reduced
    across the ranks, so each image counts exactly once and every rank gets the result.
    """
    from cnnlab.data import pipeline_for
    from cnnlab.train.distributed import all_reduce_sum

    device = torch.device(device)
    ds = _with_stats(dataset, mean, std)
    if flip and ds.info is not None and not ds.info.hflip:
        raise CnnlabError(
            f"{ds.name}: flip test-time augmentation mirrors the images, and a mirrored image "
            "of this dataset is another class (or none); valid: flip=False"
        )
    k = ds.num_classes
    n = len(ds)
    if world_size > 1:
        lo, hi = n * rank // world_size, n * (rank + 1) // world_size
        ds = ds.subset(torch.arange(lo, hi))
    batches = pipeline_for(ds, batch_size, device=device, shuffle=False)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1 = torch.zeros((), dtype=torch.int64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
    with _eval_mode(model), torch.inference_mode():
        for x, y in batches.epoch(0):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits = _logits(model(x))
                if flip:
                    logits = (logits + _logits(model(x.flip(-1)))) / 2
            logits = logits.float()
            _check_outputs(logits, k, ds)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            best = logits.topk(min(5, k), dim=1).indices  # (B, k')
            top1 += (best[:, 0] == y).sum()
            top5 += (best == y[:, None]).any(dim=1).sum()
            confusion += torch.bincount(y * k + best[:, 0], minlength=k * k)
    if world_size > 1:
        loss_sum, top1, top5, confusion = all_reduce_sum(loss_sum, top1, top5, confusion)
    matrix = confusion.view(k, k).cpu()
    counts = matrix.sum(dim=1)
    diag = matrix.diagonal()
    per_class = [
        float(d) / float(c) if int(c) else float("nan")
        for d, c in zip(diag.tolist(), counts.tolist(), strict=True)
    ]
    return Evaluation(
        loss=float(loss_sum) / n,
        top1=int(top1) / n,
        top5=int(top5) / n,
        n=n,
        per_class=per_class,
        confusion=matrix.tolist(),
        classes=tuple(ds.classes),
    )


def probabilities(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    precision: str = "fp32",
    channels_last: bool = False,
    flip: bool = False,
) -> torch.Tensor:
    """Softmax outputs (N, classes), float32 on the CPU, for uint8 images (N, C, H, W),
    normalised with ``mean``/``std`` exactly as in training; ``precision``,
    ``channels_last`` and ``flip`` (the logits of each image and its mirror averaged) as in
    :func:`evaluate`."""
    from cnnlab.data import BatchPipeline, Dataset

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else ""
        raise CnnlabError(f"probabilities: expected uint8 images N x C x H x W, got {got}")
    device = torch.device(device)
    ds = Dataset(
        name="images",
        split="predict",
        images=images,
        labels=torch.zeros(images.shape[0], dtype=torch.int64),
        classes=("?",),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )
    out = []
    with _eval_mode(model), torch.inference_mode():
        for x, _ in BatchPipeline(ds, batch_size, device=device, shuffle=False).epoch(0):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits = _logits(model(x))
                if flip:
                    logits = (logits + _logits(model(x.flip(-1)))) / 2
            out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out)


def _with_stats(dataset: Any, mean: Sequence[float] | None, std: Sequence[float] | None) -> Any:
    if mean is None and std is None:
        return dataset
    return replace(
        dataset,
        mean=tuple(float(m) for m in (mean if mean is not None else dataset.mean)),
        std=tuple(float(s) for s in (std if std is not None else dataset.std)),
    )


def _check_outputs(logits: torch.Tensor, k: int, ds: Any) -> None:
    if logits.dim() != 2 or logits.shape[1] != k:
        raise CnnlabError(
            f"the model gives outputs of shape {tuple(logits.shape)} per batch; "
            f"{ds.name} ({ds.split}) has {k} classes, so it needs (batch, {k})"
        )
