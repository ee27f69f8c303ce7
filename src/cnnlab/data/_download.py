"""Downloading a catalogued dataset's files, only when asked, verified before they are kept.

Each file is fetched from the first mirror that delivers it (the official location and its
well-known mirrors; ``$CNNLAB_DATA_MIRROR``, a space- or comma-separated list of base URLs,
replaces them, e.g. for a site's internal mirror, where trying the outside world would only
add time-outs), streamed into a hidden temporary file beside its destination
(:func:`cnnlab._io.atomic_write`), checked by the caller's ``check`` (the format's
verification, see :mod:`cnnlab.data.formats`), and only then renamed into place, so an
interrupted or corrupt download never looks like data.

This module is the transport only: what to fetch and how to verify it is the format's.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from cnnlab._io import atomic_write
from cnnlab.data.catalog import DatasetInfo
from cnnlab.errors import DataError

__all__ = ["MAX_DOWNLOAD_BYTES", "ProgressFn", "fetch_verified", "mirrors"]

# progress(what, bytes_done, bytes_total or None): called while downloading.
ProgressFn = Callable[[str, int, "int | None"], None]

MAX_DOWNLOAD_BYTES = 512 << 20  # CIFAR-100's archive, the largest, is about 169 MB
_CHUNK = 1 << 20


def mirrors(info: DatasetInfo) -> list[str]:
    """Base URLs to try for ``info``, in order."""
    bases = os.environ.get("CNNLAB_DATA_MIRROR", "").replace(",", " ").split() or info.urls
    return [b if b.endswith("/") else b + "/" for b in bases]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        hint = (
            " (the host refuses the download; another mirror may work)" if exc.code == 403 else ""
        )
        return f"HTTP {exc.code} {exc.reason}{hint}"
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, socket.gaierror):
            return f"no network: cannot resolve the host ({inner.strerror or inner})"
        if isinstance(inner, ConnectionRefusedError):
            return "connection refused"
        if isinstance(inner, TimeoutError | socket.timeout):
            return "timed out"
        return f"no connection ({inner})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _fetch(url: str, out: IO[bytes], what: str, progress: ProgressFn | None, timeout: float):
    """Stream ``url`` into the open file ``out``; raises OSError/URLError on failure."""
    from cnnlab import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"cnnlab/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise OSError(f"the server announces {total:,} bytes, more than any dataset file")
        done = 0
        if progress:
            progress(what, 0, total)
        while chunk := response.read(_CHUNK):
            done += len(chunk)
            if done > MAX_DOWNLOAD_BYTES:
                raise OSError(f"more than {MAX_DOWNLOAD_BYTES:,} bytes; not a dataset file")
            out.write(chunk)
            if progress:
                progress(what, done, total)
        if total is not None and done != total:
            raise OSError(f"connection closed after {done:,} of {total:,} bytes")
    out.flush()


def fetch_verified(
    info: DatasetInfo,
    remote: str,
    dest: Path,
    check: Callable[[Path], None],
    progress: ProgressFn | None,
    timeout: float,
) -> None:
    """Fetch ``remote`` from the first mirror whose copy passes ``check`` (which raises
    :class:`DataError` to reject it) and keep it as ``dest``; nothing else is left behind.
    Raises :class:`DataError` listing every mirror's failure."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {dest.parent}: {exc.strerror or exc}") from None
    failures = []
    for base in mirrors(info):
        url = base + remote
        try:
            with atomic_write(dest) as out:
                _fetch(url, out, remote, progress, timeout)
                check(Path(out.name))  # the temporary file, complete and flushed
        except DataError as exc:
            failures.append(f"{url}: rejected: {exc}")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            failures.append(f"{url}: {_reason(exc)}")
        else:
            return
    raise DataError("; ".join(failures))
