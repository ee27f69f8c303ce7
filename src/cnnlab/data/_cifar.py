"""CIFAR-10/100 "python version" batches, read with a restricted unpickler.

The batches are Python 2 pickles (protocol 2).  ``pickle.load`` would run any callable a
crafted file names; following the "Restricting Globals" recipe of Python's pickle docs, the
unpickler here resolves only the three globals the official batches reference (numpy's array
reconstructor, ``numpy.ndarray`` and ``numpy.dtype``) and, for batches re-saved by Python 3 at
protocol 2, a latin-1-only stand-in for ``_codecs.encode``.  Everything else is refused before
it is imported.  After unpickling, the schema is checked (torchvision checks none of it): a dict
whose ``data`` is a uint8 array N x 3072 and whose labels are N ints in range.

Every failure, including the different exceptions a truncated pickle raises (``EOFError``,
``UnpicklingError``, ``ValueError`` ...), becomes one :class:`~cnnlab.errors.DataError`
naming the file.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import DataError

__all__ = [
    "ForbiddenGlobal",
    "parse_batch",
    "parse_meta",
    "read_tar_members",
    "restricted_loads",
]

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct  # type: ignore[no-redef]

_IMAGE_BYTES = 3 * 32 * 32  # one CIFAR image: 1024 red, then 1024 green, then 1024 blue bytes
# CIFAR-100's `train` (the largest file of either archive) holds about 155 MB.
MAX_MEMBER_BYTES = 256 << 20


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed names (or misused an allowed one)."""

    def __init__(self, name: str, misuse: str = "") -> None:
        super().__init__(name)
        self.name = name
        self.misuse = misuse


def _latin1_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes at protocol <= 2 as _codecs.encode(str, "latin1"); nothing else.
    if not isinstance(obj, str) or encoding.replace("_", "-").lower() not in ("latin1", "latin-1"):
        raise ForbiddenGlobal("_codecs.encode", "text through a codec other than latin1")
    return obj.encode("latin1")


# (module, name) -> the object it may resolve to.  Both numpy spellings of the reconstructor:
# the official batches say numpy.core.multiarray, numpy 2 writes numpy._core.multiarray.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(f"{module}.{name}") from None


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only numpy array reconstruction (see the module doc).

    Raises :class:`ForbiddenGlobal` for any other global and the usual pickle errors for
    malformed streams; :func:`parse_batch` turns both into :class:`DataError`.
    """
    return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _load(data: bytes, label: str) -> dict[str, Any]:
    try:
        obj = restricted_loads(data)
    except ForbiddenGlobal as exc:
        what = f"{exc.name} on {exc.misuse}" if exc.misuse else exc.name
        raise DataError(
            f"{label}: refused: the pickle asks for {what}, which a CIFAR batch never contains "
            "(only numpy arrays are allowed); the file may be malicious and was not executed"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, EOFError) or "truncated" in reason:
            reason = f"truncated ({reason})"
        raise DataError(f"{label}: not a readable CIFAR batch: {reason}") from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{label}: a CIFAR batch is a dict, this pickle holds a {type(obj).__name__}"
        )
    return obj


def parse_batch(
    data: bytes, label: str, *, label_key: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR batch file's bytes.

    ``label_key`` is ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100); ``label``
    names the file in error messages.
    """
    obj = _load(data, label)
    if "data" not in obj or label_key not in obj:
        missing = [k for k in ("data", label_key) if k not in obj]
        keys = ", ".join(sorted(map(str, obj))) or "none"
        raise DataError(f"{label}: missing key(s) {', '.join(missing)} (keys present: {keys})")
    images = obj["data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2:
        what = (
            f"a {images.dtype} array of shape {images.shape}"
            if isinstance(images, np.ndarray)
            else f"a {type(images).__name__}"
        )
        raise DataError(f"{label}: 'data' must be a uint8 array N x {_IMAGE_BYTES}, found {what}")
    if images.shape[1] != _IMAGE_BYTES:
        raise DataError(
            f"{label}: 'data' rows hold {images.shape[1]} bytes, a 32x32 RGB image has "
            f"{_IMAGE_BYTES}"
        )
    raw_labels = obj[label_key]
    if not isinstance(raw_labels, list | np.ndarray) or len(raw_labels) != images.shape[0]:
        n = len(raw_labels) if hasattr(raw_labels, "__len__") else "no"
        raise DataError(
            f"{label}: {images.shape[0]} images but {n} entries in {label_key!r}; "
            "each image needs one label"
        )
    if isinstance(raw_labels, np.ndarray):
        integral = raw_labels.ndim == 1 and raw_labels.dtype.kind in "iu"
    else:  # bool is an int subclass but no label
        integral = all(type(v) is int for v in raw_labels)
    if not integral:
        raise DataError(f"{label}: {label_key!r} must be a flat list of integers")
    try:
        labels = np.asarray(raw_labels, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{label}: {label_key!r} holds an integer out of range") from None
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{label}: label {int(labels[i])} of image {i} is outside the {num_classes} classes "
            f"(0..{num_classes - 1}); {bad.size} such label(s)"
        )
    return images.reshape(-1, 3, 32, 32), labels


def parse_meta(data: bytes, label: str, *, key: str, num_classes: int) -> tuple[str, ...]:
    """The class names stored under ``key`` in a CIFAR meta file."""
    obj = _load(data, label)
    names = obj.get(key)
    if (
        not isinstance(names, list)
        or len(names) != num_classes
        or not all(isinstance(n, str) for n in names)
    ):
        raise DataError(f"{label}: {key!r} must be a list of {num_classes} class names")
    return tuple(names)


def read_tar_members(archive: Path, prefix: str, names: list[str]) -> dict[str, bytes]:
    """The bytes of ``prefix/NAME`` for each NAME in ``names``, read from a ``.tar.gz`` in one
    pass.  Only regular-file members are read and nothing is written to disk, so links or
    ``../`` paths in a crafted archive have no effect.  Raises :class:`DataError` naming the
    archive for a damaged archive or a missing member.
    """
    wanted = {f"{prefix}/{n}": n for n in names}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                key = wanted.get(member.name.removeprefix("./"))
                if key is None or key in out:
                    continue
                if not member.isfile():
                    raise DataError(f"{archive}: member {member.name} is not a regular file")
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(
                        f"{archive}: member {member.name} declares {member.size:,} bytes, more "
                        f"than any CIFAR file ({MAX_MEMBER_BYTES:,})"
                    )
                stream = tar.extractfile(member)
                if stream is None:  # pragma: no cover - isfile() above
                    raise DataError(f"{archive}: member {member.name} cannot be read")
                out[key] = stream.read()
                if len(out) == len(wanted):
                    break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{archive}: damaged archive ({exc})") from None
    missing = [p for p, n in wanted.items() if n not in out]
    if missing:
        raise DataError(f"{archive}: missing member(s) {', '.join(missing)}")
    return out
