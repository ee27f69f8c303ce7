"""Classifying image files with a trained run: class names with their probabilities.

An image is brought to the run's input as the training data were made (the policies of image
folders, :func:`cnnlab.data.read_image`), and every conversion is reported:

* **colour mode** to the run's channels: colour to grey by ITU-R 601-2 luma
  (``L = 0.299 R + 0.587 G + 0.114 B``, Pillow's conversion), grey to RGB by repeating the
  grey value in R, G and B; alpha is dropped, palettes are expanded, 16-bit grey keeps its
  top 8 bits;
* **size**: scaled (one factor, bilinear) so that it covers the run's H x W, then the centre
  is cropped, as ``load_dataset("folder:...", image_size=...)`` does.

With ``strict=True`` an image that would need either conversion is refused, with a message
saying what the model expects.  A model with other than 1 or 3 input channels takes no image
files.  The probabilities are the softmax of the model's outputs, with the run's own
normalisation (:func:`cnnlab.train.evaluate.probabilities`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["Prediction", "load_images", "predict", "predict_files"]

_MODES = {1: "L", 3: "RGB"}
_MODE_WORDS = {"L": "grey", "RGB": "RGB"}


@dataclass(frozen=True)
class Prediction:
    """The classes of one image, most probable first: ``top`` is ``[(class name, p), ...]``.
    ``converted`` says what was done to the file (empty when it was used as it is)."""

    path: Path
    top: list[tuple[str, float]]
    converted: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "top": [{"class": c, "probability": p} for c, p in self.top],
            "converted": self.converted,
        }


def _expects(shape: Sequence[int]) -> str:
    c, h, w = shape
    return f"{w}x{h} {_MODE_WORDS[_MODES[c]]} images ({c}x{h}x{w}, CxHxW)"


def load_images(
    paths: Sequence[str | Path], input_shape: Sequence[int], *, strict: bool = False
) -> tuple[Any, list[str]]:
    """Decode ``paths`` for a model taking ``input_shape`` (C, H, W): uint8 tensor
    (N, C, H, W) and, per file, what was converted ("" for nothing).  See the module doc."""
    import numpy as np
    import torch

    from cnnlab.data import read_image

    c, h, w = (int(v) for v in input_shape)
    if c not in _MODES:
        raise CnnlabError(
            f"the model takes {c}-channel inputs; image files give 1 (grey) or 3 (RGB) "
            "channels, so it cannot classify them"
        )
    mode = _MODES[c]
    arrays, notes = [], []
    for path in paths:
        image = read_image(path, mode=mode, size=None if strict else (h, w))
        sh, sw = image.source_size
        channels_ok = image.source_mode == mode
        size_ok = (sh, sw) == (h, w)
        if strict and not (channels_ok and size_ok):
            raise CnnlabError(
                f"{path}: {sw}x{sh} {image.source_mode} image; the model expects "
                f"{_expects((c, h, w))} (without --strict it is converted: ITU-R 601 luma "
                "or grey to RGB, resized and centre-cropped)"
            )
        note = []
        if not channels_ok:
            note.append(f"{image.source_mode} -> {_MODE_WORDS[mode]}")
        if not size_ok:
            note.append(f"{sw}x{sh} -> {w}x{h}")
        arrays.append(image.pixels)
        notes.append(", ".join(note))
    if not arrays:
        raise CnnlabError("no image files given")
    return torch.from_numpy(np.stack(arrays)), notes


def _check_top(top: Any) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise CnnlabError(f"--top {top!r}: expected a whole number of classes >= 1")


def predict(
    model: Any,
    images: Any,
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    top: int = 5,
    flip: bool = False,
    precision: str = "fp32",
    channels_last: bool = False,
) -> list[list[tuple[str, float]]]:
    """The ``top`` most probable classes of each uint8 image (N, C, H, W) with their softmax
    probabilities, most probable first (``top`` is capped at the number of classes);
    ``flip``: with flip test-time augmentation (the logits of image and mirror averaged);
    ``precision`` and ``channels_last`` as :func:`~cnnlab.train.evaluate.evaluate` takes
    them."""
    from cnnlab.train.evaluate import probabilities

    _check_top(top)
    probs = probabilities(
        model, images, mean, std, flip=flip, precision=precision, channels_last=channels_last
    )
    if probs.shape[1] != len(classes):
        raise CnnlabError(
            f"the model gives {probs.shape[1]} outputs per image but has {len(classes)} class names"
        )
    values, indices = probs.topk(min(top, len(classes)), dim=1)
    return [
        [(classes[i], float(p)) for p, i in zip(vs.tolist(), ix.tolist(), strict=True)]
        for vs, ix in zip(values, indices, strict=True)
    ]


def predict_files(
    run: Any,
    paths: Sequence[str | Path],
    *,
    top: int = 5,
    weights: str = "best",
    strict: bool = False,
) -> list[Prediction]:
    """Classify image files with ``run`` (a :class:`~cnnlab.train.run.Run`): one
    :class:`Prediction` per file, in order, with the run's flip test-time augmentation when
    it measured with it (and in its precision).  A file that is not an image is a
    :class:`~cnnlab.errors.DataError` naming it."""
    from cnnlab.train.runs import measured_as

    _check_top(top)
    images, notes = load_images(paths, run.input_shape, strict=strict)
    model = run.build_model(weights)
    how = measured_as(run)
    tops = predict(model, images, run.classes, run.mean, run.std, top=top, **how)
    return [Prediction(Path(p), t, n) for p, t, n in zip(paths, tops, notes, strict=True)]
