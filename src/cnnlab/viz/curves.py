"""A run's training curves (loss, top-1 accuracy and learning rate per epoch, training and
validation, with the test point), its confusion matrix as a heatmap, and its misclassified
test images.  The numbers are the run's own: ``metrics.jsonl`` and ``final.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.train.recipe import EVAL_BATCH_SIZE

__all__ = [
    "Curves",
    "confusion_figure",
    "curves_figure",
    "misclassified",
    "read_curves",
    "read_final",
]


@dataclass(frozen=True)
class Curves:
    """Per-epoch series (None where a row lacks the key) and the final row's test numbers."""

    epochs: list[int]
    series: dict[str, list[float | None]]
    test: dict[str, float]


_KEYS = ("train_loss", "val_loss", "train_top1", "val_top1", "lr")


def read_curves(run: Any) -> Curves:
    """The curves of a :class:`~cnnlab.train.Run`; a run without an epoch row is refused."""
    rows = run.epochs
    if not rows:
        raise CnnlabError(f"{run.path}: metrics.jsonl has no epoch row yet, so no curves")
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(rows)]
    series = {k: [_num(r.get(k)) for r in rows] for k in _KEYS}
    final = run.final or {}
    test = {
        k: float(final[k]) for k in ("test_loss", "test_top1") if _num(final.get(k)) is not None
    }
    return Curves(epochs, series, test)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def read_final(run: Any) -> dict[str, Any]:
    """``final.json`` of a run (``per_class``, ``confusion``); refused when missing."""
    path = run.path / "final.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CnnlabError(f"{path}: missing; the run has no test evaluation yet") from None
    except json.JSONDecodeError as exc:
        raise CnnlabError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or "confusion" not in data:
        raise CnnlabError(f"{path}: no confusion matrix in it")
    return data


def curves_figure(c: Curves, title: str) -> Any:
    """Three panels, ``fig.axes[0..2]``: loss, top-1 accuracy (%), learning rate.  Each line's
    label is its metrics key; the test point is the marker labelled ``test_loss``/``test_top1``
    at the last epoch."""
    from matplotlib.ticker import MaxNLocator

    from cnnlab.viz._figure import new_figure

    fig = new_figure(10.5, 3.3)
    axes = fig.subplots(1, 3)
    last = c.epochs[-1]
    panels = [
        (axes[0], ("train_loss", "val_loss"), "test_loss", "loss (cross-entropy)", 1.0),
        (axes[1], ("train_top1", "val_top1"), "test_top1", "top-1 accuracy (%)", 100.0),
        (axes[2], ("lr",), None, "learning rate (end of epoch)", 1.0),
    ]
    for ax, keys, test_key, ylabel, factor in panels:
        for key in keys:
            pts = [
                (e, v * factor)
                for e, v in zip(c.epochs, c.series[key], strict=True)
                if v is not None
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", ms=3, label=key)
        if test_key and test_key in c.test:
            ax.plot([last], [c.test[test_key] * factor], "k*", ms=10, label=test_key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.86, wspace=0.3)
    return fig


def confusion_figure(confusion: list[list[int]], classes: tuple[str, ...], title: str) -> Any:
    """The confusion matrix (rows: true class, columns: predicted) as a heatmap with counts,
    and each class's accuracy beside its row; ``fig.axes[0].images[0]`` holds the counts."""
    from cnnlab.viz._figure import new_figure

    m = np.asarray(confusion, dtype=np.int64)
    k = m.shape[0]
    if m.shape != (k, k) or len(classes) != k:
        raise CnnlabError(f"a confusion matrix of {k} classes needs {k} x {k} counts")
    size = max(4.0, 0.5 * k + 2.5)
    fig = new_figure(size + 1.2, size)
    ax = fig.add_axes((0.22, 0.22, 0.6, 0.68))
    ax.imshow(m, cmap="Blues", interpolation="nearest")
    hi = m.max() or 1
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if m[i, j] > hi / 2 else "black",
            )
        total = m[i].sum()
        acc = f"{100 * m[i, i] / total:.1f}%" if total else "-"
        ax.text(k - 0.3, i, acc, ha="left", va="center", fontsize=7)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + " (right: accuracy per class)", fontsize=9)
    return fig


def misclassified(
    model: Any,
    dataset: Any,
    mean: Any,
    std: Any,
    *,
    limit: int = 36,
    batch_size: int = EVAL_BATCH_SIZE,
) -> tuple[Any, list[str], list[int]]:
    """The first ``limit`` images of ``dataset`` the model gets wrong: uint8 images, captions
    ``"true -> predicted"`` and their indices in the dataset."""
    import torch

    from cnnlab.train.evaluate import probabilities

    probs = probabilities(model, dataset.images, mean, std, batch_size=batch_size)
    pred = probs.argmax(dim=1)
    wrong = torch.nonzero(pred != dataset.labels).flatten()[:limit]
    classes = dataset.classes
    captions = [f"{classes[int(dataset.labels[i])]} -> {classes[int(pred[i])]}" for i in wrong]
    return dataset.images[wrong], captions, [int(i) for i in wrong]
