"""Exporting a trained model: ONNX, TorchScript or safetensors, checked before it is written.

* ``"onnx"``: torch's ``torch.export``-based exporter, one input ``images`` (N, C, H, W)
  float32, normalised as in training, with a **dynamic batch dimension**, and one output
  ``logits`` (N, classes) (softmax them for probabilities).  The model is checked with
  ``onnx.checker`` and, where ``onnxruntime`` is installed, run at batch sizes 1 and 3 against
  PyTorch (``rtol=1e-3, atol=1e-5``); a model that disagrees is not written.  The construction
  record (classes, mean, std, input size) is in the model's ``metadata_props`` under
  ``"cnnlab"``.  Needs the optional extra ``export`` (``onnx``, ``onnxscript``,
  ``onnxruntime``).
* ``"torchscript"``: ``torch.jit.trace`` at batch 2 (the traced graph takes any batch size),
  reloaded and compared at batch sizes 1 and 3; the record is the extra file
  ``cnnlab.json``.  PyTorch has deprecated TorchScript in favour of ``torch.export``; it is
  offered for C++ (libtorch) users.
* ``"safetensors"``: the ``state_dict`` with the construction record, exactly as a run's own
  weights files (:func:`cnnlab.train.run.save_weights`), read back and compared.

Every file is written atomically (:mod:`cnnlab._io`): an interrupted or refused export
leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab import _io
from cnnlab.errors import CnnlabError

__all__ = [
    "FORMATS",
    "RTOL",
    "ATOL",
    "ExportResult",
    "compare_onnx",
    "default_export_path",
    "export_model",
    "export_run",
]

# format -> file suffix
FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
RTOL, ATOL = 1e-3, 1e-5
_CHECK_BATCHES = (1, 3)
_EXTRA = "pip install 'cnnlab[export]'"


@dataclass(frozen=True)
class ExportResult:
    """Where the model went, in which format, how many bytes, and what was checked."""

    path: Path
    format: str
    bytes: int
    checked: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "bytes": self.bytes,
            "checked": self.checked,
        }


def default_export_path(run_path: str | Path, fmt: str, weights: str = "best") -> Path:
    """``RUN/export/<weights><suffix>``, e.g. ``runs/lenet5-.../export/best.onnx``."""
    return Path(run_path) / "export" / f"{weights}{FORMATS[_check_format(fmt)]}"


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise CnnlabError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def _check_out(out: Path) -> None:
    """Refuse early (before a slow export) an --out that cannot be written."""
    parent = out.parent
    if out.is_dir():
        raise CnnlabError(f"--out {out}: is a folder; give a file name")
    if not parent.exists():
        raise CnnlabError(f"--out {out}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise CnnlabError(f"--out {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CnnlabError(f"--out {out}: the folder {parent} is not writable")


def _write(out: Path, data: bytes) -> None:
    try:
        _io.atomic_write_bytes(out, data)
    except OSError as exc:
        raise CnnlabError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """The library never prints: silence the exporters' deprecation warnings and log lines
    (e.g. torch's ONNX registry noting that torchvision's operators are not installed)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _examples(input_shape: Sequence[int], batch: int, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    # Normalised images are roughly standard normal.
    return torch.randn(batch, *input_shape, generator=g)


def _close(ref: Any, got: Any, what: str, batch: int) -> float:
    """Max |difference|; raises CnnlabError when outside ``RTOL``/``ATOL``."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        raise CnnlabError(
            f"the {what} model gives outputs of shape {got.shape} at batch {batch}; PyTorch "
            f"gives {ref.shape}; not written"
        )
    diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
    if not np.allclose(got, ref, rtol=RTOL, atol=ATOL):
        raise CnnlabError(
            f"the {what} model disagrees with PyTorch at batch {batch} (max |difference| "
            f"{diff:.3g}, beyond rtol={RTOL:g}, atol={ATOL:g}); not written. This is a bug "
            "of the exporter for some layer of this model"
        )
    return diff


def compare_onnx(
    onnx_bytes: bytes,
    model: Any,
    inputs: Sequence[Any],
) -> float:
    """Run ``onnx_bytes`` with onnxruntime on each float32 batch of ``inputs`` and compare
    with ``model`` (PyTorch, eval mode); the largest |difference|.  Raises CnnlabError when
    any output is outside ``RTOL``/``ATOL``."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the library never prints
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        with torch.inference_mode():
            ref = _logits(model(x)).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        worst = max(worst, _close(ref, got, "ONNX", x.shape[0]))
    return worst


def _logits(out: Any) -> Any:
    return out[0] if isinstance(out, tuple | list) else out


def _onnx_bytes(model: Any, input_shape: Sequence[int], record: Mapping[str, Any] | None):
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise CnnlabError(
            f"ONNX export needs {exc.name}, in the optional extra 'export': {_EXTRA}"
        ) from None
    import torch

    batch = torch.export.Dim("batch", min=1)
    with _quiet_torch():
        try:
            program = torch.onnx.export(
                model,
                (_examples(input_shape, 2, 0),),
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
        except Exception as exc:  # the exporter's many error types: say which model failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CnnlabError(f"torch.onnx.export could not export this model: {first}") from exc
    proto = program.model_proto
    if record is not None:
        onnx.helper.set_model_props(proto, {"cnnlab": json.dumps(dict(record), sort_keys=True)})
    proto.doc_string = "cnnlab: input 'images' normalised (pixel/255 - mean) / std; output logits"
    data = proto.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    checked = "onnx.checker passed"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return data, checked + f"; onnxruntime not installed, outputs not compared ({_EXTRA})"
    inputs = [_examples(input_shape, b, b) for b in _CHECK_BATCHES]
    worst = compare_onnx(data, model, inputs)
    matches = f"onnxruntime matches PyTorch at batch 1 and 3 (max |diff| {worst:.1e})"
    return data, f"{checked}; {matches}"


def _torchscript_bytes(model: Any, input_shape: Sequence[int], record: Mapping[str, Any] | None):
    import torch

    extra = {"cnnlab.json": json.dumps(dict(record or {}), sort_keys=True)}
    with _quiet_torch():
        try:
            traced = torch.jit.trace(model, _examples(input_shape, 2, 0))
        except Exception as exc:
            raise CnnlabError(f"torch.jit.trace could not trace this model: {exc}") from exc
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files=extra)
        data = buf.getvalue()
        reloaded = torch.jit.load(io.BytesIO(data))  # our own bytes, just written
        worst = 0.0
        for b in _CHECK_BATCHES:
            x = _examples(input_shape, b, b)
            with torch.inference_mode():
                worst = max(
                    worst,
                    _close(_logits(model(x)), _logits(reloaded(x)), "TorchScript", b),
                )
    return data, f"reloaded; matches PyTorch at batch 1 and 3 (max |diff| {worst:.1e})"


def export_model(
    model: Any,
    input_shape: Sequence[int],
    fmt: str,
    out: str | Path,
    *,
    record: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Export ``model`` (any ``nn.Module`` taking (N, *input_shape) float32) to ``out`` in
    ``fmt`` (see the module doc).  ``record`` (a construction record, see
    :mod:`cnnlab.train.run`) travels with the file; ``"safetensors"`` needs it."""
    import torch

    fmt = _check_format(fmt)
    out = Path(out)
    _check_out(out)
    model = model.to("cpu", torch.float32).eval()
    shape = tuple(int(v) for v in input_shape)
    if fmt == "onnx":
        data, checked = _onnx_bytes(model, shape, record)
    elif fmt == "torchscript":
        data, checked = _torchscript_bytes(model, shape, record)
    else:
        return _export_safetensors(model, out, record)
    _write(out, data)
    return ExportResult(out, fmt, len(data), checked)


def _export_safetensors(model: Any, out: Path, record: Mapping[str, Any] | None) -> ExportResult:
    import torch

    from cnnlab.train.run import load_weights, save_weights

    if record is None:
        raise CnnlabError("safetensors export needs the model's construction record")
    try:
        save_weights(out, model, record)
    except OSError as exc:
        raise CnnlabError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    _, tensors = load_weights(out)
    state = model.state_dict()
    same = set(tensors) == set(state) and all(torch.equal(tensors[k], state[k]) for k in state)
    if not same:  # pragma: no cover - safetensors round trips exactly
        out.unlink(missing_ok=True)
        raise CnnlabError(f"{out}: the weights read back differ from the model's; removed")
    return ExportResult(out, "safetensors", out.stat().st_size, "read back; tensors identical")


def export_run(
    run: Any,
    fmt: str,
    out: str | Path | None = None,
    *,
    weights: str = "best",
) -> ExportResult:
    """Export ``run``'s ``weights`` ("best" or "final") to ``out`` (default
    :func:`default_export_path`) in ``fmt``."""
    fmt = _check_format(fmt)
    path = run.weights_path(weights)  # checks the name
    if out is None:
        out = default_export_path(run.path, fmt, weights)
        try:
            out.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise CnnlabError(f"{out.parent}: cannot be created ({exc.strerror})") from None
    model = run.build_model(weights)
    from cnnlab.train.run import read_record

    return export_model(model, run.input_shape, fmt, out, record=read_record(path))
