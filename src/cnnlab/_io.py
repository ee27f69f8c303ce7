"""Durable file writes and file hashes, shared by data, checkpoints, run folders and reports.

A write that is interrupted (Ctrl-C, SIGKILL, a full disk, a power cut) must never leave a
half-written file under the final name.  :func:`atomic_write` therefore writes a temporary
file in the same folder, flushes and fsyncs it, renames it over the destination (atomic on
POSIX within one filesystem) and fsyncs the folder so that the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "available_memory",
    "file_hash",
    "format_bytes",
    "fsync_dir",
]

_CHUNK = 1 << 20


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder so that a rename or a new file in it survives a crash (no-op on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit, make it ``path`` durably.

    On any exception (including KeyboardInterrupt and ``OSError`` for a full disk) the
    temporary file is removed and ``path`` is left exactly as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    f = open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"}))  # noqa: SIM115
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically and durably."""
    with atomic_write(path, "w") as f:
        f.write(text)


def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a whole file, read in 1 MiB chunks (``"md5"`` for published data hashes)."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def available_memory() -> int | None:
    """Bytes of memory this machine can still give a process without swapping (Linux's
    ``MemAvailable``; the free pages elsewhere), or None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """``1.5 GB`` (decimal units, as disk and memory sizes are quoted)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"
