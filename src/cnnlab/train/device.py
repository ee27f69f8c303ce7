"""Where and how a run computes: device, precision, memory format and CPU threads.

``device="auto"`` picks CUDA when present.  Precision ``"auto"`` is bf16 autocast on CUDA and
fp32 on the CPU: on a CPU the right choice depends on the CPU (bf16 autocast trained about 8x
slower than fp32 on an AVX2-only AMD machine and 1.5-2.9x faster on an Intel machine with
AMX, both measured for cnnlab), so bf16 on a CPU is asked for with ``precision="bf16"``.
channels_last is on for CUDA (tensor-core convolutions want NHWC) and off on the CPU, where
it slowed a small net and helped large ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from cnnlab.errors import CnnlabError

__all__ = ["Placement", "configure_threads", "placement", "usable_cores"]


@dataclass(frozen=True)
class Placement:
    """Resolved device, precision ("fp32" | "bf16"), memory format, and this process's place
    among ``world_size`` ranks (1 until distributed training: the global batch is split
    into ``world_size`` equal shares)."""

    device: torch.device
    precision: str
    channels_last: bool
    rank: int = 0
    world_size: int = 1


def placement(
    device: str = "auto", precision: str = "auto", channels_last: bool | None = None
) -> Placement:
    """Resolve ``"auto"`` choices for this machine.  Raises :class:`CnnlabError` for
    ``device="cuda"`` without a CUDA device."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise CnnlabError(f"device {device!r}: expected auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise CnnlabError(
            "device 'cuda': this PyTorch sees no CUDA device "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise CnnlabError(f"precision {precision!r}: expected auto, fp32 or bf16")
    if channels_last is None:
        channels_last = device == "cuda"
    return Placement(torch.device(device), precision, bool(channels_last))


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads once (``None``: :func:`usable_cores`); returns the count.

    Call it before any tensor work: torch fixes its thread pool on first use.
    """
    n = usable_cores() if threads is None else int(threads)
    if n < 1:
        raise CnnlabError(f"threads {threads!r}: expected an int >= 1")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
