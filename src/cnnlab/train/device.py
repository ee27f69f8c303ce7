"""Where and how a run computes: device, precision, memory format and CPU threads.

``device="auto"`` picks CUDA when present.  Precision ``"auto"`` is bf16 autocast on CUDA.  On
a CPU the right choice depends on the CPU, so it is chosen per machine by
:func:`cpu_precision`: by what the CPU has (without bf16 instructions bf16 autocast trained
about 8x slower than fp32 on an AVX2-only AMD machine) and, where it has them, by a short
measurement (a one-thread training step of two small conv-BN-ReLU layers in both
precisions, about 0.5 s, once per machine), because the instructions alone do not tell:
measured for cnnlab, bf16 trained 1.5-2.9x faster on an Intel machine with AMX-BF16 and
2.2x faster on an AMD EPYC with AVX-512 BF16 and no AMX, while on an AVX-512-BF16 Xeon
without AMX a bf16 matmul was slower than fp32.  channels_last is on for CUDA (tensor-core
convolutions want NHWC) and on the CPU only with bf16 (oneDNN's bf16 convolutions run in
NHWC; in fp32 it slowed a small net and helped large ones).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError

__all__ = [
    "CpuInfo",
    "CpuUse",
    "Placement",
    "channels_last_gradients",
    "configure_threads",
    "cpu_info",
    "cpu_precision",
    "matmul_gflops",
    "placement",
    "train_step_seconds",
    "usable_cores",
]

# The /proc/cpuinfo flags that decide how fast training can run: vector width, FMA, and the
# bf16 / fp16 instructions (AVX-512 BF16 dot products; AMX tiles, which oneDNN uses for bf16
# convolutions and matmuls).
_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
# bf16 is chosen on a CPU only when its measured training step is at least this much faster
# than fp32's (a busy machine must not flip a tie).  Not higher: on an AMD EPYC with AVX-512
# BF16 the probe's small step measured 1.32-1.49x (batch 32) where whole networks train 2.3x
# faster in bf16, and a 1.3 threshold sent one of a benchmark's runs to fp32 at half speed;
# where bf16 does not pay (an Intel Xeon without AMX) its matmul ran at 0.56x fp32's.
_BF16_GAIN = 1.15


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
        precision = "bf16" if device == "cuda" else cpu_precision()[0]
    if precision not in ("fp32", "bf16"):
        raise CnnlabError(f"precision {precision!r}: expected auto, fp32 or bf16")
    if channels_last is None:
        channels_last = device == "cuda" or precision == "bf16"
    return Placement(torch.device(device), precision, bool(channels_last))


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, the :data:`_FLAGS` it has, and torch's vector capability
    (``torch.backends.cpu.get_cpu_capability()``: ``"AVX2"``, ``"AVX512"``, ...)."""

    model: str
    flags: tuple[str, ...]
    capability: str

    @property
    def has_bf16(self) -> bool:
        """Whether the CPU has bf16 instructions (AVX-512 BF16 or AMX-BF16)."""
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags

    def describe(self) -> str:
        flags = " ".join(self.flags) or "none of " + " ".join(_FLAGS)
        return f"{self.model} ({self.capability}; flags: {flags})"


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (from ``/proc/cpuinfo`` on Linux; elsewhere the
    platform's processor name and no flags)."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # pragma: no cover - not Linux
        import platform

        text, model = "", platform.processor() or platform.machine()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    capability = torch.backends.cpu.get_cpu_capability()
    return CpuInfo(model or "unknown CPU", tuple(f for f in _FLAGS if f in flags), capability)


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s (2 n^3 per product) of an n x n CPU matmul in ``dtype``,
    with torch's current threads: the practical peak that training throughput is set
    against."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: the kernel's first call packs and allocates
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def channels_last_gradients(model: torch.nn.Module) -> list[Any]:
    """Keep ``model``'s gradients channels_last where it leaves its convolutions: forward
    pre-hooks on its global average poolings (``nn.AdaptiveAvgPool2d``) and ``nn.Flatten``
    layers turn the gradient that comes back to a channels_last input into channels_last.
    Returns the hooks' handles (``handle.remove()`` undoes each).

    Why: the backward of a global average pooling hands back an NCHW-contiguous gradient
    (torch 2.13) for its channels_last input, and every op before it then mixes the two
    layouts: on the CPU the ReLU's backward alone took 9 ms instead of 0.3 for a 256 x 256 x
    3 x 3 bf16 tensor, and the BatchNorm and convolution backwards before it reordered.
    The gradient's values are the same; only the layout changes."""
    from torch import nn

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if (
            isinstance(x, torch.Tensor)
            and x.dim() == 4
            and x.requires_grad
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
            and not torch.jit.is_tracing()
        ):
            x.register_hook(_channels_last)

    return [
        m.register_forward_pre_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.AdaptiveAvgPool2d | nn.Flatten)
    ]


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


def train_step_seconds(
    net: torch.nn.Module, in_shape: tuple[int, ...], bf16: bool, batch: int = 256, steps: int = 2
) -> float:
    """Seconds of one SGD step (forward, backward, update) of ``net`` on a random batch of
    ``batch`` images of ``in_shape`` (C, H, W), with torch's current threads, fp32 in NCHW
    or bf16 autocast in channels_last as training runs them: the best of ``steps`` after a
    warm-up (oneDNN creates its primitives on the first call).  ``net`` is trained by it:
    pass a throwaway one."""
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    if bf16:
        channels_last_gradients(net)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *in_shape, generator=gen).to(memory_format=fmt)
    from cnnlab.train.optim import SGD  # training's optimizer (no torch._dynamo to import)

    opt = SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step() -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = net(x).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step()
    return min(step() for _ in range(steps))


def _probe_net() -> torch.nn.Module:
    """Two conv3-BN-ReLU layers, 32 -> 64 -> 64 channels (14x14 inputs: the middle of a small
    Fashion-MNIST net), which :func:`cpu_precision` times."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
    )  # fmt: skip


# What the remembered choice is keyed by, beside the CPU and torch: a change to the probe or
# to the threshold measures again.
_PROBE = f"conv3-bn-relu x2, 32->64->64 at 14x14, batch 32, one thread; bf16 at >= {_BF16_GAIN}x"
PRECISION_FILE = "cpu-precision.json"


@functools.cache
def cpu_precision() -> tuple[str, str]:
    """The CPU precision this machine trains fastest in, and why: ``("fp32" | "bf16",
    reason)``.  Without bf16 instructions, fp32 (no measurement: emulated bf16 is many times
    slower).  With them (AVX-512 BF16 or AMX-BF16), a short measurement: bf16 when a
    training step of two small conv layers (:func:`train_step_seconds`, on one thread) is at
    least ``_BF16_GAIN`` times faster than fp32's, interleaved over three rounds (the best
    of each), so that a busy machine slows both alike.

    The measurement is made once per machine and remembered in the user cache
    (``$XDG_CACHE_HOME/cnnlab/cpu-precision.json``, keyed by the CPU, its flags, torch's
    version and the probe): two runs of one command on one machine then compute alike (a
    tie measured on a busy machine once sent two runs of a test to different precisions),
    and later processes skip the probe.  Delete the file to measure again.  Distributed
    ranks use rank 0's choice."""
    info = cpu_info()
    if not info.has_bf16:
        return "fp32", f"{info.model}: no bf16 instructions (avx512_bf16 / amx_bf16)"
    key = f"{info.describe()}; torch {torch.__version__}; {_PROBE}"
    path = _precision_file()
    known = remembered(path, _valid_precision).get(key)
    if known is None:
        with locked(path.with_name(path.name + ".lock")):  # one process measures at a time
            known = remembered(path, _valid_precision).get(key)  # another may have, meanwhile
            if known is None:
                choice, reason = _measure_precision(info)
                value = {"precision": choice, "reason": reason}
                known = remember(path, key, value, _valid_precision)
    return known["precision"], f"{known['reason']}; remembered in {path}"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created), held for the block; without one (a folder
    that cannot be written, no ``fcntl``) the block runs unlocked."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _precision_file() -> Path:
    from cnnlab.data.locate import user_cache_dir

    return user_cache_dir() / PRECISION_FILE


def _valid_precision(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("precision") in ("fp32", "bf16")
        and isinstance(value.get("reason"), str)
    )


def remembered(path: Path, valid: Callable[[Any], bool]) -> dict:
    """The measurements remembered in the JSON file ``path`` by machine key, those that
    ``valid`` accepts (none when it is missing or not what cnnlab wrote: the cache is
    rebuilt, never trusted blindly)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if valid(v)}


def remember(path: Path, key: str, value: dict, valid: Callable[[Any], bool]) -> dict:
    """Add ``key: value`` to the measurements in ``path`` (atomically, its folder made);
    returns ``value``.  A cache that cannot be written is no error: the measurement is then
    this process's alone."""
    import json

    from cnnlab._io import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = {**remembered(path, valid), key: value}
        atomic_write_text(path, json.dumps(entries, indent=1) + "\n")
    except OSError:
        pass
    return value


def _measure_precision(info: CpuInfo) -> tuple[str, str]:
    """(choice, reason) from the one-thread probe of :func:`cpu_precision`."""
    # On one thread: with two, a core busy with another process stalls every parallel
    # region (a step took 300 ms instead of 13-25 in both precisions, a tie), while one
    # thread's ratio held at 1.9-2.0x on the same busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fp32 = bf16 = float("inf")
    try:
        for _ in range(3):
            fp32 = min(fp32, train_step_seconds(_probe_net(), (32, 14, 14), False, batch=32))
            bf16 = min(bf16, train_step_seconds(_probe_net(), (32, 14, 14), True, batch=32))
    finally:
        torch.set_num_threads(threads)
    gain = fp32 / bf16
    choice = "bf16" if gain >= _BF16_GAIN else "fp32"
    return choice, (
        f"{info.model}: a one-thread conv training step took {bf16 * 1e3:.1f} ms in bf16 vs "
        f"{fp32 * 1e3:.1f} ms in fp32 ({gain:.2f}x; bf16 needs >= {_BF16_GAIN}x)"
    )


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


@dataclass(frozen=True)
class CpuUse:
    """A moment's CPU time: all cores' busy seconds (``/proc/stat``) and this process's own
    (every thread of it).  :meth:`others_cores` is how many cores other processes kept busy
    on average since then, which the load average (a minute's moving mean, still high for a
    minute after a run ends) cannot tell."""

    wall: float
    busy: float | None
    own: float

    @classmethod
    def now(cls) -> CpuUse:
        return cls(time.monotonic(), _busy_seconds(), time.process_time())

    def others_cores(self) -> float | None:
        """Cores other processes used on average since this moment (None where the machine
        does not say, or too little time passed to tell)."""
        later = CpuUse.now()
        wall = later.wall - self.wall
        if self.busy is None or later.busy is None or wall < 0.5:
            return None
        return max(0.0, (later.busy - self.busy) - (later.own - self.own)) / wall


def _busy_seconds() -> float | None:
    """Seconds all CPUs spent busy since boot (user, nice, system, irq, softirq), Linux only."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    return (user + nice + system + irq + softirq) / ticks
