"""Loading someone else's weights (a torchvision-style ``state_dict``) into a zoo model,
without ever running code from the file.

``.safetensors`` files hold tensors and JSON only.  ``.pth`` / ``.pt`` files are pickles:
they are read only with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler,
which rebuilds tensors and plain containers and refuses every other global (PyTorch's
SECURITY.md: loading an untrusted checkpoint with ``weights_only=False`` "MUST never be
done"), so a file crafted to run code is refused, not run.

Names: a ``state_dict`` whose keys are the model's own (torchvision's ResNets share the
paper's names with cnnlab's) is loaded key by key.  torchvision numbers AlexNet's and VGG's
layers by position (``features.0.weight``), where cnnlab uses the papers' names
(``conv1.weight``, ``conv1_1.weight``); such a file is matched in order, when every tensor's
shape agrees with the model's tensor at the same position.
"""

from __future__ import annotations

import itertools
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["load_pretrained", "read_state_dict"]

_PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``state_dict`` file: ``.safetensors``, or ``.pth``/``.pt`` read with
    ``torch.load(weights_only=True)`` (a ``{"state_dict": ...}`` or ``{"model": ...}``
    wrapper is unwrapped).  Raises :class:`CnnlabError` naming the file when it is missing,
    empty, truncated, of another format, or holds anything but tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise CnnlabError(f"{path}: empty weights file")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CnnlabError(f"{path}: damaged safetensors file ({exc})") from None
    if path.suffix not in _PICKLE_SUFFIXES:
        raise CnnlabError(
            f"{path}: unknown weights format {path.suffix!r}; valid: .safetensors, or a "
            f"torch.save state_dict ({', '.join(_PICKLE_SUFFIXES)})"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CnnlabError(
            f"{path}: refused: it holds more than tensors ({first}); cnnlab loads .pth files "
            "only with torch.load(weights_only=True), which never runs code from a file"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CnnlabError(f"{path}: damaged or not a torch.save file ({exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CnnlabError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CnnlabError(f"{path}: entry {bad[0]!r} is not a tensor; expected a state_dict")
    return {str(k): v for k, v in obj.items()}


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, str]:
    """Load the ``state_dict`` file ``path`` into ``model`` (see the module doc); returns
    the mapping used, file key -> model key.  Every tensor of the model must be given, with
    its shape; otherwise a :class:`CnnlabError` names the file and the tensor."""
    tensors = read_state_dict(path)
    mine = model.state_dict()
    if set(tensors) == set(mine):
        mapping = {k: k for k in mine}
    elif len(tensors) == len(mine):
        mapping = _by_position(tensors, mine, path)
    else:
        missing = sorted(set(mine) - set(tensors))
        name = missing[0] if missing else sorted(set(tensors) - set(mine))[0]
        what = "is missing (the model has it)" if missing else "does not belong to the model"
        raise CnnlabError(
            f"{path}: tensor {name!r} {what}; the file has {len(tensors)} tensors, the model "
            f"{len(mine)}"
        )
    for theirs, ours in mapping.items():
        t, m = tensors[theirs], mine[ours]
        if tuple(t.shape) != tuple(m.shape):
            raise CnnlabError(
                f"{path}: tensor {theirs!r} has shape {tuple(t.shape)}; the model needs "
                f"{tuple(m.shape)}"
            )
        if t.is_floating_point() != m.is_floating_point():
            raise CnnlabError(f"{path}: tensor {theirs!r} is {t.dtype}, the model's {m.dtype}")
    model.load_state_dict({ours: tensors[theirs].to(mine[ours].dtype) for theirs, ours in
                           mapping.items()})  # fmt: skip
    return mapping


# The order in which torch registers a layer's tensors (state_dict order within a layer).
_TENSOR_ORDER = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _natural(name: str) -> tuple:
    """``features.10.weight`` after ``features.8.bias``: numbers compare as numbers, and a
    layer's tensors come in torch's order (weight, bias, BatchNorm's statistics)."""
    *layers, last = name.split(".")
    tail = _TENSOR_ORDER.index(last) if last in _TENSOR_ORDER else len(_TENSOR_ORDER)
    return (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in layers),
        tail,
        last,
    )


def _by_position(
    tensors: dict[str, torch.Tensor], mine: dict[str, torch.Tensor], path: Path | str
) -> dict[str, str]:
    """File key -> model key, matching tensors in order by their shapes.

    A pickled state_dict keeps its order.  A safetensors file does not (it stores tensors
    sorted), so its keys are put in layer order: numbered layers by number within each
    top-level block (``features``, ``classifier``), the blocks in the one order in which
    every shape fits the model's.
    """
    shapes = [tuple(m.shape) for m in mine.values()]

    def fits(order: list[str]) -> bool:
        return [tuple(tensors[k].shape) for k in order] == shapes

    candidates = [list(tensors)]
    blocks = list(dict.fromkeys(k.split(".")[0] for k in sorted(tensors, key=_natural)))
    if len(blocks) <= 4:
        for perm in itertools.permutations(blocks):
            rank = {b: i for i, b in enumerate(perm)}
            order = sorted(tensors, key=lambda k: (rank[k.split(".")[0]], _natural(k)))
            if order not in candidates:
                candidates.append(order)
    for order in candidates:
        if fits(order):
            return dict(zip(order, mine, strict=True))
    theirs = candidates[0]
    for k, ours in zip(theirs, mine, strict=True):
        if tuple(tensors[k].shape) != tuple(mine[ours].shape):
            raise CnnlabError(
                f"{path}: tensor {k!r} has shape {tuple(tensors[k].shape)}, and the model's "
                f"tensor at its position, {ours!r}, has {tuple(mine[ours].shape)}; not weights "
                "of this model (their names differ from the model's, so they are matched in "
                "order)"
            )
    raise CnnlabError(f"{path}: its tensors do not fit the model in any order")  # pragma: no cover
