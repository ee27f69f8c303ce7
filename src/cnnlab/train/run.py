"""The run folder: what one training run leaves behind, and how a later command reads it.

A run folder (``cnnlab train ... --out DIR``; default ``runs/<model>-<dataset>-<timestamp>``)
holds, every file written atomically (temporary file, fsync, rename)::

    config.toml                 the resolved configuration (recipe, target, dataset, seed,
                                device, precision, threads, versions, git revision)
    metrics.jsonl, metrics.csv  one row per epoch, then one row with "final": true
    steps.jsonl                 each step's loss and lr (only with log_steps)
    checkpoints/step-N.safetensors  the newest two checkpoints (cnnlab.train.checkpoint)
    weights/final.safetensors   the weights at the end (or where an interruption stopped)
    weights/best.safetensors    the weights of the epoch with the best validation top-1
    summary.json                ``analyze(model, input_shape, batch).to_dict()``
    final.json                  the test split's per-class accuracy and confusion matrix
    events.out.tfevents.*       TensorBoard curves, when ``tensorboard`` is installed

Each weights file carries the model's **construction record** in its safetensors metadata
(key ``"cnnlab"``, a JSON object), so a weights file rebuilds its own model:

* ``kind``: ``"zoo"``, ``"notation"`` or ``"file"``; ``target``: the text the user gave
  (``"lenet5"``, ``"conv3-32-relu-maxpool-fc-10"``, ``"net.py:make"``); ``file``: the
  absolute path of a ``file`` target; ``kwargs``: further construction arguments;
* ``in_channels``, ``input_size`` ([H, W]), ``num_classes``, ``classes`` (names);
* ``mean``, ``std``: the per-channel normalisation the pipeline applied, in pixel/255 units
  (``x = (pixel / 255 - mean) / std``); ``dataset``: the dataset's name.

The metadata also holds ``"sha256"``, the hash of the tensor payload, so a damaged file is
detected when it is read, not trusted (safetensors itself only checks the header and sizes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab import _io
from cnnlab.errors import CnnlabError
from cnnlab.train.tensorfile import check_state, split_safetensors

__all__ = [
    "CONFIG_FILE",
    "METRICS_CSV",
    "METRICS_FILE",
    "RECORD_KEYS",
    "Run",
    "RunWriter",
    "STEPS_FILE",
    "build_from_record",
    "create_run_dir",
    "environment",
    "load_weights",
    "open_run",
    "read_record",
    "save_weights",
]

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
STEPS_FILE = "steps.jsonl"
WEIGHTS_DIR = "weights"
SUMMARY_FILE = "summary.json"
FINAL_FILE = "final.json"
_REQUIRED = (CONFIG_FILE, METRICS_FILE, f"{WEIGHTS_DIR}/final.safetensors")
_META_KEY = "cnnlab"
_HASH_KEY = "sha256"
RECORD_KEYS = (
    "kind",
    "target",
    "kwargs",
    "in_channels",
    "input_size",
    "num_classes",
    "classes",
    "mean",
    "std",
    "dataset",
)
_KINDS = ("zoo", "notation", "file")
# The first columns of metrics.csv, in this order; any other key of a row follows them.
_CSV_FIRST = (
    "epoch",
    "final",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "test_loss",
    "test_top1",
    "test_top5",
    "lr",
    "seconds",
    "images_per_s",
)


# ---- weights with their construction record ------------------------------------------------
def save_weights(path: str | Path, model: Any, record: Mapping[str, Any]) -> Path:
    """Write ``model``'s ``state_dict`` (on the CPU) to ``path`` as safetensors, with
    ``record`` (see the module doc) and the payload's hash in the metadata, atomically."""
    from safetensors.torch import save

    _check_record(record, str(path))
    tensors = {
        # Copies: safetensors refuses tensors that share memory (tied weights, views).
        name: t.detach().to("cpu").contiguous().clone()
        for name, t in model.state_dict().items()
    }
    meta = {_META_KEY: json.dumps(dict(record), sort_keys=True)}
    payload = split_safetensors(save(tensors, metadata=meta), str(path))[1]
    meta[_HASH_KEY] = hashlib.sha256(payload).hexdigest()
    path = Path(path)
    _io.atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """The construction record of a bare weights file (see the module doc).

    Raises :class:`CnnlabError` naming the file when it is missing, is not safetensors, or
    carries no cnnlab record.
    """
    header, _ = _read_checked(Path(path), verify_payload=False)
    return _record_from_header(header, str(path))


def load_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, tensors) of a weights file; the payload is checked against its hash."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    header, data = _read_checked(path, verify_payload=True)
    record = _record_from_header(header, str(path))
    try:
        tensors = load(data)
    except SafetensorError as exc:
        raise CnnlabError(f"{path}: damaged weights file ({exc})") from None
    return record, tensors


def build_from_record(record: Mapping[str, Any], where: str = "record") -> Any:
    """Build (untrained) the model a construction record describes, on the CPU in float32."""
    from cnnlab.zoo.target import load_target

    _check_record(record, where)
    c, (h, w) = int(record["in_channels"]), record["input_size"]
    text = record["target"]
    if record["kind"] == "file" and record.get("file") and Path(record["file"]).is_file():
        text = str(record["file"]) + ":" + text.rpartition(":")[2]
    target = load_target(
        text,
        input_size=(c, int(h), int(w)),
        num_classes=int(record["num_classes"]),
        options=dict(record.get("kwargs") or {}),
    )
    return target.model


def _read_checked(path: Path, verify_payload: bool) -> tuple[dict[str, Any], bytes]:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such weights file") from None
    except OSError as exc:
        raise CnnlabError(f"{path}: cannot read the weights file ({exc.strerror})") from None
    header, payload = split_safetensors(blob, str(path))
    if verify_payload:
        expected = (header.get("__metadata__") or {}).get(_HASH_KEY)
        if expected is not None and hashlib.sha256(payload).hexdigest() != expected:
            raise CnnlabError(
                f"{path}: damaged weights file (the tensor data do not match the SHA-256 "
                "recorded when it was written)"
            )
    return header, blob


def _record_from_header(header: dict[str, Any], where: str) -> dict[str, Any]:
    meta = header.get("__metadata__") or {}
    text = meta.get(_META_KEY) if isinstance(meta, dict) else None
    if text is None:
        raise CnnlabError(
            f"{where}: safetensors without a cnnlab construction record (metadata key "
            f"{_META_KEY!r}); it was not written by cnnlab train"
        )
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise CnnlabError(f"{where}: damaged construction record (not JSON)") from None
    _check_record(record, where)
    return record


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, Mapping):
        raise CnnlabError(f"{where}: the construction record is not a JSON object")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise CnnlabError(f"{where}: construction record lacks {', '.join(missing)}")
    if record["kind"] not in _KINDS:
        raise CnnlabError(
            f"{where}: construction record kind {record['kind']!r}; expected one of "
            + ", ".join(_KINDS)
        )
    size = record["input_size"]
    if not (isinstance(size, list | tuple) and len(size) == 2):
        raise CnnlabError(f"{where}: construction record input_size {size!r}; expected [H, W]")
    c = record["in_channels"]
    for key in ("mean", "std"):
        if not (isinstance(record[key], list | tuple) and len(record[key]) == c):
            raise CnnlabError(
                f"{where}: construction record {key} {record[key]!r}; expected {c} values"
            )
    if len(record["classes"]) != record["num_classes"]:
        raise CnnlabError(
            f"{where}: construction record has {len(record['classes'])} class names for "
            f"{record['num_classes']} classes"
        )


# ---- reading a run ---------------------------------------------------------------------------
@dataclass
class Run:
    """A run folder, opened (see :func:`open_run`).

    ``config``: ``config.toml`` as a dict; ``metrics``: every row of ``metrics.jsonl`` (epoch
    rows, then the final row, which has ``"final": true``); ``record``: the construction
    record of ``weights/final.safetensors``.
    """

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    record: dict[str, Any]
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.record["classes"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the model takes."""
        h, w = self.record["input_size"]
        return (int(self.record["in_channels"]), int(h), int(w))

    @property
    def dataset(self) -> str:
        return str(self.record["dataset"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.record["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.record["std"])

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The per-epoch rows of ``metrics``."""
        return [m for m in self.metrics if not m.get("final")]

    @property
    def final(self) -> dict[str, Any] | None:
        """The final row (test metrics; ``"stopped"`` says why it ended), or None."""
        rows = [m for m in self.metrics if m.get("final")]
        return rows[-1] if rows else None

    def weights_path(self, weights: str = "best") -> Path:
        if weights not in ("best", "final"):
            raise CnnlabError(f"weights {weights!r}: expected 'best' or 'final'")
        return self.path / WEIGHTS_DIR / f"{weights}.safetensors"

    def build_model(self, weights: str = "best") -> Any:
        """The run's model with its ``weights`` ("best" or "final") loaded: CPU, float32,
        eval mode.  A damaged or mismatched file is a :class:`CnnlabError` naming the file
        and, for a mismatch, the tensor."""
        import torch

        path = self.weights_path(weights)
        record, tensors = load_weights(path)
        model = build_from_record(record, str(path))
        expected = model.state_dict()
        check_state(str(path), tensors, expected)
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
        model.to(device="cpu", dtype=torch.float32)
        return model.eval()


def open_run(path: str | Path) -> Run:
    """Open a run folder.  Raises :class:`CnnlabError` naming the folder when it is not a
    run, or the missing or damaged file when it is incomplete."""
    path = Path(path)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise CnnlabError(f"{path}: {what}; expected a run folder written by cnnlab train")
    present = [name for name in _REQUIRED if (path / name).is_file()]
    if not present:
        raise CnnlabError(
            f"{path}: not a run folder (no {', '.join(_REQUIRED)}); cnnlab train writes them"
        )
    missing = [name for name in _REQUIRED if name not in present]
    if missing:
        raise CnnlabError(f"{path}: incomplete run, {missing[0]} is missing")
    config = read_config(path / CONFIG_FILE)
    metrics = read_metrics(path / METRICS_FILE)
    record = read_record(path / WEIGHTS_DIR / "final.safetensors")
    return Run(path=path, config=config, metrics=metrics, record=record)


def read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise CnnlabError(f"{path}: not valid TOML ({exc})") from None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise CnnlabError(f"{path}, line {n}: not a JSON object") from None
        if not isinstance(row, dict):
            raise CnnlabError(f"{path}, line {n}: not a JSON object")
        rows.append(row)
    return rows


# ---- writing a run ---------------------------------------------------------------------------
def create_run_dir(out: str | Path | None, default_name: str, root: str | Path = "runs") -> Path:
    """Create the run folder: ``out`` itself (refused when it exists and is not empty), or
    ``root/default_name`` (``-2``, ``-3``... appended rather than reuse an existing one)."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            what = "is a file" if not path.is_dir() else "exists and is not empty"
            raise CnnlabError(
                f"--out {path}: {what}; a run never overwrites another, give a new folder"
            )
        (path / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
        return path
    base = Path(root) / default_name
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        (path / WEIGHTS_DIR).mkdir()
        return path
    raise CnnlabError(f"{base}: too many runs of that name; give --out")  # pragma: no cover


class RunWriter:
    """Writes one run folder as training goes (used by :func:`cnnlab.train.fit`).

    ``record`` is the construction record saved with each weights file.  Every method
    rewrites its file atomically, so the folder is consistent after any interruption.
    """

    def __init__(
        self, path: str | Path, record: Mapping[str, Any], *, tensorboard: bool = True
    ) -> None:
        self.path = Path(path)
        _check_record(record, "construction record")
        self.record = dict(record)
        self.rows: list[dict[str, Any]] = []
        (self.path / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
        self._tb = _tensorboard_writer(self.path) if tensorboard else None
        self._steps: Any = None

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard event files are written (``tensorboard`` is installed)."""
        return self._tb is not None

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def write_config(self, config: Mapping[str, Any]) -> None:
        import tomli_w

        _io.atomic_write_text(self.path / CONFIG_FILE, tomli_w.dumps(_tomlable(config)))

    def write_json(self, name: str, obj: Any) -> None:
        text = json.dumps(_jsonable(obj), indent=1) + "\n"
        _io.atomic_write_text(self.path / name, text)

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one metrics row (rewrites metrics.jsonl and metrics.csv)."""
        self.rows.append(_jsonable(dict(row)))
        lines = "".join(json.dumps(r) + "\n" for r in self.rows)
        _io.atomic_write_text(self.path / METRICS_FILE, lines)
        _io.atomic_write_text(self.path / METRICS_CSV, _csv(self.rows))
        if self._tb is not None and not row.get("final"):
            numbers = {
                k: v
                for k, v in row.items()
                if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch"
            }
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, global_step=row.get("epoch", 0))
            self._tb.flush()

    def save_weights(self, model: Any, name: str) -> Path:
        return save_weights(self.path / WEIGHTS_DIR / f"{name}.safetensors", model, self.record)

    def load_weights(self, name: str) -> dict[str, Any]:
        """The tensors of this run's ``weights/<name>.safetensors`` (checked)."""
        return load_weights(self.path / WEIGHTS_DIR / f"{name}.safetensors")[1]

    def log_step(self, row: Mapping[str, Any]) -> None:
        """Append one step's row to ``steps.jsonl`` (appended, not rewritten: a line cut
        by a crash is dropped when the run resumes)."""
        if self._steps is None:
            self._steps = open(self.path / STEPS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._steps.write(json.dumps(_jsonable(dict(row))) + "\n")
        self._steps.flush()

    def restart(self, history: list[dict[str, Any]], step: int) -> None:
        """Continue this run from a checkpoint: the metrics are its ``history`` again (the
        rows written after it are dropped), and ``steps.jsonl`` keeps steps <= ``step``."""
        lines = "".join(json.dumps(_jsonable(r)) + "\n" for r in history)
        self.rows = [_jsonable(dict(r)) for r in history]
        _io.atomic_write_text(self.path / METRICS_FILE, lines)
        _io.atomic_write_text(self.path / METRICS_CSV, _csv(self.rows) if self.rows else "")
        steps = self.path / STEPS_FILE
        if steps.is_file():
            kept = []
            for line in steps.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # cut by the crash
                if isinstance(row, dict) and int(row.get("step", step + 1)) <= step:
                    kept.append(line + "\n")
            _io.atomic_write_text(steps, "".join(kept))


def _tensorboard_writer(path: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` into ``path``, or None without ``tensorboard``."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(path))


def environment(threads: int | None = None, device: Any = None) -> dict[str, Any]:
    """Versions and machine facts saved with a run: cnnlab, torch, Python, the git revision
    of cnnlab's source when it is a checkout, the CPU, the CUDA device, threads."""
    import platform
    import subprocess

    import torch

    import cnnlab

    env: dict[str, Any] = {
        "cnnlab": cnnlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads if threads is not None else torch.get_num_threads(),
    }
    if device is not None and getattr(device, "type", device) == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    src = Path(cnnlab.__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        env["git"] = rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass  # not a checkout (an installed wheel), or no git
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _csv(rows: list[dict[str, Any]]) -> str:
    keys = [k for k in _CSV_FIRST if any(k in r for r in rows)]
    keys += sorted({k for r in rows for k in r} - set(keys))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r[k] for k in keys})
    return buf.getvalue()


def _jsonable(obj: Any) -> Any:
    """Plain JSON values: tuples become lists, non-finite floats become None."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _tomlable(obj: Any) -> Any:
    """TOML has no null: keys whose value is None are left out (read back as absent)."""
    if isinstance(obj, Mapping):
        return {str(k): _tomlable(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [_tomlable(v) for v in obj if v is not None]
    return obj
