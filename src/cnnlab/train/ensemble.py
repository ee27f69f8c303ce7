"""Ensembles of runs: average the models' softmax outputs, image by image.

Krizhevsky et al. 2012 (section 6) average the predictions of several CNNs: one AlexNet has
an ILSVRC-2012 validation top-5 error of 18.2%, five of them 16.4%, seven (two pre-trained on
ImageNet Fall 2011) 15.4%.  Networks trained from different random seeds make partly
different mistakes, and the averaged probabilities

    p_ens(class | image) = (1 / M) * sum_m softmax(z_m(image))[class]

are right more often than the average member.  Each model sees the images normalised with
its own run's mean and std; all runs must share the class list and the input shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["EnsembleResult", "Scores", "average_probabilities", "ensemble_runs", "scores"]


@dataclass(frozen=True)
class Scores:
    """Loss (mean negative log probability of the true class), top-1 and top-5 accuracy in
    [0, 1] (top-5 is top-k with k = min(5, classes)) on ``n`` images."""

    loss: float
    top1: float
    top5: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5, "n": self.n}


@dataclass(frozen=True)
class EnsembleResult:
    """Each member's :class:`Scores` (in the order of ``runs``) and the ensemble's, on the
    ``split`` of ``dataset``; ``probabilities`` is the averaged (N, classes) tensor."""

    runs: list[Path]
    members: list[Scores]
    ensemble: Scores
    dataset: str
    split: str
    probabilities: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "members": [
                {"run": str(p), **s.to_dict()} for p, s in zip(self.runs, self.members, strict=True)
            ],
            "ensemble": self.ensemble.to_dict(),
        }


def average_probabilities(probs: Sequence[Any]) -> Any:
    """The image-by-image mean of several (N, classes) probability tensors."""
    import torch

    if not probs:
        raise CnnlabError("an ensemble needs at least one model")
    shapes = {tuple(p.shape) for p in probs}
    if len(shapes) != 1:
        raise CnnlabError(f"probabilities of different shapes cannot be averaged: {shapes}")
    return torch.stack([p.float() for p in probs]).mean(dim=0)


def scores(probs: Any, labels: Any) -> Scores:
    """:class:`Scores` of (N, classes) probabilities against (N,) int labels."""
    import torch

    n, k = probs.shape
    if labels.shape != (n,):
        raise CnnlabError(f"{n} rows of probabilities but labels of shape {tuple(labels.shape)}")
    labels = labels.to(torch.int64)
    p_true = probs.gather(1, labels[:, None])[:, 0].double()
    # A probability that underflowed to 0 costs -log(smallest normal float32), not infinity.
    loss = float(-torch.log(p_true.clamp_min(torch.finfo(torch.float32).tiny)).mean())
    best = probs.topk(min(5, k), dim=1).indices
    top1 = int((best[:, 0] == labels).sum()) / n
    top5 = int((best == labels[:, None]).any(dim=1).sum()) / n
    return Scores(loss=loss, top1=top1, top5=top5, n=n)


def ensemble_runs(
    runs: Sequence[Any],
    *,
    data: str | None = None,
    data_dir: str | Path | None = None,
    weights: str = "best",
) -> EnsembleResult:
    """Average the softmax outputs of ``runs`` (opened :class:`~cnnlab.train.run.Run` s) on
    the test split of ``data`` (default: the first run's dataset) and score each member and
    the ensemble.  Runs with different class lists or input shapes are refused, naming both.
    """
    from cnnlab.train.evaluate import probabilities
    from cnnlab.train.runs import check_compatible, measured_as, run_split

    runs = list(runs)
    if len(runs) < 2:
        raise CnnlabError(f"an ensemble needs at least 2 runs, got {len(runs)}")
    check_compatible(runs)
    ds = run_split(runs[0], "test", data=data, data_dir=data_dir)
    member_probs, member_scores = [], []
    for run in runs:
        model = run.build_model(weights)
        how = measured_as(run, ds.info)  # each member as it measured itself
        p = probabilities(model, ds.images, run.mean, run.std, **how)
        member_probs.append(p)
        member_scores.append(scores(p, ds.labels))
    mean = average_probabilities(member_probs)
    return EnsembleResult(
        runs=[r.path for r in runs],
        members=member_scores,
        ensemble=scores(mean, ds.labels),
        dataset=ds.name,
        split=ds.split,
        probabilities=mean,
    )
