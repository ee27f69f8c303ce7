"""Downloading a catalogued dataset, only when asked, verified before it is kept.

Each file is fetched from the first mirror that delivers it (the official location and its
well-known mirrors; ``$CNNLAB_DATA_MIRROR``, a space- or comma-separated list of base URLs,
replaces them, e.g. for a site's internal mirror, where trying the outside world would only
add time-outs), streamed into
a hidden temporary file beside its destination, verified against the published hashes
(the decompressed payload for IDX files, the archive and each member for CIFAR), and only
then renamed into place, so an interrupted or corrupt download never looks like data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from cnnlab.data._cifar import read_tar_members
from cnnlab.data._idx import file_md5, read_idx
from cnnlab.data.catalog import DataFile, DatasetInfo
from cnnlab.data.locate import Location, ProgressFn, locate
from cnnlab.errors import DataError

__all__ = ["download_files", "mirrors"]

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


def _fetch(url: str, dest: Path, what: str, progress: ProgressFn | None, timeout: float) -> None:
    """Stream ``url`` into ``dest`` (a temporary name); raises OSError/URLError on failure."""
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
        with open(dest, "wb") as out:
            while chunk := response.read(_CHUNK):
                done += len(chunk)
                if done > MAX_DOWNLOAD_BYTES:
                    raise OSError(f"more than {MAX_DOWNLOAD_BYTES:,} bytes; not a dataset file")
                out.write(chunk)
                if progress:
                    progress(what, done, total)
        if total is not None and done != total:
            raise OSError(f"connection closed after {done:,} of {total:,} bytes")


def _check_idx(path: Path, f: DataFile) -> None:
    """Raise DataError unless ``path`` holds the published payload of ``f``."""
    parsed = read_idx(path, what=f.name)  # also checks the structure
    if f.sha256 is not None:
        if parsed.sha256 != f.sha256:
            raise DataError(
                f"the decompressed content differs from the published {f.name} "
                f"(sha256 {parsed.sha256}, expected {f.sha256})"
            )
    elif f.gz_md5 is not None and parsed.gz_md5 != f.gz_md5:
        raise DataError(f"md5 {parsed.gz_md5} differs from the published {f.gz_md5}")


def _get(
    info: DatasetInfo,
    remote: str,
    dest: Path,
    check,
    progress: ProgressFn | None,
    timeout: float,
) -> None:
    """Fetch ``remote`` from the first mirror whose copy passes ``check``; keep it as ``dest``."""
    failures = []
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    for base in mirrors(info):
        url = base + remote
        try:
            _fetch(url, tmp, remote, progress, timeout)
            check(tmp)
        except DataError as exc:
            failures.append(f"{url}: rejected: {exc}")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            failures.append(f"{url}: {_reason(exc)}")
        else:
            os.replace(tmp, dest)
            return
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError("; ".join(failures))


def download_files(
    info: DatasetInfo, target: Path, *, progress: ProgressFn | None = None, timeout: float = 30.0
) -> Location:
    """Download every missing file of ``info`` into ``target`` and return its location."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {target}: {exc.strerror or exc}") from None
    if info.kind == "idx":
        for f in info.files:
            dest = target / (f.name + ".gz")
            if dest.is_file():
                try:
                    _check_idx(dest, f)
                    continue  # kept from an earlier, interrupted download
                except DataError:
                    dest.unlink()
            _get(info, f.name + ".gz", dest, lambda p, f=f: _check_idx(p, f), progress, timeout)
    else:
        _download_cifar(info, target, progress, timeout)
    found, _ = locate(dataclasses.replace(info, system_dirs=()), target)
    if found is None:  # pragma: no cover - every file was just verified
        raise DataError(f"{target}: the downloaded files are incomplete")
    return Location(found.name, found.directory, "download", found.files, found.archive)


def _download_cifar(
    info: DatasetInfo, target: Path, progress: ProgressFn | None, timeout: float
) -> None:
    if info.archive is None or info.archive_dir is None:  # pragma: no cover - catalogue
        raise DataError(f"{info.name}: no download archive is known")
    names = [f.name for f in info.files]

    def check(path: Path) -> None:
        if info.archive_md5 is not None and file_md5(path) != info.archive_md5:
            raise DataError(f"archive md5 differs from the published {info.archive_md5}")
        members = read_tar_members(path, info.archive_dir, names)
        for f in info.files:
            got = hashlib.md5(members[f.name], usedforsecurity=False).hexdigest()
            if f.md5 is not None and got != f.md5:
                raise DataError(f"{f.name}: md5 {got} differs from the published {f.md5}")

    archive = target / info.archive
    _get(info, info.archive, archive, check, progress, timeout)
    # Unpack the verified members (and nothing else) into archive_dir, then drop the archive.
    members = read_tar_members(archive, info.archive_dir, names)
    out_dir = target / info.archive_dir
    out_dir.mkdir(exist_ok=True)
    for name, data in members.items():
        tmp = out_dir / f".{name}.part-{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, out_dir / name)
    archive.unlink()
