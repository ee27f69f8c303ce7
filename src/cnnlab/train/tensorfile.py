"""A safetensors file (weights or a checkpoint) read without trusting it.

:func:`split_safetensors` takes a file's bytes apart, naming a pickle or a ``torch.save``
archive and never unpickling it; :func:`check_state` holds the tensors it gave against the
model they are meant for, naming the first tensor that is missing, extra, or of another shape
or kind.  Weights files (:mod:`cnnlab.train.run`) and checkpoints
(:mod:`cnnlab.train.checkpoint`) are both read through them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

from cnnlab.errors import CnnlabError

__all__ = ["check_state", "foreign_format", "split_safetensors"]


def foreign_format(blob: bytes) -> str | None:
    """What a file that should be safetensors is instead, when it can be told from its first
    bytes: a pickle, or a ``torch.save`` archive (a zip holding a pickle); else None.

    A safetensors file starts with its header's length (8 bytes, little-endian) and then the
    header's ``{``; a length of 640, 896, 1152 or 1408 bytes starts with the same two bytes as
    a pickle of protocol 2 to 5, so that shape is recognised first."""
    if len(blob) >= 9:
        (n,) = struct.unpack("<Q", blob[:8])
        if 2 <= n <= len(blob) - 8 and blob[8:9] == b"{":
            return None
    if blob[:1] == b"\x80" and blob[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if blob[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save's format, a pickle inside)"
    return None


def split_safetensors(
    blob: bytes, where: str, what: str = "weights file", error: type[CnnlabError] = CnnlabError
) -> tuple[dict[str, Any], bytes]:
    """(header JSON, tensor payload) of a safetensors file's bytes, trusting nothing: a
    pickle or a ``torch.save`` archive is named and refused (never unpickled), anything else
    malformed is ``error`` saying how the ``what`` is damaged."""
    try:
        return _parse(blob, where, what, error)
    except CnnlabError:
        # Not safetensors: say what it is when that is a pickle (never unpickled here).
        foreign = foreign_format(blob)
        if foreign is None:
            raise
        raise error(
            f"{where}: refused: it is {foreign}, not a safetensors {what}; cnnlab never "
            f"unpickles a {what} (unpickling can run any code)"
        ) from None


def _parse(
    blob: bytes, where: str, what: str, error: type[CnnlabError]
) -> tuple[dict[str, Any], bytes]:
    if len(blob) < 8:
        raise error(f"{where}: damaged {what} ({len(blob)} bytes, not safetensors)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise error(
            f"{where}: damaged {what} (a header of {n} bytes in a file of {len(blob)}: "
            "truncated, or not safetensors; a pickle is never loaded)"
        )
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{where}: damaged {what} (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise error(f"{where}: damaged {what} (its header is not a JSON object)")
    return header, blob[8 + n :]


def check_state(
    where: str,
    tensors: Mapping[str, Any],
    expected: Mapping[str, Any],
    error: type[CnnlabError] = CnnlabError,
) -> None:
    """``tensors`` (from a file) fit a model whose ``state_dict()`` is ``expected``: the same
    names, shapes, and floating-point or not; else ``error`` naming the tensor."""
    for name, t in expected.items():
        if name not in tensors:
            raise error(f"{where}: tensor {name!r} is missing (the model has it)")
        got = tensors[name]
        if tuple(got.shape) != tuple(t.shape):
            raise error(
                f"{where}: tensor {name!r} has shape {tuple(got.shape)}; the model needs "
                f"{tuple(t.shape)}"
            )
        if got.is_floating_point() != t.is_floating_point():
            raise error(f"{where}: tensor {name!r} is {got.dtype}, not {t.dtype}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise error(f"{where}: tensor {extra[0]!r} does not belong to the model")
