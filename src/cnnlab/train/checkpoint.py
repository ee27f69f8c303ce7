"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one safetensors file, ``RUN/checkpoints/step-<STEP>.safetensors``: tensors,
plus JSON in the safetensors metadata; nothing is ever pickled, so loading one cannot run
code.  It holds

* tensors: the model's ``state_dict`` (``model/<name>``), every tensor of the optimizer's
  state (``optimizer/<param index>/<key>``, momentum buffers, Adam's moments and steps), the
  torch CPU and CUDA generator states (``rng/torch``, ``rng/cuda/<device>``) and the running
  sums of the epoch in progress (``epoch/loss_sum``, ``epoch/correct``);
* JSON (metadata key ``"cnnlab_checkpoint"``): the step, the epoch and the position in it
  (the pipeline resumes with ``epoch(e, start=batch)``), the optimizer's parameter groups and
  scalar state, the schedule's plateau state, the best validation top-1 and its epoch (the
  early-stopping state), the metrics rows so far, Python's and NumPy's generator states as
  plain ints, the resolved configuration and the model's construction record.

The metadata's ``"sha256"`` is the hash of the rest of the file (its header, re-serialised
canonically without that key, then the tensor bytes), checked whenever a checkpoint is
read.  Files are written atomically (:func:`cnnlab._io.atomic_write_bytes`: a temporary file
in the same folder, fsync, rename, fsync of the folder) and the newest :data:`KEEP` are
kept, so a crash or a full disk while saving leaves the previous checkpoint intact, and a
damaged newest one falls back to the one before, saying so (:func:`load_checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab import _io
from cnnlab.errors import CnnlabError
from cnnlab.train.tensorfile import check_state, split_safetensors

__all__ = [
    "CHECKPOINT_DIR",
    "KEEP",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_paths",
    "compare_config",
    "load_checkpoint",
    "read_checkpoint",
    "restore",
    "save_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
KEEP = 2  # the newest two: the newest may be the one a crash interrupted
FORMAT = 1
_META_KEY = "cnnlab_checkpoint"
_HASH_KEY = "sha256"
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


class CheckpointError(CnnlabError):
    """A checkpoint that cannot be written, read or trusted; the message names the file."""


@dataclass
class Checkpoint:
    """A checkpoint as read back: ``state`` (the JSON part), ``tensors`` (name -> tensor),
    ``path`` it came from and ``notes`` (what :func:`load_checkpoint` had to skip)."""

    path: Path
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.state.get("config") or {})

    def model_state(self) -> dict[str, torch.Tensor]:
        return {k[6:]: v for k, v in self.tensors.items() if k.startswith("model/")}


# ---- writing ---------------------------------------------------------------------------------
def _rng_json() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [
            np_state[0],
            [int(v) for v in np_state[1]],
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
    }


def _optimizer_parts(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return {"param_groups": sd["param_groups"], "scalars": scalars}, tensors


def save_checkpoint(folder: str | Path, state: Any, extra: dict[str, Any]) -> Path:
    """Write ``state`` (a :class:`~cnnlab.train.state.TrainState`) and ``extra`` (JSON:
    the epoch's running counts, the configuration, the record) as the checkpoint of its
    step in ``folder``, atomically, then delete all but the newest :data:`KEEP`.

    Raises :class:`CheckpointError` when it cannot be written (a full disk, a file-size
    limit, no permission); the checkpoints already there are then left as they were.
    """
    from safetensors.torch import save

    folder = Path(folder)
    opt_json, opt_tensors = _optimizer_parts(state.optimizer)
    tensors: dict[str, torch.Tensor] = {
        f"model/{k}": v for k, v in state.model.state_dict().items()
    }
    tensors.update(opt_tensors)
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    for key, value in (extra.pop("tensors", None) or {}).items():
        tensors[key] = value
    # Copies on the CPU: safetensors refuses shared memory (tied weights, views).
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    body = {
        "format": FORMAT,
        "step": state.step,
        "epoch": state.epoch,
        "batch": state.batch,
        "best_top1": state.best_top1,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "schedule": state.schedule.state_dict(),
        "optimizer": opt_json,
        "rng": _rng_json(),
        **extra,
    }
    meta = {_META_KEY: json.dumps(body, sort_keys=True)}
    blob = save(tensors, metadata=meta)
    header, payload = _split(blob, "checkpoint")
    meta[_HASH_KEY] = _digest(header, payload)
    blob = save(tensors, metadata=meta)
    path = folder / f"step-{state.step:09d}.safetensors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _io.atomic_write_bytes(path, blob)
    except OSError as exc:
        kept = checkpoint_paths(folder)
        before = f"the previous checkpoint {kept[0]} is intact" if kept else "no checkpoint yet"
        raise CheckpointError(
            f"{path}: cannot write the checkpoint ({exc.strerror or exc}); {before}"
        ) from None
    for old in checkpoint_paths(folder)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


# ---- reading ---------------------------------------------------------------------------------
def checkpoint_paths(folder: str | Path) -> list[Path]:
    """The checkpoint files in ``folder``, newest (highest step) first; temporary files of
    an interrupted write never count."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _split(blob: bytes, where: str) -> tuple[dict[str, Any], bytes]:
    """(header, tensor bytes) of a checkpoint's bytes, without trusting it."""
    return split_safetensors(blob, where, "checkpoint", CheckpointError)


def _digest(header: dict[str, Any], payload: bytes) -> str:
    meta = dict(header.get("__metadata__") or {})
    meta.pop(_HASH_KEY, None)
    canonical = json.dumps({**header, "__metadata__": meta}, sort_keys=True, separators=(",", ":"))
    h = hashlib.sha256(canonical.encode())
    h.update(payload)
    return h.hexdigest()


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify one checkpoint file.  Raises :class:`CheckpointError` naming the file
    when it is missing, empty, truncated, not safetensors (a pickle included: it is never
    unpickled), or its content does not match its recorded SHA-256."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    header, payload = _split(blob, str(path))
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise CheckpointError(f"{path}: not a cnnlab checkpoint (no {_META_KEY!r} metadata)")
    if meta.get(_HASH_KEY) != _digest(header, payload):
        raise CheckpointError(
            f"{path}: damaged checkpoint (its content does not match the SHA-256 recorded "
            "when it was written)"
        )
    try:
        state = json.loads(meta[_META_KEY])
        tensors = load(blob)
    except (json.JSONDecodeError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc})") from None
    if state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {state.get('format')!r}; this cnnlab reads {FORMAT}"
        )
    return Checkpoint(path=path, state=state, tensors=tensors)


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """The newest valid checkpoint in ``folder``.  A damaged newer one is skipped, and
    ``notes`` of the result says which and why; none valid is a :class:`CheckpointError`."""
    folder = Path(folder)
    paths = checkpoint_paths(folder)
    if not paths:
        raise CheckpointError(
            f"{folder}: no checkpoint to resume from (cnnlab train writes one every epoch, "
            "every --checkpoint-every steps and when stopped)"
        )
    notes: list[str] = []
    for path in paths:
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            notes.append(str(exc))
            continue
        ckpt.notes = [f"{n}; resuming from the previous one, {path.name}" for n in notes]
        return ckpt
    raise CheckpointError("; ".join(notes) + "; no valid checkpoint is left")


def restore(state: Any, ckpt: Checkpoint) -> None:
    """Put ``ckpt`` into ``state`` (a :class:`~cnnlab.train.state.TrainState` built for the
    same model and recipe): weights, optimizer, schedule, counters and every generator.
    A checkpoint of another model is a :class:`CheckpointError` naming the tensor."""
    where = ckpt.path
    weights = ckpt.model_state()
    check_state(str(where), weights, state.model.state_dict(), CheckpointError)
    state.model.load_state_dict(weights)

    s = ckpt.state
    opt = s["optimizer"]
    current = state.optimizer.state_dict()
    if len(current["param_groups"]) != len(opt["param_groups"]):
        raise CheckpointError(f"{where}: the optimizer has another number of parameter groups")
    groups = []
    for now, saved in zip(current["param_groups"], opt["param_groups"], strict=True):
        # JSON has no tuples: give back the optimizer's own types (Adam's betas).
        groups.append(
            {k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in saved.items()}
        )
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in ckpt.tensors.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            per_param.setdefault(int(index), {})[key] = value
    for index, scalars in opt["scalars"].items():
        per_param.setdefault(int(index), {}).update(scalars)
    try:
        state.optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: its optimizer state does not fit ({exc})") from None
    state.schedule.load_state_dict(s["schedule"])
    state.step, state.epoch, state.batch = int(s["step"]), int(s["epoch"]), int(s["batch"])
    state.best_top1, state.best_epoch = float(s["best_top1"]), s["best_epoch"]
    state.history = list(s["history"])

    torch.set_rng_state(ckpt.tensors["rng/torch"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"rng/cuda/{i}" in ckpt.tensors:
                torch.cuda.set_rng_state(ckpt.tensors[f"rng/cuda/{i}"], i)
    version, internal, gauss = s["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = s["rng"]["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def rank_generators(distributed: bool) -> dict[str, torch.Tensor]:
    """The torch generator state of every rank but rank 0 (whose :func:`save_checkpoint`
    saves itself) as checkpoint tensors ``rng/rank{r}/torch``; a collective, called on every
    rank.  Empty in one process."""
    if not distributed:
        return {}
    from cnnlab.train.distributed import all_gather_states

    gathered = all_gather_states({"torch": torch.get_rng_state()})
    return {f"rng/rank{r}/torch": states["torch"] for r, states in enumerate(gathered[1:], 1)}


def restore_rank_generator(ckpt: Checkpoint, rank: int, seed: int) -> None:
    """Give rank ``rank`` (> 0) the torch generator :func:`rank_generators` saved for it; a
    checkpoint saved with fewer ranks has none: then a fresh stream of this rank and step."""
    if not rank:
        return
    own = f"rng/rank{rank}/torch"
    if own in ckpt.tensors:
        torch.set_rng_state(ckpt.tensors[own])
    else:
        from cnnlab.data.dataset import derive_seed

        torch.manual_seed(derive_seed(seed, "rank", rank, "step", ckpt.step))


def compare_config(saved: dict[str, Any], now: dict[str, Any], may_change: tuple[str, ...]):
    """Raise :class:`CheckpointError` naming the first key (``recipe.batch_size``, ``target``)
    where ``now`` contradicts ``saved``, unless its last part is in ``may_change``."""

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
        return out

    a, b = flat(saved), flat(now)
    for key in sorted(set(a) | set(b)):
        if key.rpartition(".")[2] in may_change:
            continue
        if a.get(key) != b.get(key):
            raise CheckpointError(
                f"{key} is {a.get(key)!r} in the run and {b.get(key)!r} now; a resumed run "
                f"keeps its configuration (only {', '.join(may_change)} may change)"
            )
