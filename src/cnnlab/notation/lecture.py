"""The lecture's typical architecture as a spec: ``[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K,SOFTMAX``.

"ConvNets stack CONV, POOL and FC layers ... the typical architecture is
``[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K,SOFTMAX`` with N up to about 5, M large, 0 <= K <= 2"
(the lecture, after CS231n).  The SOFTMAX reads class scores, so a final ``fc`` to the
classes sits before it (CS231n's notes write it out: ``... -> [FC -> RELU]*K -> FC``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.errors import SpecError
from cnnlab.notation.formatter import format_spec
from cnnlab.notation.parser import parse_spec

__all__ = ["lecture_pattern"]


def _widths(name: str, value: int | Sequence[int], count: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * count
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != count:
        raise SpecError(f"{name} must be one width or a sequence of {count}, got {value!r}")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SpecError(f"{name} must hold positive whole numbers, got {v!r}")
    return list(value)


def _count(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise SpecError(f"{name} must be a whole number >= {low}, got {value!r}")
    return value


def lecture_pattern(
    n: int = 2,
    m: int = 3,
    k: int = 1,
    widths: int | Sequence[int] = (32, 64, 128),
    fc_width: int | Sequence[int] = 256,
    num_classes: int = 10,
    kernel: int = 3,
    pool: str | None = "max",
) -> str:
    """Spec text of ``[(CONV-RELU)*N-POOL?]*M-(FC-RELU)*K-FC,SOFTMAX``.

    ``n`` convs (``kernel`` x ``kernel``, stride 1, "same" padding (F-1)/2) each followed by a
    ReLU, then a 2x2/2 pool (``pool="max"`` or ``"avg"``; None leaves the pools out: the
    lecture's ``POOL?``), the whole repeated ``m`` times with ``widths[i]`` filters in stage
    ``i`` (one int: the same in every stage); then ``k`` fully connected layers of
    ``fc_width`` (one int or ``k`` of them) each followed by a ReLU; then the class-score fc
    of ``num_classes`` and the softmax marker.  Returns canonical text (repetitions folded),
    e.g. ``lecture_pattern(n=2, m=3, k=1, widths=32)`` is
    ``[(conv3-32-relu)*2-maxpool]*3-fc-256-relu-fc-10,softmax``.
    """
    n, m, k = _count("n", n, 1), _count("m", m, 0), _count("k", k, 0)
    kernel = _count("kernel", kernel, 1)
    num_classes = _count("num_classes", num_classes, 1)
    if pool not in ("max", "avg", None):
        raise SpecError(f"pool must be 'max', 'avg' or None, got {pool!r}")
    if kernel % 2 == 0:
        raise SpecError(f"kernel {kernel} is even: it has no 'same' padding (F-1)/2")
    stage_widths = _widths("widths", widths, m)
    fc_widths = _widths("fc_width", fc_width, k)
    parts: list[str] = []
    for width in stage_widths:
        parts += [f"conv{kernel}-{width}", "relu"] * n
        if pool:
            parts.append(f"{pool}pool")
    for width in fc_widths:
        parts += [f"fc-{width}", "relu"]
    parts.append(f"fc-{num_classes}")
    return format_spec(parse_spec("-".join(parts) + ",softmax"))
